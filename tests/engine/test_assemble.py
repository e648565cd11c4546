"""Laying chunks on the grid and the run summary (only converged fits count)."""

from __future__ import annotations

import numpy as np
import pytest

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
