import dataclasses
import inspect

import numpy as np

from simstudy.dgp import factor_names


@dataclasses.dataclass
class _Factors:
    n: int = 20
    mu: float = 0.0
    effects: list = dataclasses.field(default_factory=lambda: [1.0, 2.0])
    fixed: int = dataclasses.field(default=0, init=False)  # not a keyword argument, so not a factor


class Declared:
    factors = _Factors

    def generate(self, rng: np.random.Generator, **factors: object) -> dict:
        f = self.factors(**factors)
        return {"y": rng.normal(f.mu, 1.0, f.n)}


class OldStyle:
    factors = ("not", "a", "dataclass")  # an unrelated attribute of this name is ignored

    def generate(self, rng, n, mu=0.0, *args, **kwargs):
        return {"y": rng.normal(mu, 1.0, n)}


def test_factor_names_reads_the_declared_dataclass():
    assert factor_names(Declared()) == {"n": 20, "mu": 0.0, "effects": [1.0, 2.0]}


def test_factor_names_falls_back_to_the_signature_of_generate():
    assert factor_names(OldStyle()) == {"n": inspect.Parameter.empty, "mu": 0.0}
