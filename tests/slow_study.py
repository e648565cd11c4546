"""A small study whose fits take a few milliseconds, for the kill-and-resume tests.

SIMSTUDY_TEST_SLEEP sets the seconds each fit sleeps (default 0.002); SIMSTUDY_TEST_KILLER=1 adds a method
that kills its worker process (os._exit) on the replicates whose first value exceeds 3.4: a crash in
compiled code, as far as the runner can tell.
SIMSTUDY_TEST_HANG=MODE:THRESHOLD[:FLAG,...] adds a method "hang" that estimates the mean like "mean" but
never returns on the replicates whose mean exceeds THRESHOLD: MODE "sleep" sleeps (Python code, which an
alarm interrupts), "blocked" blocks SIGALRM first (like compiled code that never returns to Python), "pause"
only takes 1.5 s (a slow fit, not a hang). FLAG "batch": it also has a fit_batch, which hangs if any of its
replicates does; "workers": it hangs only in loky's worker processes (not in the forked child where the
preflight fits replicate 1).
"""

import os
import signal
import time

import numpy as np

from simstudy.design import Design
from simstudy.estimators.base import Fit
from simstudy.study import Study


class Normal:
    def generate(self, rng, n=20, mu=0.0):
        return {"y": rng.normal(mu, 1.0, n)}

    def truth(self, n=20, mu=0.0):
        return {"mean": mu}

    def validate(self, n=20, mu=0.0):
        if n < 2:
            raise ValueError(f"factor 'n' must be at least 2, got {n}")


class SlowMean:
    def __init__(self, seconds=0.002):
        self.seconds = seconds

    def fit(self, data):
        time.sleep(self.seconds)
        y = data["y"]
        m, s = y.mean(), y.std(ddof=1) / np.sqrt(len(y))
        return Fit(("mean",), np.array([m]), np.array([s]), np.array([m - 2 * s]), np.array([m + 2 * s]),
                   np.array([len(y) - 1.0]))


class Killer(SlowMean):
    def fit(self, data):
        if data["y"][0] > 3.4:
            os._exit(3)
        return super().fit(data)


def in_worker():
    return os.environ.get("SIMSTUDY_WORKER") == "1"  # a run's worker process (loky's or forked)


class Hang(SlowMean):
    def __init__(self, mode, threshold, workers_only=False):
        super().__init__(0.0)
        self.mode, self.threshold, self.workers_only = mode, threshold, workers_only

    def fit(self, data):
        if data["y"].mean() > self.threshold and (in_worker() or not self.workers_only):
            if self.mode == "blocked":
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            time.sleep(1.5 if self.mode == "pause" else 3600)
        return super().fit(data)


class BatchHang(Hang):
    def fit_batch(self, datasets):
        return [self.fit(d) for d in datasets]


methods = {"mean": SlowMean(float(os.environ.get("SIMSTUDY_TEST_SLEEP", "0.002")))}
if os.environ.get("SIMSTUDY_TEST_KILLER"):
    methods["killer"] = Killer(0.0)
if os.environ.get("SIMSTUDY_TEST_HANG"):
    _mode, _threshold, *_flags = os.environ["SIMSTUDY_TEST_HANG"].split(":")
    _flags = set(",".join(_flags).split(","))
    methods["hang"] = (BatchHang if "batch" in _flags else Hang)(
        _mode, float(_threshold), "workers" in _flags)

study = Study(name="slow", design=Design({"n": [10, 30], "mu": [0.0, 1.0]}), dgp=Normal(), estimators=methods,
              reps=300, seed=11)
