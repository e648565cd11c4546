"""A cheap study for the power search: n normal observations, a z test of their mean (power known exactly)."""

import numpy as np

from simstudy.design import Design
from simstudy.estimators.base import Fit
from simstudy.study import Study

EFFECT = 1.2


class Sample:
    def generate(self, rng, n=5, effect=EFFECT):
        return {"y": rng.normal(effect, 1.0, n)}

    def truth(self, n=5, effect=EFFECT):
        return {"mean": effect}


class ZTest:
    level = 0.95

    def fit(self, data):
        y = data["y"]
        m, s = y.mean(), 1.0 / np.sqrt(y.size)
        return Fit(("mean",), np.array([m]), np.array([s]), np.array([m - 1.959963985 * s]),
                   np.array([m + 1.959963985 * s]), np.array([np.nan]))


study = Study(name="power_toy", design=Design({"n": [5], "effect": [EFFECT]}), dgp=Sample(),
              estimators={"z": ZTest()}, reps=100, seed=int(__import__("os").environ.get("POWER_TOY_SEED", "1")))
