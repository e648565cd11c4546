import numpy as np

from simstudy.design import Design
from simstudy.estimators.base import Fit
from simstudy.study import Study


class Toy:
    def generate(self, rng, n=20, mu=0.0, sd=1.0):
        return {"y": rng.normal(mu, sd, n)}
    def truth(self, n=20, mu=0.0, sd=1.0):
        return {"mean": mu}
    def validate(self, n=20, mu=0.0, sd=1.0):
        if n < 2: raise ValueError(f"factor 'n' must be at least 2, got {n}")

class Mean:
    def fit(self, data):
        y = data["y"]; m = y.mean(); s = y.std(ddof=1)/np.sqrt(len(y))
        return Fit(("mean",), np.array([m]), np.array([s]), np.array([m-1.96*s]), np.array([m+1.96*s]), np.array([np.nan]))

class Boom:
    def fit(self, data):
        if data["y"][0] > 1: raise RuntimeError("boom")
        import warnings; warnings.warn("careful")
        return Mean().fit(data)

study = Study(name="toy", design=Design({"n": [10, 40], "mu": [0.0, 1.0]}), dgp=Toy(),
              estimators={"mean": Mean(), "boom": Boom()}, reps=200, seed=7)
