"""Laying chunks on the grid and the run summary (only converged fits count)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from simstudy.engine.assemble import estimates_dataset, summary_dataset
from simstudy.engine.chunk import ChunkResult


def chunk(cell_index, start, n, params, status, est):
    values = {v: np.full((n, 1, len(params)), 0.5) for v in ("estimate", "se", "ci_lower", "ci_upper", "df")}
    values["estimate"][:] = est
    values["df"][:] = np.nan
    return ChunkResult(cell_index, start, ("m",), params, values, np.full((n, 1), status, np.int8),
                       np.zeros((n, 1), np.int32), np.full((n, 1), "", dtype=str), np.zeros((n, 1)), np.zeros(n))


def test_chunks_land_where_they_belong():
    cells = [{"a": 1}, {"a": 2}]
    chunks = [chunk(1, 3, 2, ("x",), 0, 7.0), chunk(0, 1, 4, ("y", "x"), 0, 1.0), chunk(1, 1, 2, ("x",), 1, 3.0)]
    ds = estimates_dataset({"a": [1, 2]}, cells, [{"m": {"x": 0.0}}, {"m": {"x": 1.0, "z": 2.0}}], ["m"], 4,
                           chunks)
    assert list(ds["param"].values) == ["x", "y", "z"]
    assert ds["estimate"].sel({"a": 2, "param": "x", "estimator": "m"}).values.tolist() == [3, 3, 7, 7]
    assert np.isnan(ds["estimate"].sel(a=2, param="y")).all()
    assert ds["status"].sel({"a": 2, "estimator": "m"}).values.tolist() == [1, 1, 0, 0]
    assert float(ds["true"].sel(a=2, param="z", estimator="m")) == 2.0
    assert np.isnan(ds["true"].sel(a=1, param="z", estimator="m"))
    assert bool(ds["converged"].all())


def test_summary_drops_nonconverged_fits():
    cells = [{"a": 1}]
    chunks = [chunk(0, 1, 3, ("x",), 0, 1.0), chunk(0, 4, 2, ("x",), 2, 5.0), chunk(0, 6, 1, ("x",), 2, 9.0)]
    # statuses: 3 ok (1.0), 2 nonconverged (5.0), 1 nonconverged (9.0)
    ds = estimates_dataset({"a": [1]}, cells, [{"m": {"x": 1.0}}], ["m"], 6, chunks)
    s = summary_dataset(ds).sel({"a": 1, "estimator": "m", "param": "x"})
    assert int(s["n_valid"]) == 3 and int(s["n_rep"]) == 6 and int(s["n_nonconverged"]) == 3
    assert float(s["bias"]) == 0.0


def test_summary_uses_each_fits_own_interval():
    # defect: the summary recomputed intervals from se and df, so a fit whose df (hence interval) was NaN
    # counted with a z interval: type I error 0.017 as summarised vs 0.002 from the fits' own intervals
    n = 4
    c = chunk(0, 1, n, ("x",), 0, 0.0)
    c.values["estimate"][:, 0, 0] = [0.0, 0.3, 0.6, 2.5]
    c.values["se"][:] = 1.0
    c.values["ci_lower"][:, 0, 0] = [-4.0, -3.7, np.nan, np.nan]
    c.values["ci_upper"][:, 0, 0] = [4.0, 4.3, np.nan, np.nan]
    ds = estimates_dataset({"a": [1]}, [{"a": 1}], [{"m": {"x": 0.0}}], ["m"], n, [c])
    s = summary_dataset(ds).sel({"a": 1, "estimator": "m", "param": "x"})
    assert float(s["coverage"]) == 1.0 and float(s["power"]) == 0.0  # z would reject replicate 4
    assert int(s["n_valid"]) == 4
    assert "2 replicate(s) with an estimate and SE but no interval" in str(s["note"].values)


def test_not_estimable_parameters_are_named_with_their_reason():
    n = 3
    c = chunk(0, 1, n, ("x", "t"), 0, 1.0)
    c.values["estimate"][:, 0, 1] = np.nan
    c.message = np.full((n, 1), "not estimable: t is collinear with the fixed effects of g")
    c.reported = np.ones((n, 1, 2), dtype=bool)
    other = chunk(0, 1, n, ("x",), 0, 1.0)  # a second estimator that does not report t at all
    other.estimators = ("o",)
    other.reported = np.ones((n, 1, 1), dtype=bool)
    ds = estimates_dataset({"a": [1]}, [{"a": 1}], [{"m": {"x": 1.0, "t": 0.0}, "o": {"x": 1.0}}], ["m", "o"],
                           n, [c, other])
    s = summary_dataset(ds).sel({"a": 1, "param": "t"})
    assert str(s["note"].sel({"estimator": "m"}).values) == "not estimable: t is collinear with the fixed effects of g"
    assert str(s["note"].sel({"estimator": "o"}).values) == "not reported by this estimator"


def test_pvalues_use_each_fits_own_distribution_and_power_has_two_conventions():
    from scipy import stats

    n = 6
    c = chunk(0, 1, n, ("x",), 0, 0.0)
    c.values["estimate"][:, 0, 0] = [2.5, 0.1, 3.0, 3.0, 2.5, 9.0]
    c.values["se"][:] = 1.0
    c.values["df"][:, 0, 0] = [4.0, 4.0, np.nan, np.nan, np.inf, 4.0]
    c.values["ci_lower"][:, 0, 0] = [0.0, 0.0, 1.0, np.nan, 0.0, 0.0]  # replicate 4: no interval, no df: no test
    c.values["ci_upper"][:, 0, 0] = [1.0, 1.0, 5.0, np.nan, 1.0, 1.0]
    c.status[5] = 3  # replicate 6 failed
    ds = estimates_dataset({"a": [1]}, [{"a": 1}], [{"m": {"x": 0.0}}], ["m"], n, [c], nulls={"x": 0.5})
    p = ds["pvalue"].sel({"a": 1, "estimator": "m", "param": "x"}).values
    assert p[0] == pytest.approx(2 * stats.t.sf(2.0, 4)) and p[1] == pytest.approx(2 * stats.t.sf(0.4, 4))
    assert p[2] == pytest.approx(2 * stats.norm.sf(2.5))  # df NaN with an interval: the fit used z
    assert np.isnan(p[3])
    assert p[4] == pytest.approx(2 * stats.norm.sf(2.0))
    s = summary_dataset(ds).sel({"a": 1, "estimator": "m", "param": "x"})
    rejected = [2 * stats.t.sf(2.0, 4) < 0.05, False, True, 2 * stats.norm.sf(2.0) < 0.05]  # the 4 tested fits
    assert int(s["n_tested"]) == 4 and float(s["power"]) == pytest.approx(np.mean(rejected))
    assert float(s["power_all"]) == pytest.approx(sum(rejected) / 6)  # the failed and untested count as not rejected
    assert float(s["power_lower"]) <= float(s["power"]) <= float(s["power_upper"])


# --- streaming: the file and the summary a group of cells at a time ---------------------------------------


def grid_chunks(rng, cells, reps, params=("x", "t")):
    """Chunks of every cell (cells in order), two estimators, with failures, NaNs and messages."""
    out = []
    for i in range(len(cells)):
        for start in range(1, reps + 1, 4):
            n = min(4, reps + 1 - start)
            c = chunk(i, start, n, params, 0, 0.0)
            c.estimators = ("m", "o")
            for v in c.values:
                c.values[v] = rng.normal(size=(n, 2, len(params)))
            c.values["df"][:, 1] = np.nan
            c.values["estimate"][rng.random((n, 2, len(params))) < 0.1] = np.nan
            c.status = rng.choice(np.array([0, 0, 0, 1, 2, 3], np.int8), size=(n, 2))
            c.message = np.where(c.status > 1, np.array(["bad one", "a longer message about t"])[
                rng.integers(0, 2, (n, 2))], "")
            c.n_warnings = rng.integers(0, 3, (n, 2)).astype(np.int32)
            c.fit_seconds = rng.random((n, 2))
            c.generate_seconds = rng.random(n)
            c.reported = np.ones((n, 2, len(params)), bool)
            out.append(c)
    return out


@pytest.mark.parametrize("group", [1, 3 * 2 * 3, 10**9])  # one cell at a time, a few, all at once
@pytest.mark.parametrize("split", [0, 10**9])  # summaries a parameter at a time, or of every parameter
def test_written_estimates_and_summary_equal_the_in_memory_ones(tmp_path, monkeypatch, group, split):
    import simstudy.engine.assemble as assemble
    from simstudy.engine.assemble import write_estimates
    from simstudy.engine.store import write_netcdf

    monkeypatch.setattr(assemble, "GROUP_VALUES", group)
    monkeypatch.setattr(assemble, "SPLIT_VALUES", split)
    rng = np.random.default_rng(4)
    factors = {"a": [3, 1, 2], "b": ["u", "v"]}
    cells = [{"a": a, "b": b} for a in factors["a"] for b in factors["b"] if (a, b) != (1, "u")]  # one left out
    truths = [{"m": {"x": 0.1 * i, "t": 0.0}, "o": {"x": 0.1 * i, "z": 1.0}} for i in range(len(cells))]
    chunks = grid_chunks(rng, cells, 9)
    kwargs = {"nulls": {"t": 0.5}}
    ref = estimates_dataset(factors, cells, truths, ["m", "o"], 9, chunks, params=["x", "t"], **kwargs)
    ref.attrs = {"run": {"id": 1}}
    write_netcdf(ref, tmp_path / "ref.nc")
    summary = write_estimates(tmp_path / "new.nc", factors, cells, truths, ["m", "o"], 9, iter(chunks), ["x", "t"],
                              attrs=lambda: {"run": {"id": 1}}, ref="m", **kwargs)
    with xr.open_dataset(tmp_path / "ref.nc") as a, xr.open_dataset(tmp_path / "new.nc") as b:
        xr.testing.assert_identical(a.load(), b.load())
        assert list(a.variables) == list(b.variables)
    expected = summary_dataset(ref, ref="m")
    xr.testing.assert_identical(summary, expected)
    assert list(summary.variables) == list(expected.variables)
    assert all(summary[v].dtype == expected[v].dtype for v in expected.variables)


def test_chunks_must_come_in_cell_order(tmp_path, monkeypatch):
    import simstudy.engine.assemble as assemble
    from simstudy.engine.assemble import write_estimates

    monkeypatch.setattr(assemble, "GROUP_VALUES", 1)  # a cell at a time
    cells = [{"a": 1}, {"a": 2}]
    chunks = grid_chunks(np.random.default_rng(1), cells, 4)
    with pytest.raises(ValueError, match="out of cell order"):
        write_estimates(tmp_path / "e.nc", {"a": [1, 2]}, cells, [{}, {}], ["m", "o"], 4, chunks[::-1],
                        ["x", "t"])
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_messages_are_shared_strings_not_a_fixed_width_array():
    from simstudy.engine.assemble import _Grid

    cells = [{"a": 1}]
    chunks = grid_chunks(np.random.default_rng(2), cells, 8)
    grid = _Grid({"a": [1]}, cells, [{}], ["m", "o"], 8, ["x", "t"], None)
    block = grid.block([0], {0: chunks})
    message = block["message"]
    assert message.dtype == object
    long = [m for m in message.ravel() if m == "a longer message about t"]
    assert len(long) > 1 and all(m is long[0] for m in long)  # one str object, however many fits say it


#: A small cluster_trial run (3 replicates per cell, in this process) by the code before streaming (commit
#: 004a747): sums over its estimates and its summary.
RUN_PINNED = {"estimate": 273.41052503462436, "se": 104.51705432892749, "ci_lower": -67.62737980931243,
              "ci_upper": 384.08744572545845, "df": 48432.0, "pvalue": 147.4863203945452}
SUMMARY_PINNED = {"bias": 3.0947364150502255, "coverage": 175.66666666666666, "power": 89.33333333333333,
                  "emp_se": 44.36532871002228}


def test_a_run_gives_what_the_code_before_gave(tmp_path):
    from simstudy.engine.runner import RunConfig, run_study
    from simstudy.study import load_study
    from support import STUDIES

    study = load_study(STUDIES / "cluster_trial.py")
    est, summary = run_study(study, RunConfig(reps=3, jobs=1, in_process=True, out=tmp_path / "r", quiet=True))
    for var, total in RUN_PINNED.items():
        assert float(np.nansum(est[var].values)) == pytest.approx(total, rel=1e-12), var
    for var, total in SUMMARY_PINNED.items():
        assert float(np.nansum(summary[var].values)) == pytest.approx(total, rel=1e-12), var
    assert int(est["status"].sum()) == 12 and int(est["reported"].sum()) == 768
    assert set(est["message"].values.ravel()) == {"", "var(group) estimated at the boundary (0)"}
    assert sorted(set(summary["note"].values.ravel())) == [
        "", "no standard errors: estimate-only measures", "not reported by this estimator",
        "rel_bias undefined: true value is 0"]
