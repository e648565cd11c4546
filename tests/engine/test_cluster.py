"""Scale-out: a Dask LocalCluster, a scheduler and workers as separate processes, and array-job shards all
give the estimates of the loky backend, bit for bit."""

from __future__ import annotations

import json
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
from simstudy.engine.cluster import parse_shard
from support import SLOW, TOY

pytest.importorskip("distributed")

DATA_VARS = ("estimate", "se", "ci_lower", "ci_upper", "df", "status", "n_warnings", "message", "true")


def simstudy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simstudy.cli", *args], capture_output=True, text=True,
                          timeout=600)


def load(out: Path) -> xr.Dataset:
    with xr.open_dataset(out / "estimates.nc") as ds:
        return ds.load()


def assert_same(a: xr.Dataset, b: xr.Dataset) -> None:
    for var in DATA_VARS:
        np.testing.assert_array_equal(a[var].values, b[var].values, err_msg=var)


@pytest.fixture(scope="module")
def loky(tmp_path_factory) -> xr.Dataset:
    out = tmp_path_factory.mktemp("loky") / "run"
    proc = simstudy("run", str(SLOW), "--out", str(out), "--reps", "60", "--jobs", "2", "--chunk-size", "10",
                    "--quiet")
    assert proc.returncode == 0, proc.stderr
    return load(out)


def test_parse_shard():
    assert parse_shard("2/3") == (2, 3)
    for bad in ("3/3", "-1/2", "a/b", "1"):
        with pytest.raises(ValueError, match="--shard must be I/N"):
            parse_shard(bad)


@pytest.mark.slow
def test_local_cluster_matches_loky_and_shows_progress(tmp_path, loky):
    out = tmp_path / "run"
    proc = simstudy("run", str(SLOW), "--out", str(out), "--reps", "60", "--chunk-size", "10", "--backend", "dask",
                    "--scheduler", "local:2")
    assert proc.returncode == 0, proc.stderr
    assert_same(load(out), loky)
    percents = [int(line.split("%")[0].split()[-1]) for line in proc.stderr.splitlines() if "% (" in line]
    assert len(percents) >= 3 and percents == sorted(percents) and percents[-1] == 100


@pytest.fixture
def dask_cluster(tmp_path):
    """A scheduler and two workers (one thread each) as separate processes on loopback."""
    info = tmp_path / "scheduler.json"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    sched = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                              "--port", "0", "--no-dashboard", "--scheduler-file", str(info)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    end = time.time() + 60
    while not info.exists() and time.time() < end:
        time.sleep(0.1)
    address = json.loads(info.read_text())["address"]
    worker_cmd = [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                  "--no-dashboard", "--no-nanny", "--host", "127.0.0.1"]
    workers = [subprocess.Popen(worker_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                                start_new_session=True) for _ in range(2)]
    from distributed import Client

    with Client(address, timeout="30s") as client:
        client.wait_for_workers(2, timeout=60)
    yield address, workers
    for p in [*workers, sched]:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()


@pytest.mark.slow
def test_separate_scheduler_and_workers_survive_a_killed_worker(tmp_path, loky, dask_cluster):
    address, workers = dask_cluster
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "simstudy.cli", "run", str(SLOW), "--out", str(out),
                             "--reps", "60", "--chunk-size", "10", "--backend", "dask", "--scheduler", address,
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "SIMSTUDY_TEST_SLEEP": "0.02"})
    end = time.time() + 120
    while len(list(list_chunks(out))) < 2 and time.time() < end and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before a worker could be killed"
    os.killpg(workers[0].pid, signal.SIGKILL)  # mid-run: its tasks go to the other worker
    workers[0].wait()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert_same(load(out), loky)


@pytest.mark.slow
def test_three_shards_then_merge_match_a_single_run(tmp_path, loky):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "simstudy.cli", "run", str(SLOW), "--out", str(out), "--reps", "60",
            "--jobs", "1", "--quiet"]
    shards = [subprocess.Popen([*args, "--shard", f"{i}/3"], stderr=subprocess.PIPE, text=True) for i in range(2)]
    for p in shards:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    early = simstudy("merge", str(out))
    assert early.returncode == 2
    assert early.stderr.startswith("simstudy: error: cannot merge:") and "replicates" in early.stderr
    last = simstudy(*args[3:], "--shard", "2/3")
    assert last.returncode == 0, last.stderr
    merged = simstudy("merge", str(out))
    assert merged.returncode == 0, merged.stderr
    assert_same(load(out), loky)


def test_scheduler_needs_dask_backend(tmp_path):
    proc = simstudy("run", str(TOY), "--out", str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:1")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "simstudy: error: --scheduler goes with --backend dask"


PID_STUDY = '''
import os
import numpy as np
from simstudy.design import Design
from simstudy.estimators.base import Fit
from simstudy.study import Study


class D:
    def generate(self, rng, n=3):
        return {"y": rng.normal(size=n)}

    def truth(self, n=3):
        return {"pid": 0.0}


class Pid:
    def fit(self, data):
        v = np.array([float(os.getpid())])
        return Fit(("pid",), v, v, v, v, np.array([np.nan]))


study = Study(name="pid", design=Design({"n": [3]}), dgp=D(), estimators={"pid": Pid()}, reps=4, seed=1)
'''


@pytest.mark.slow
def test_one_worker_dask_cluster_runs_tasks_on_the_cluster(tmp_path):
    # defect: joblib runs n_jobs=1 in-process, so a one-worker cluster never saw a task while study.json
    # recorded backend dask
    from simstudy.engine.runner import RunConfig, run_study
    from simstudy.study import load_study

    path = tmp_path / "pid_study.py"
    path.write_text(PID_STUDY)
    estimates, _ = run_study(load_study(path), RunConfig(out=tmp_path / "out", quiet=True, backend="dask",
                                                         scheduler="local:1", chunk_size=2), study_file=path)
    pids = set(estimates["estimate"].values.ravel().tolist())
    assert len(pids) == 1 and os.getpid() not in pids
    executed = json.loads((tmp_path / "out" / "study.json").read_text())["provenance"]["executed"]
    assert executed == {"backend": "dask", "workers": 1, "scheduler": "local:1"}
