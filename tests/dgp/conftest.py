"""Helpers shared by the DGP tests: Monte Carlo checks against the truth, OLS fits through simstudy.formula."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np
import pytest

from simstudy.formula import Formula


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
    """``ols(formula, data)``: OLS coefficients by the names simstudy.formula gives the columns."""

    def fit(formula: str, data: dict) -> dict[str, float]:
        y, X, names = Formula(formula).build(data)
        beta = np.linalg.lstsq(X, y, rcond=None)[0]
        return dict(zip(names, beta))

    return fit


@pytest.fixture
def same_factors() -> Callable[[object], None]:
    """Check that ``generate``, ``truth`` and ``validate`` take the same factor keywords with the same defaults."""

    def check(dgp: object) -> None:
        def params(fn):
            return {
                name: p.default
                for name, p in inspect.signature(fn).parameters.items()
                if name != "rng" and p.kind is p.KEYWORD_ONLY
            }

        gen = params(dgp.generate)
        assert gen and all(v is not inspect.Parameter.empty for v in gen.values())
        assert params(dgp.truth) == gen
        assert params(dgp.validate) == gen
        dgp.validate(**gen)

    return check
