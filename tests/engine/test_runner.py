"""The runner end to end: files, dims, provenance, and identical results for any jobs or chunk size."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from simstudy.design import Design
from simstudy.engine.plan import Plan
from simstudy.engine.runner import RunConfig, default_chunk_size, run_study
from simstudy.output.display import show_run as show
from simstudy.study import load_study
from support import TOY


@pytest.fixture(scope="module")
def toy():
    return load_study(TOY)


def run(study, tmp_path, name, **kwargs):
    config = RunConfig(out=tmp_path / name, quiet=True, **kwargs)
    return run_study(study, config, study_file=TOY)


def test_files_dims_and_provenance(toy, tmp_path):
    est, summ = run(toy, tmp_path, "a", reps=30, jobs=1)
    out = tmp_path / "a"
    for name in ("estimates.nc", "summary.nc", "study.json"):
        assert (out / name).is_file()
    assert dict(est.sizes) == {"n": 2, "mu": 2, "rep": 30, "estimator": 2, "param": 1}
    assert set(summ["bias"].dims) == {"n", "mu", "estimator", "param"}
    on_disk = xr.open_dataset(out / "estimates.nc")
    prov = json.loads(on_disk.attrs["provenance"])
    assert prov["seed"] == 7 and prov["reps"] == 30 and len(prov["study_file_sha256"]) == 64
    assert {"numpy", "xarray", "simstudy"} <= set(prov["versions"])
    assert prov["started"] <= prov["finished"]
    np.testing.assert_array_equal(on_disk["estimate"].values, est["estimate"].values)
    assert "bias" in show(out) and "valid/reps" in show(out)


def test_failures_and_warnings_are_data(toy, tmp_path):
    est, summ = run(toy, tmp_path, "b", reps=40, jobs=1)
    boom = est.sel({"estimator": "boom"})
    failed = boom["status"] == 3
    assert failed.any() and (~failed).any()
    assert (boom["message"].where(failed) == "RuntimeError: boom").sum() == failed.sum()
    assert (np.isnan(boom["estimate"].squeeze("param", drop=True)) == failed).all()
    ok = boom["status"] == 0
    assert (boom["n_warnings"].where(ok) == 1).sum() == ok.sum()
    # failed replicates are not re-drawn: 'mean' and 'boom' saw the same data
    same = boom["estimate"].where(ok) == est.sel({"estimator": "mean"})["estimate"].where(ok)
    assert same.sum() == ok.sum()
    assert int(summ["n_fit_failed"].sel({"estimator": "boom"}).sum()) == int(failed.sum())
    assert (summ["n_valid"] + summ["n_failed"] == summ["n_rep"]).all()


def test_identical_for_jobs_and_chunk_sizes(toy, tmp_path):
    a, _ = run(toy, tmp_path, "j1", reps=24, jobs=1, chunk_size=24)
    b, _ = run(toy, tmp_path, "j2", reps=24, jobs=2, chunk_size=5)
    c, _ = run(toy, tmp_path, "j2b", reps=24, jobs=2, chunk_size=7)
    for other in (b, c):
        for var in ("estimate", "se", "status", "message"):
            np.testing.assert_array_equal(a[var].values, other[var].values)


def test_more_levels_and_reps_leave_existing_replicates(toy, tmp_path):
    small, _ = run(toy, tmp_path, "s", reps=10, jobs=1)
    bigger = replace(toy, design=Design({"n": [5, 10, 40], "mu": [0.0, 0.5, 1.0]}))
    big, _ = run(bigger, tmp_path, "l", reps=15, jobs=1)
    sub = big.sel(n=[10, 40], mu=[0.0, 1.0], rep=slice(1, 10))
    np.testing.assert_array_equal(sub["estimate"].values, small["estimate"].values)


def test_filtered_cells_are_not_run(toy, tmp_path):
    study = replace(toy, design=Design({"n": [10, 40], "mu": [0.0, 1.0]}, where=lambda n, mu: n == 10 or mu == 0))
    est, summ = run(study, tmp_path, "f", reps=10, jobs=1)
    assert (est["status"].sel(n=40, mu=1.0) == -1).all()
    assert int(summ["n_rep"].sel(n=40, mu=1.0).max()) == 0
    assert int(summ["n_rep"].sel(n=40, mu=0.0).min()) == 10


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 12), st.integers(1, 30))
def test_tasks_cover_every_replicate_once(chunk, reps):
    plan = Plan(Path("."), [{"a": 1}, {"a": 2}], ["k1", "k2"], ["f1", "f2"], reps, seed=0)
    tasks = plan.tasks(chunk)
    for cell in (0, 1):
        covered = [r for t in tasks if t.cell_index == cell for r in range(t.start, t.stop)]
        assert covered == list(range(1, reps + 1))


def test_default_chunk_size():
    assert default_chunk_size(n_cells=1, reps=10, jobs=2) == 2  # at least 4 tasks per worker
    assert default_chunk_size(n_cells=20, reps=1000, jobs=2) == 250  # at most MAX_CHUNK
    assert default_chunk_size(n_cells=1, reps=400, jobs=2) == 50
    assert default_chunk_size(n_cells=20, reps=1000, jobs=2) == default_chunk_size(n_cells=20, reps=1000, jobs=2)


def test_bad_jobs_and_output_dir(toy, tmp_path):
    with pytest.raises(ValueError, match="jobs must be at least 1"):
        run(toy, tmp_path, "x", reps=2, jobs=0)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="cannot create output directory"):
        run_study(toy, RunConfig(out=blocker / "sub", quiet=True, reps=2, jobs=1))


def test_run_marker_is_written_before_the_study_file(toy, tmp_path, monkeypatch):
    # a shard starting beside another must never see study.py without study.json (CI caught this race)
    import shutil

    from simstudy.engine import runner

    seen = []
    copy = shutil.copyfile

    def watched(src, dst):
        seen.append((tmp_path / "run" / "study.json").is_file())
        runner._check_out(tmp_path / "run")  # what a shard starting now would check
        return copy(src, dst)

    monkeypatch.setattr(runner.shutil, "copyfile", watched)
    run_study(toy, RunConfig(out=tmp_path / "run", quiet=True, reps=2, jobs=1, shard=(0, 2)), study_file=TOY)
    assert seen == [True]


def test_relative_precision_is_filled_against_the_reference(toy, tmp_path):
    # defect: summary_dataset was called without a reference, so rel_precision was NaN in every run
    est, summ = run(toy, tmp_path, "rp", reps=30, jobs=1)
    rp = summ["rel_precision"].sel({"estimator": "boom", "param": "mean"})
    assert np.isfinite(rp).any()
    assert np.allclose(summ["rel_precision"].sel({"estimator": "mean", "param": "mean"}), 0.0)
    assert summ.attrs["ref"] == "mean"


def test_true_values_may_differ_between_estimators(toy, tmp_path):
    study = replace(toy, truth=lambda n, mu, sd=1.0: {"mean": {"mean": mu, "boom": mu + 1.0}})
    est, summ = run(study, tmp_path, "pe", reps=20, jobs=1)
    true = est["true"].sel({"param": "mean"})
    assert set(true.dims) == {"n", "mu", "estimator"}
    np.testing.assert_array_equal(true.sel({"estimator": "boom"}) - true.sel({"estimator": "mean"}), 1.0)
    for name in ("mean", "boom"):
        s = summ.sel({"estimator": name, "param": "mean"})
        e = est.sel({"estimator": name, "param": "mean"})
        mean_est = e["estimate"].where(e["converged"]).mean("rep")
        np.testing.assert_allclose(s["bias"], mean_est - e["true"], rtol=1e-12)
