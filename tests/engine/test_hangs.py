"""Hangs and leftovers, with real runs of tests/slow_study.py: a replicate that never returns is timed out and
the run finishes; no worker outlives a killed run; Ctrl-C and SIGTERM save what has arrived; --jobs is capped;
a crash with --jobs 1 costs replicates, not the run; bad options are refused in one line."""

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

from simstudy.cli import main
from simstudy.engine.checkpoint import list_chunks
from simstudy.engine.cluster import usable_cores
from support import SLOW, TOY

REPS, CHUNK = "20", "5"
VALUES = ("estimate", "se", "ci_lower", "ci_upper", "df")


def simstudy(*args: str, env: dict | None = None) -> subprocess.Popen:
    """``simstudy ARGS`` in a session of its own, so that :func:`finish` can kill whatever it left behind."""
    return subprocess.Popen([sys.executable, "-m", "simstudy.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
                            start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    """Wait for ``proc``; a test never hangs: past ``timeout`` (or if processes it started outlive it and
    hold its pipes) its whole session is killed and the test fails."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_session(proc)
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            out, err = "", "(its pipes stayed open)"
        raise AssertionError(f"still running after {timeout} s: {err[-2000:]}") from None
    return proc.returncode, out, err


def kill_session(proc: subprocess.Popen) -> None:
    """SIGKILL every process in ``proc``'s session (``proc`` and anything it left behind)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def load(out: Path) -> xr.Dataset:
    with xr.open_dataset(out / "estimates.nc") as ds:
        return ds.load()


def saved(out: Path) -> int:
    return sum(c.stop - c.start for c in list_chunks(out))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> xr.Dataset:
    out = tmp_path_factory.mktemp("ref") / "run"
    code, _, err = finish(simstudy("run", SLOW, "--out", out, "--reps", REPS, "--chunk-size", CHUNK, "--jobs", "2",
                                   "--quiet"))
    assert code == 0, err
    return load(out)


def means(reference: xr.Dataset) -> xr.DataArray:
    return reference["estimate"].sel({"estimator": "mean", "param": "mean"})


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "options", "flags"),
    [
        pytest.param("sleep", ["--jobs", "1"], "", id="alarm-1-job"),
        pytest.param("sleep", ["--jobs", "2"], ":batch", id="alarm-batch-2-jobs"),
        pytest.param("sleep", ["--in-process"], "", id="alarm-in-process"),
        pytest.param("blocked", ["--jobs", "2"], "", id="watchdog-2-jobs"),
        pytest.param("blocked", ["--jobs", "1"], ":batch", id="watchdog-batch-1-job"),
    ],
)
def test_a_replicate_that_never_returns_times_out_and_the_run_finishes(tmp_path, reference, mode, options, flags):
    # "sleep" hangs in Python (the alarm in the worker ends it); "blocked" blocks the alarm, like compiled code
    # that never returns (the parent's watchdog kills the worker); "batch" hangs inside fit_batch
    m = means(reference)
    top = np.sort(m.values.ravel())[::-1]
    threshold = float(top[0] + top[1]) / 2  # exactly one replicate hangs
    hung = m > threshold
    assert not bool(hung.isel(n=0, mu=0, rep=0))  # not the replicate the preflight fits in the parent
    out = tmp_path / "run"
    t0 = time.time()
    code, _, err = finish(simstudy("run", SLOW, "--out", out, "--reps", REPS, "--chunk-size", CHUNK, "--timeout", "1",
                                   "--quiet", *options, env={"SIMSTUDY_TEST_HANG": f"{mode}:{threshold!r}{flags}"}))
    assert code == 0, err
    assert time.time() - t0 < 120
    est = load(out)
    timed_out = est["message"] == "timed out after 1 s"
    assert bool((timed_out == hung).all()), "the hanging replicate, for every estimator, and only it"
    assert bool((est["status"].where(hung) == 3).sum() == 2)
    ok = ~hung
    for name in ("mean", "hang"):  # every other replicate: the numbers of a run without hangs, bit for bit
        for var in VALUES:
            np.testing.assert_array_equal(est[var].sel({"estimator": name}).where(ok).values,
                                          reference[var].sel({"estimator": "mean"}).where(ok).values, err_msg=var)
        assert bool((est["status"].sel({"estimator": name}).where(ok) == 0).sum() == int(ok.sum()))


@pytest.mark.slow
@pytest.mark.parametrize("start", ["fork", "loky"])
def test_os_exit_with_one_job_costs_replicates_not_the_run(tmp_path, start):
    # defect: --jobs 1 ran in this process, so os._exit in a fit ended the run (exit 3, no message), every time
    out = tmp_path / "run"
    code, _, err = finish(simstudy("run", SLOW, "--out", out, "--jobs", "1", "--chunk-size", "25", "--reps", "100",
                                   "--quiet", env={"SIMSTUDY_TEST_KILLER": "1",
                                                   "SIMSTUDY_FORK": "1" if start == "fork" else "0"}))
    assert code == 0, err
    est = load(out)
    died = est["message"] == "worker died on 2 attempts (TerminatedWorkerError)"
    kills = died.sel({"estimator": "killer"})
    assert int(kills.sum()) == 2 and bool((died.sel({"estimator": "mean"}) == kills).all())
    ok = ~kills
    np.testing.assert_array_equal(est["estimate"].sel({"estimator": "killer"}).where(ok).values,
                                  est["estimate"].sel({"estimator": "mean"}).where(ok).values)
    executed = json.loads((out / "study.json").read_text())["provenance"]["executed"]
    assert executed == {"backend": "loky", "workers": 1, "start": start}


@pytest.mark.slow
def test_a_longer_timeout_recomputes_the_replicates_that_timed_out(tmp_path, reference):
    # defect: rerunning with a longer --timeout reused the chunks whose replicates had timed out, silently
    m = means(reference)
    top = np.sort(m.values.ravel())[::-1]
    threshold = float(top[0] + top[1]) / 2  # one replicate takes 1.5 s
    slow = m > threshold
    out = tmp_path / "run"
    env = {"SIMSTUDY_TEST_HANG": f"pause:{threshold!r}:workers"}
    argv = ("run", SLOW, "--out", out, "--reps", REPS, "--chunk-size", CHUNK, "--jobs", "2", "--quiet")
    code, _, err = finish(simstudy(*argv, "--timeout", "1", env=env))
    assert code == 0, err
    assert bool(((load(out)["message"] == "timed out after 1 s") == slow).all())
    code, _, err = finish(simstudy("resume", out, "--quiet", env=env))  # resume keeps the run's limit
    assert code == 0 and "recomputing" not in err, err
    assert json.loads((out / "study.json").read_text())["run"]["timeout"] == 1
    code, _, err = finish(simstudy(*argv, env=env))  # no limit: kept (recomputing could hang where they hung)
    assert code == 0 and "recomputing" not in err, err
    code, _, err = finish(simstudy(*argv, "--timeout", "10", env=env))
    assert code == 0, err
    assert ("simstudy: recomputing 1 chunk(s) (5 replicates) that held replicates timed out after 1 s, now with "
            "--timeout 10") in err
    est = load(out)
    assert bool((est["status"] == 0).all())
    for name in ("mean", "hang"):
        for var in VALUES:
            np.testing.assert_array_equal(est[var].sel({"estimator": name}).values,
                                          reference[var].sel({"estimator": "mean"}).values, err_msg=var)


# --- no orphans ----------------------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (loky's workers and resource trackers)."""
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry))
    return kids


def running(pids: list[int]) -> list[int]:
    """The processes of ``pids`` that still run (a zombie has ended)."""
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def workers_of(pid: int) -> list[int]:
    """The worker processes of run ``pid``: loky's (a fresh interpreter) or forked (the run's own command line;
    the preflight's forked child has ended before the workers start)."""
    own = Path(f"/proc/{pid}/cmdline").read_bytes()
    out = []
    for k in children(pid):
        try:
            line = Path(f"/proc/{k}/cmdline").read_bytes()
        except OSError:
            continue
        if b"popen_loky_posix" in line or line == own:
            out.append(k)
    return out


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("start", ["fork", "loky"])
@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "SIGKILL-hung", "SIGTERM-hung", "SIGKILL-preflight"])
def test_no_worker_outlives_a_killed_run(tmp_path, how, start):
    # defect: workers and loky's resource trackers lived on for 330-400 s after the run was killed (forever
    # if a worker hung); the forked child that fits replicate 1 before the run lived on if it hung
    out = tmp_path / "run"
    hung = how.split("-")[-1] if "-" in how else ""
    env = {"SIMSTUDY_TEST_SLEEP": "0.02", "SIMSTUDY_FORK": "1" if start == "fork" else "0"}
    env |= {"hung": {"SIMSTUDY_TEST_HANG": "blocked:-100:workers"},
            "preflight": {"SIMSTUDY_TEST_HANG": "blocked:-100"}}.get(hung, {})
    proc = simstudy("run", SLOW, "--out", out, "--jobs", "2", "--chunk-size", "25", "--quiet", env=env)
    try:
        end = time.time() + 120
        while time.time() < end and proc.poll() is None:
            if hung == "preflight" and children(proc.pid):
                break
            if len(workers_of(proc.pid)) >= 2 and (hung or list(list_chunks(out))):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        if hung:
            time.sleep(1)  # the workers (or the preflight's child) are stuck in their first fit now
        kids = children(proc.pid)
        assert kids and (hung == "preflight" or len(workers_of(proc.pid)) >= 2), kids
        proc.send_signal(getattr(signal, how.split("-")[0]))
        code, _, err = finish(proc, timeout=60)
        if how.startswith("SIGTERM"):
            assert code == 143, err
            assert err.strip().splitlines()[-1] == (f"simstudy: terminated; {saved(out)} replicates saved, "
                                                    f"`simstudy resume {out}` continues")
        else:
            assert code == -signal.SIGKILL
        end = time.time() + 10
        while running(kids) and time.time() < end:
            time.sleep(0.1)
        assert not running(kids), [Path(f"/proc/{k}/cmdline").read_bytes()[:80] for k in running(kids)]
    finally:
        kill_session(proc)  # whatever the test found alive, so that it cannot hang the suite


# --- Ctrl-C ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ctrl_c_saves_what_has_arrived_and_resume_finishes_bit_for_bit(tmp_path, reference):
    out = tmp_path / "run"
    slow = {"SIMSTUDY_TEST_SLEEP": "0.1"}  # 16 tasks of ~0.5 s
    proc = simstudy("run", SLOW, "--out", out, "--reps", REPS, "--chunk-size", CHUNK, "--jobs", "2", "--quiet",
                    env=slow)
    end = time.time() + 120
    while len(list(list_chunks(out))) < 2 and time.time() < end and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc, timeout=60)
    assert code == 130, err
    n = saved(out)
    assert 10 <= n < 80
    last = err.strip().splitlines()[-1]
    assert last == f"simstudy: interrupted; {n} replicates saved, `simstudy resume {out}` continues"
    code, _, err = finish(simstudy("resume", out, "--jobs", "2", "--quiet", env=slow))
    assert code == 0, err
    est = load(out)
    for var in (*VALUES, "status", "message", "n_warnings"):
        np.testing.assert_array_equal(est[var].values, reference[var].values, err_msg=var)


# --- how many workers, and options refused ------------------------------------------------------------------


@pytest.mark.slow
def test_jobs_beyond_the_cores_are_capped_with_a_notice(tmp_path):
    # defect: --jobs 1000 --reps 20 started a thousand workers and wrote nothing in 120 s
    out = tmp_path / "run"
    code, _, err = finish(simstudy("run", TOY, "--out", out, "--reps", "20", "--jobs", "1000", "--quiet"), timeout=120)
    assert code == 0, err
    n = min(usable_cores(), 1000)
    notices = [line for line in err.splitlines() if "capped" in line]
    assert len(notices) == 1 and notices[0].startswith(f"simstudy: --jobs 1000 capped to {n} (")
    executed = json.loads((out / "study.json").read_text())["provenance"]["executed"]
    assert executed == {"backend": "loky", "workers": n, "start": "fork"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--retries", "-1"], "argument --retries: must be 0 or more, got -1"),
        (["--timeout", "0"], "argument --timeout: must be a positive number of seconds, got 0"),
        (["--timeout", "soon"], "argument --timeout: expected a number of seconds, got 'soon'"),
        (["--timeout", "5", "--backend", "dask"],
         "--timeout does not work with --backend dask (Dask runs tasks in worker threads, which cannot be "
         "stopped); use --backend loky"),
        (["--in-process", "--jobs", "2"],
         "--in-process runs one task at a time in this process: not with --jobs above 1 or --backend dask"),
    ],
)
def test_bad_options_are_refused_in_one_line(capsys, tmp_path, argv, message):
    code = main(["run", str(TOY), "--out", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err
    assert code == 2 and err == f"simstudy: error: {message}\n"
    assert not (tmp_path / "o").exists()
