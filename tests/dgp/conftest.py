"""Helpers shared by the DGP tests: Monte Carlo checks against the truth, OLS fits through
simstudy.estimators.formula."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable

import numpy as np
import pytest

from simstudy.dgp import factor_names
from simstudy.estimators.formula import Formula


def _mc_check(values, target: float, label: str = "", k: float = 4.0, slack: float = 0.0) -> None:
    """Assert that the mean of per-replicate ``values`` is within ``k`` Monte Carlo SEs (+ ``slack``) of target."""
    v = np.asarray(values, dtype=float)
    mean, mcse = v.mean(), v.std(ddof=1) / np.sqrt(v.size)
    assert abs(mean - target) <= k * mcse + slack, (
        f"{label}: mean {mean:.5g} vs truth {target:.5g}, MCSE {mcse:.3g} ({(mean - target) / mcse:+.1f} MCSE)"
    )


@pytest.fixture
def mc_check() -> Callable[..., None]:
    """``mc_check(values, target, label, k=4, slack=0)``: the mean of ``values`` matches ``target`` within k MCSE."""
    return _mc_check


@pytest.fixture
def ols() -> Callable[[str, dict], dict[str, float]]:
    """``ols(formula, data)``: OLS coefficients by the names simstudy.estimators.formula gives the columns."""

    def fit(formula: str, data: dict) -> dict[str, float]:
        y, X, names = Formula(formula).build(data)
        beta = np.linalg.lstsq(X, y, rcond=None)[0]
        return dict(zip(names, beta))

    return fit


@pytest.fixture
def declared_factors() -> Callable[[object], None]:
    """Check the factor declaration: a dataclass ``factors`` that ``generate``, ``truth`` and ``validate`` build."""

    def check(dgp: object) -> None:
        cls = type(dgp).factors
        assert dataclasses.is_dataclass(cls)
        defaults = factor_names(dgp)
        assert defaults == {f.name: f.default for f in dataclasses.fields(cls)}
        assert defaults and all(v is not inspect.Parameter.empty for v in defaults.values())
        dgp.validate(**defaults)
        assert dgp.truth(**defaults) == dgp.truth()
        data, again = dgp.generate(np.random.default_rng(1), **defaults), dgp.generate(np.random.default_rng(1))
        assert all(np.array_equal(data[k], again[k]) for k in data)
        for method in (dgp.validate, dgp.truth, lambda **f: dgp.generate(np.random.default_rng(0), **f)):
            with pytest.raises(TypeError, match="'not_a_factor'"):
                method(not_a_factor=1)

    return check
