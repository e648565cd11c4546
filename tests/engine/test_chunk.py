"""A worker's chunk: same data for every estimator, failures recorded, batch fallback."""

from __future__ import annotations

import warnings

import numpy as np

from simstudy.design import Design
from simstudy.engine.chunk import Task, run_chunk, safe_fit, safe_fit_batch
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
