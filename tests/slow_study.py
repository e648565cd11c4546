"""A small study whose fits take a few milliseconds, for the kill-and-resume tests.

SIMSTUDY_TEST_SLEEP sets the seconds each fit sleeps (default 0.002); SIMSTUDY_TEST_KILLER=1 adds a method that kills its worker process (os._exit) on the
replicates whose first value exceeds 3.4: a crash in compiled code, as far as the runner can tell.
"""

import os
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


methods = {"mean": SlowMean(float(os.environ.get("SIMSTUDY_TEST_SLEEP", "0.002")))}
if os.environ.get("SIMSTUDY_TEST_KILLER"):
    methods["killer"] = Killer(0.0)

study = Study(name="slow", design=Design({"n": [10, 30], "mu": [0.0, 1.0]}), dgp=Normal(), estimators=methods,
              reps=300, seed=11)
