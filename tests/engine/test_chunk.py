"""A worker's chunk: same data for every estimator, failures recorded, batch fallback, the time limit."""

from __future__ import annotations

import signal
import time
import warnings

import numpy as np
import pytest

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


# --- stacked results (fit_batch_arrays), cheap seeding, and results pinned by the code before them ---------


class Arrays(First):
    """Returns stacked results (``fit_batch_arrays``), as OLS does; ``fit`` is First's."""

    calls = 0

    def fit_batch_arrays(self, datasets):
        Arrays.calls += 1
        from simstudy.engine.chunk import _stack

        return _stack([self.fit(d) for d in datasets])


class BadArrays(First):
    def fit_batch_arrays(self, datasets):
        raise RuntimeError("arrays broke")


class ShortArrays(Arrays):
    def fit_batch_arrays(self, datasets):
        return super().fit_batch_arrays(datasets[1:])  # one replicate short: not trusted


def test_stacked_results_are_taken_as_they_are_and_equal_single_fits():
    Arrays.calls = 0
    res = run_chunk(study(a=First(), b=Arrays(), c=BadArrays(), d=ShortArrays()), TASK)
    assert Arrays.calls == 2  # b and d (d's result is refused: refitted one at a time)
    for j in (1, 2, 3):
        for v in ("estimate", "se", "ci_lower", "ci_upper", "df"):
            np.testing.assert_array_equal(res.values[v][:, j], res.values[v][:, 0])
        np.testing.assert_array_equal(res.status[:, j], res.status[:, 0])
    assert res.reported.all() and (res.message == "").all()


def test_a_batch_with_a_failed_generate_fills_both_ways():
    class Flaky(Data):
        def generate(self, rng, n=5):
            y = rng.normal(size=n)
            if y[0] > 0.5:
                raise ValueError("too big")
            return {"y": y}

    s = Study(name="c", design=Design({"n": [5]}), dgp=Flaky(), estimators={"a": Arrays(), "b": First()}, reps=20)
    res = run_chunk(s, Task(0, {"n": 5}, 1, 21, seed=2))
    failed = res.status[:, 1] == FAILED
    assert failed.any() and (~failed).any()
    np.testing.assert_array_equal(res.status[:, 0], res.status[:, 1])
    np.testing.assert_array_equal(res.message[:, 0], res.message[:, 1])
    np.testing.assert_array_equal(res.values["estimate"][:, 0], res.values["estimate"][:, 1])
    assert not res.reported[failed].any() and res.reported[~failed].all()


def test_replicate_rngs_are_numpys_seed_sequences_bit_for_bit():
    from simstudy.engine.rng import ReplicateRngs, cell_key, replicate_rng

    rng = np.random.default_rng(5)
    for seed in (0, 1, 2**32 - 1, 2**32, 2**63 + 12345, 7 * 2**100 + 3):
        key = cell_key({"a": float(rng.normal()), "b": "x"})
        start = int(rng.integers(1, 10**6))
        rngs = ReplicateRngs(seed, key, start, start + 40)
        assert rngs._words is not None
        for rep in range(start, start + 40):
            fast, slow = rngs(rep), replicate_rng(seed, key, rep)
            assert fast.bit_generator.state == slow.bit_generator.state
            np.testing.assert_array_equal(fast.random(3), slow.random(3))
    fast, slow = ReplicateRngs(9, key, 1, 5)(2), replicate_rng(9, key, 2)
    np.testing.assert_array_equal(fast.spawn(2)[1].random(3), slow.spawn(2)[1].random(3))
    assert fast.bit_generator.seed_seq.spawn_key == slow.bit_generator.seed_seq.spawn_key
    import pickle

    np.testing.assert_array_equal(pickle.loads(pickle.dumps(ReplicateRngs(9, key, 1, 5)(3))).random(2),
                                  replicate_rng(9, key, 3).random(2))


def cluster_trial():
    from simstudy.study import load_study
    from support import STUDIES

    return load_study(STUDIES / "cluster_trial.py")


def test_batched_chunk_equals_single_fits_bit_for_bit():
    """OLS and the mixed model fitted in batches (shared design matrices, stacked OLS) give each replicate's
    single fit exactly."""
    s = cluster_trial()
    cell = s.validate()[3]
    res = run_chunk(s, Task(3, cell, 1, 13, s.seed))
    from simstudy.engine.rng import cell_key, replicate_rng

    for i, rep in enumerate(range(1, 13)):
        data = s.dgp.generate(replicate_rng(s.seed, cell_key(cell), rep), **cell)
        for j, est in enumerate(s.estimators.values()):
            fit = est.fit(data)
            cols = [res.params.index(p) for p in fit.params]
            for v in ("estimate", "se", "ci_lower", "ci_upper", "df"):
                np.testing.assert_array_equal(res.values[v][i, j, cols], getattr(fit, v))
            assert (res.status[i, j], res.message[i, j]) == (("ok", "boundary", "nonconverged", "failed").index(
                fit.status), fit.message)


#: Computed by the code before stacked OLS, shared designs and cheap seeding (commit 004a747): cells 0, 5 and
#: 15 of cluster_trial, replicates 3-8. The SHA-256 of the values, statuses, messages and parameters was
#: 15513e6149b9c952bc4db2089a2db1da250dd8b0f88dc046b0c731e1f529e7f1 then and is the same after (on the
#: machine that pinned it; another BLAS may move the last bits, hence the tolerance below).
PINNED = {0: (31.103843994092028, 23.091290986526346, -0.5680991308908484),
          5: (41.76322663569852, 17.28619147832961, 0.2736437322961111),
          15: (32.06835644905728, 6.758881259973495, 0.3365734779960842)}


def test_results_are_those_of_the_code_before():
    s = cluster_trial()
    cells = s.validate()
    for i, (est_sum, se_sum, first_treat) in PINNED.items():
        res = run_chunk(s, Task(i, cells[i], 3, 9, s.seed))
        assert res.params == ("Intercept", "x", "treat", "var(group)", "var(residual)")
        assert np.nansum(res.values["estimate"]) == pytest.approx(est_sum, rel=1e-12)
        assert np.nansum(res.values["se"]) == pytest.approx(se_sum, rel=1e-12)
        assert res.values["estimate"][0, 0, 2] == pytest.approx(first_treat, rel=1e-12)


def test_the_time_limit_is_read_back_from_a_timed_out_message():
    from simstudy.engine.chunk import timed_out_after, timed_out_message

    assert timed_out_after(timed_out_message(2.5)) == 2.5 and timed_out_after(timed_out_message(30)) == 30
    assert timed_out_after("worker died on 2 attempts (TerminatedWorkerError)") is None
    assert timed_out_after("timed out after soon s") is None and timed_out_after("") is None
