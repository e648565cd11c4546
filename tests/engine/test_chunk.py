"""A worker's chunk: same data for every estimator, failures recorded, batch fallback, the time limit."""

from __future__ import annotations

import signal
import time
import warnings

import numpy as np

from simstudy.design import Design
from simstudy.engine.chunk import FAILED, Task, read_beat, run_chunk, safe_fit, safe_fit_batch
from simstudy.estimators.base import Fit
from simstudy.study import Study


class Data:
    def generate(self, rng, n=5):
        return {"y": rng.normal(size=n)}

    def truth(self, n=5):
        return {"m": 0.0}


class First:
    """Reports the first value of y, so tests can see which data each estimator got."""

    def fit(self, data):
        v = np.array([data["y"][0]])
        return Fit(("m",), v, v * 0 + 1, v - 2, v + 2, v * np.nan)


class Batched(First):
    calls = 0

    def fit_batch(self, datasets):
        return [self.fit(d) for d in datasets]


class BadBatch(First):
    def fit_batch(self, datasets):
        raise RuntimeError("batch broke")


class Warner(First):
    def fit(self, data):
        warnings.warn("w1")
        warnings.warn("w2")
        return super().fit(data)


def study(**estimators):
    return Study(name="c", design=Design({"n": [5]}), dgp=Data(), estimators=estimators, reps=6)


def test_every_estimator_sees_the_same_data_batched_or_not():
    res = run_chunk(study(a=First(), b=Batched(), c=BadBatch()), Task(0, {"n": 5}, 3, 7, seed=1))
    assert res.n == 4 and res.start == 3
    est = res.values["estimate"][:, :, 0]
    assert np.all(est[:, 0] == est[:, 1]) and np.all(est[:, 0] == est[:, 2])
    assert (res.status == 0).all()


def test_generate_failure_fails_every_method():
    class Broken(Data):
        def generate(self, rng, n=5):
            raise ZeroDivisionError("bad")

    s = Study(name="c", design=Design({"n": [5]}), dgp=Broken(), estimators={"a": First()}, reps=2)
    res = run_chunk(s, Task(0, {"n": 5}, 1, 3, seed=1))
    assert (res.status == 3).all()
    assert res.message[0, 0] == "generate failed: ZeroDivisionError: bad"


def test_safe_fit_counts_warnings_and_catches():
    fit, secs = safe_fit(Warner(), {"y": np.array([1.0])})
    assert fit.n_warnings == 2 and fit.message == "UserWarning: w1" and secs >= 0
    fit, _ = safe_fit(object(), {"y": np.array([1.0])})
    assert fit.status == "failed" and "AttributeError" in fit.message


def test_batch_that_warns_is_refitted_one_by_one():
    class WarnBatch(Warner):
        def fit_batch(self, datasets):
            warnings.warn("batch")
            return [First().fit(d) for d in datasets]

    fits, _ = safe_fit_batch(WarnBatch(), [{"y": np.array([1.0])}, {"y": np.array([2.0])}])
    assert [f.n_warnings for f in fits] == [2, 2]


# --- the per-replicate time limit (SIGALRM here: pytest runs tests in the main thread) ---------------------


class Sleepy(First):
    """Sleeps ``seconds`` on the replicates whose first value exceeds ``above``."""

    def __init__(self, above, seconds=3600.0):
        self.above, self.seconds = above, seconds

    def fit(self, data):
        if data["y"][0] > self.above:
            time.sleep(self.seconds)
        return super().fit(data)


class SleepyBatch(Sleepy):
    def fit_batch(self, datasets):
        return [self.fit(d) for d in datasets]


class SlowBatch(First):
    """A batch that never returns (its one-at-a-time fits are quick)."""

    def fit_batch(self, datasets):
        time.sleep(3600)


TASK = Task(0, {"n": 5}, 1, 21, seed=3)
SHORT = Task(0, {"n": 5}, 1, 7, seed=3)


def firsts(task=TASK):
    """The first values of y of the task's replicates (what First reports)."""
    return run_chunk(study(a=First()), task).values["estimate"][:, 0, 0]


def assert_same_except(res, ref, rows):
    keep = np.setdiff1d(np.arange(res.n), rows)
    for v in ("estimate", "se", "ci_lower", "ci_upper", "df"):
        np.testing.assert_array_equal(res.values[v][keep], ref.values[v][keep])
    np.testing.assert_array_equal(res.status[keep], ref.status[keep])
    np.testing.assert_array_equal(res.message[keep], ref.message[keep])


def test_a_replicate_over_the_limit_fails_for_every_estimator_and_the_chunk_goes_on():
    y0 = firsts()
    above = np.sort(y0)[-2]  # the largest first value: one replicate sleeps
    s = study(a=First(), b=Sleepy(above))
    t0 = time.perf_counter()
    res = run_chunk(s, TASK, timeout=0.5)
    assert time.perf_counter() - t0 < 30
    bad = np.flatnonzero(y0 > above)
    assert len(bad) == 1
    assert (res.status[bad] == FAILED).all() and (res.message[bad] == "timed out after 0.5 s").all()
    assert np.isnan(res.values["estimate"][bad]).all() and np.isnan(res.fit_seconds[bad]).all()
    ref = run_chunk(study(a=First(), b=First()), TASK)
    assert_same_except(res, ref, bad)


def test_the_limit_never_changes_replicates_that_finish_in_time():
    s = study(a=First(), b=Batched(), c=Warner())
    ref, res = run_chunk(s, TASK), run_chunk(s, TASK, timeout=60)
    assert_same_except(res, ref, [])
    np.testing.assert_array_equal(res.n_warnings, ref.n_warnings)
    np.testing.assert_array_equal(res.reported, ref.reported)


def test_a_batch_that_runs_out_is_refitted_one_replicate_at_a_time():
    s = study(a=First(), b=SlowBatch())
    res = run_chunk(s, Task(0, {"n": 5}, 1, 5, seed=3), timeout=0.5)  # the batch gets 4 x 0.5 s, then gives up
    assert (res.status == 0).all()
    np.testing.assert_array_equal(res.values["estimate"][:, 0], res.values["estimate"][:, 1])


def test_in_a_batch_only_the_replicate_that_hangs_times_out():
    y0 = firsts(SHORT)
    above = np.sort(y0)[-2]
    res = run_chunk(study(a=First(), b=SleepyBatch(above)), SHORT, timeout=0.5)  # the batch gets 6 x 0.5 s
    bad = np.flatnonzero(y0 > above)
    assert len(bad) == 1 and (res.message[bad] == "timed out after 0.5 s").all()
    assert_same_except(res, run_chunk(study(a=First(), b=First()), SHORT), bad)


def test_the_alarm_is_put_back_after_a_chunk():
    before = signal.getsignal(signal.SIGALRM)
    run_chunk(study(a=First()), TASK, timeout=5)
    assert signal.getsignal(signal.SIGALRM) is before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_the_heartbeat_names_the_replicate_and_its_deadline(tmp_path):
    beat = tmp_path / "beat"
    seen = []

    class Spy(First):
        def fit(self, data):
            seen.append(read_beat(str(beat)))
            return super().fit(data)

    run_chunk(study(a=Spy()), Task(0, {"n": 5}, 4, 6, seed=1), timeout=7, beat=str(beat))
    assert [(first, last) for _, first, last in seen] == [(4, 4), (5, 5)]
    assert all(0 < deadline - time.monotonic() <= 7 for deadline, _, _ in seen)
    assert read_beat(str(beat))[0] == np.inf  # idle once the chunk is done
    beat.write_bytes(beat.read_bytes()[:10])
    assert read_beat(str(beat)) is None  # caught mid-write
    assert read_beat(str(tmp_path / "none")) is None
