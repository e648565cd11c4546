"""Forked worker processes: results, errors, deaths, hangs, shared objects, and when forking is allowed."""

from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import contextmanager

import pytest

from simstudy.engine.forkpool import ENV, ForkPool, WorkerDied, fork_usable

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")


@contextmanager
def running(*args, kill=False, **kwargs):
    """A ForkPool, shut down (or killed) at the end of the block."""
    pool = ForkPool(*args, **kwargs)
    try:
        yield pool
    finally:
        pool.kill() if kill else pool.shutdown()


def _wait_all(pool, futures, seconds=30.0):
    end = time.monotonic() + seconds
    while not all(f.done() for f in futures) and time.monotonic() < end:
        pool.wait([f for f in futures if not f.done()], 0.1)
    assert all(f.done() for f in futures)


def square(x):
    return x * x


def pid_and(x):
    return os.getpid(), x


def boom(x):
    raise ArithmeticError(f"bad {x}")


def die(code):
    os._exit(code)


def hang(_):
    time.sleep(3600)


def call_shared(obj, x):
    return obj(x)


def test_calls_run_in_other_processes_and_results_come_back():
    with running(2) as pool:
        futures = [pool.submit(pid_and, i) for i in range(6)]
        _wait_all(pool, futures)
        pids = {f.result()[0] for f in futures}
        assert [f.result()[1] for f in futures] == list(range(6))
        assert os.getpid() not in pids and pids <= set(pool.pids)
    assert pool.pids == []


def test_functions_made_here_travel_by_value():
    offset = 3
    with running(1) as pool:
        future = pool.submit(lambda x: x + offset, 4)  # not picklable by reference
        _wait_all(pool, [future])
        assert future.result() == 7


def test_large_results_arrive_whole():
    import numpy as np

    with running(1) as pool:
        future = pool.submit(np.arange, 3_000_000)  # 24 MB through a 64 kB pipe
        _wait_all(pool, [future])
        assert future.result().shape == (3_000_000,) and future.result()[-1] == 2_999_999


def test_shared_objects_are_not_pickled():
    lock = threading.Lock()  # cannot be pickled
    offset = 10

    def add(x):  # a closure: not picklable by reference either
        return x + offset + (0 if lock.locked() else 1)

    with running(1, shared=(add,)) as pool:
        future = pool.submit(call_shared, add, 5)
        _wait_all(pool, [future])
        assert future.result() == 16


def test_an_error_in_a_call_is_raised_with_the_worker_traceback():
    with running(1) as pool:
        bad, good = pool.submit(boom, 3), pool.submit(square, 4)
        _wait_all(pool, [bad, good])
        with pytest.raises(ArithmeticError, match="bad 3") as info:
            bad.result()
        assert "in a forked worker process" in info.value.__notes__[0] and "boom" in info.value.__notes__[0]
        assert good.result() == 16  # the worker goes on


def test_a_worker_that_dies_fails_its_call_and_breaks_the_pool():
    with running(2, kill=True) as pool:
        dead = pool.submit(die, 7)
        _wait_all(pool, [dead])
        with pytest.raises(WorkerDied, match="exit code 7"):
            dead.result()
        with pytest.raises(WorkerDied):
            pool.submit(square, 2)


def test_a_worker_killed_by_a_signal_names_it():
    with running(1, kill=True) as pool:
        future = pool.submit(hang, 0)
        pool.wait([future], 0.3)
        os.kill(pool.pids[0], signal.SIGKILL)
        _wait_all(pool, [future])
        with pytest.raises(WorkerDied, match=r"exit code -9, SIGKILL"):
            future.result()


def test_a_worker_killed_while_idle_fails_the_next_call_not_the_caller():
    with running(1, kill=True) as pool:
        os.kill(pool.pids[0], signal.SIGKILL)
        time.sleep(0.3)
        future = pool.submit(square, 2)  # its pipe has no reader: no BrokenPipeError here
        _wait_all(pool, [future])
        with pytest.raises(WorkerDied, match="SIGKILL"):
            future.result()


def test_kill_ends_hung_workers_and_keeps_results_that_arrived():
    pool = ForkPool(2)
    stuck, quick = pool.submit(hang, 0), pool.submit(square, 3)
    time.sleep(0.5)  # the quick result is in its pipe, not read yet
    pids = pool.pids
    pool.kill()
    assert quick.done() and quick.result() == 9
    assert not stuck.done()
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reaped


def test_forking_is_used_only_without_other_threads(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert fork_usable() is False
        monkeypatch.setenv(ENV, "1")
        assert fork_usable() is True
    finally:
        stop.set()
        thread.join()
    monkeypatch.setenv(ENV, "0")
    assert fork_usable() is False
    monkeypatch.setenv(ENV, "yes")
    with pytest.raises(ValueError, match="SIMSTUDY_FORK must be 0"):
        fork_usable()
