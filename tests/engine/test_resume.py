"""Lose nothing: kill a real run at several points, resume, and get the same estimates bit for bit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from simstudy.engine.checkpoint import list_chunks
from support import SLOW, tamper

DATA_VARS = ("estimate", "se", "ci_lower", "ci_upper", "df", "status", "n_warnings", "message", "true")
N_CHUNKS = 4 * 300 // 25  # cells x reps / chunk size


def simstudy(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "simstudy.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def load(out: Path) -> xr.Dataset:
    with xr.open_dataset(out / "estimates.nc") as ds:
        return ds.load()


def assert_same_estimates(a: xr.Dataset, b: xr.Dataset) -> None:
    for var in DATA_VARS:
        np.testing.assert_array_equal(a[var].values, b[var].values, err_msg=var)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> xr.Dataset:
    out = tmp_path_factory.mktemp("ref") / "run"
    code, _, err = finish(simstudy("run", str(SLOW), "--out", str(out), "--jobs", "2", "--chunk-size", "25",
                                   "--quiet"))
    assert code == 0, err
    return load(out)


def wait_for_chunks(out: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.time() + timeout
    while time.time() < end and proc.poll() is None:
        if len(list(list_chunks(out))) >= n:
            return
        time.sleep(0.01)
    raise AssertionError(f"never saw {n} chunks (process ended: {proc.poll()})")


@pytest.mark.slow
@pytest.mark.parametrize("when", ["early", "mid", "assembly"])
def test_kill_and_resume_is_bit_identical(tmp_path, reference, when):
    out = tmp_path / "run"
    proc = simstudy("run", str(SLOW), "--out", str(out), "--jobs", "2", "--chunk-size", "25", "--quiet")
    target = {"early": 1, "mid": N_CHUNKS // 2, "assembly": N_CHUNKS}[when]
    wait_for_chunks(out, target, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # the lock died with the process; finish the run with a different number of jobs and chunk size
    code, _, err = finish(simstudy("resume", str(out), "--jobs", "1", "--chunk-size", "10", "--quiet"))
    assert code == 0, err
    assert_same_estimates(load(out), reference)


@pytest.mark.slow
def test_worker_that_dies_is_retried_then_recorded(tmp_path, reference):
    out = tmp_path / "run"
    code, _, err = finish(simstudy("run", str(SLOW), "--out", str(out), "--jobs", "2", "--chunk-size", "25",
                                   "--reps", "100", "--quiet", env={"SIMSTUDY_TEST_KILLER": "1"}))
    assert code == 0, err
    est = load(out)
    reference = reference.sel(rep=slice(1, 100))
    status = est["status"]
    died = est["message"] == "worker died on 2 attempts (TerminatedWorkerError)"
    # only the replicates that kill their worker fail, for every method; all others are intact
    y0_kills = died.sel({"estimator": "killer"})
    assert int(y0_kills.sum()) == 2  # the two replicates whose first value exceeds 3.4
    assert bool((died.sel({"estimator": "mean"}) == y0_kills).all())
    assert bool((status.where(died) == 3).sum() == died.sum())
    ok = ~y0_kills
    np.testing.assert_array_equal(est["estimate"].sel({"estimator": "mean"}).where(ok).values,
                                  reference["estimate"].sel({"estimator": "mean"}).where(ok).values)
    np.testing.assert_array_equal(est["estimate"].sel({"estimator": "killer"}).where(ok).values,
                                  reference["estimate"].sel({"estimator": "mean"}).where(ok).values)



def test_corrupted_and_truncated_checkpoints_are_recomputed(tmp_path):
    out = tmp_path / "run"
    args = ("run", str(SLOW), "--out", str(out), "--jobs", "1", "--chunk-size", "100", "--reps", "200", "--quiet")
    code, _, err = finish(simstudy(*args))
    assert code == 0, err
    before = load(out)
    files = [c.path for c in list_chunks(out)]
    data = files[0].read_bytes()
    files[0].write_bytes(data[: len(data) // 2])  # truncated
    tamper(files[1])  # one estimate changed, metadata (and its checksum) kept
    code, _, err = finish(simstudy(*args))
    assert code == 0, err
    assert err.count("recomputing a damaged checkpoint") == 2, err
    assert_same_estimates(load(out), before)


def test_extending_reps_and_levels_reuses_chunks(tmp_path):
    out = tmp_path / "run"
    code, _, err = finish(simstudy("run", str(SLOW), "--out", str(out), "--jobs", "1", "--reps", "40", "--quiet"))
    assert code == 0, err
    first = {c.path.name: c.path.stat().st_mtime_ns for c in list_chunks(out)}
    small = load(out)
    code, _, err = finish(simstudy("run", str(SLOW), "--out", str(out), "--jobs", "1", "--reps", "60", "--quiet"))
    assert code == 0, err
    after = {c.path.name: c.path.stat().st_mtime_ns for c in list_chunks(out)}
    assert all(after[name] == t for name, t in first.items())  # untouched
    assert len(after) > len(first)
    big = load(out)
    assert_same_estimates(big.sel(rep=slice(1, 40)), small)
