"""Every estimator configuration passes check_estimator; the check itself catches contract violations."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from simstudy.estimators import OLS, FastMixedLM, Fit, MixedLM, StatsmodelsMixedLM
from simstudy.estimators.conformance import check_estimator


def clustered(seed=0, n_groups=10, size=6, var_g=0.5):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), size)
    n = g.size
    x = rng.normal(size=n)
    treat = (np.arange(n_groups) % 2)[g].astype(float)
    y = 1 + 0.5 * x + 0.3 * treat + np.sqrt(var_g) * rng.normal(size=n_groups)[g] + rng.normal(size=n)
    rep = np.tile(np.repeat(np.arange(3), 2), n_groups)
    return {"y": y, "x": x, "treat": treat, "g": g, "rep": rep, "h": np.array(["a", "b", "c"])[rep]}


DATA = clustered()
ZERO_VAR = clustered(seed=1, var_g=0.0)

CONFIGS = [
    ("ols", OLS("y ~ x + treat"), DATA),
    ("ols-categorical", OLS("y ~ x + C(h)"), DATA),
    ("ols-cluster", OLS("y ~ x + treat", groups="g"), DATA),
    ("ols-fe", OLS("y ~ x", fixed_effects="g"), DATA),
    ("ols-fe-not-estimable", OLS("y ~ x + treat", fixed_effects="g"), DATA),
    ("ols-fe-cluster", OLS("y ~ x", fixed_effects="g", groups="g"), DATA),
    ("ols-rank-deficient", OLS("y ~ x + x2"), {**DATA, "x2": 3 * DATA["x"]}),
    ("ols-level-90", OLS("y ~ x", level=0.9), DATA),
    ("ols-failed", OLS("y ~ x", groups="g"), {**DATA, "g": np.zeros(60, dtype=int)}),
    *[
        (f"{engine}-{name}", cls(formula, groups=groups, **kw), data)
        for engine, cls in (("statsmodels", StatsmodelsMixedLM), ("fast", FastMixedLM))
        for name, formula, groups, kw, data in (
            ("mixedlm", "y ~ x + treat", "g", {}, DATA),
            ("mixedlm-ml", "y ~ x + treat", "g", {"reml": False}, DATA),
            ("mixedlm-nested", "y ~ x", ["g", "rep"], {}, DATA),
            ("mixedlm-boundary-or-failed", "y ~ x + treat", "g", {}, ZERO_VAR),
            ("mixedlm-one-group", "y ~ x", "g", {}, {**DATA, "g": np.zeros(60, dtype=int)}),
            ("mixedlm-not-estimable", "y ~ x + x2", "g", {}, {**DATA, "x2": 3 * DATA["x"]}),
        )
    ],
    ("statsmodels-mixedlm-nonconverged", StatsmodelsMixedLM("y ~ x + treat", groups="g", method="cg"), ZERO_VAR),
    ("fast-mixedlm-t", FastMixedLM("y ~ x + treat", groups="g", df_method="between-within"), DATA),
    ("fast-mixedlm-satterthwaite", FastMixedLM("y ~ x + treat", groups="g", df_method="satterthwaite"), DATA),
    ("fast-mixedlm-slope", FastMixedLM("y ~ x", groups="g", slope="x"), DATA),
    ("mixedlm-auto", MixedLM("y ~ x + treat", groups="g"), DATA),
]


@pytest.mark.parametrize("name,estimator,data", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_estimator_conforms(name, estimator, data):
    fit = check_estimator(estimator, data)
    assert isinstance(fit, Fit)


def test_dataframe_input_conforms():
    check_estimator(OLS("y ~ x", groups="g"), pd.DataFrame(DATA))
    check_estimator(MixedLM("y ~ x", groups="g"), pd.DataFrame(DATA))


# --- the checker catches violations --------------------------------------------------------------------
class _Base:
    def __init__(self):
        self.inner = OLS("y ~ x")

    def fit(self, data):
        return self.inner.fit(data)


class StoresState(_Base):
    def fit(self, data):
        fit = super().fit(data)
        self.last_fit = fit
        return fit


class MutatesConfig(_Base):
    def fit(self, data):
        self.inner.level = 0.5
        return super().fit(data)


class Random(_Base):
    def fit(self, data):
        fit = super().fit(data)
        shift = 1e-9 * np.random.default_rng().random()
        return dataclasses.replace(
            fit, estimate=fit.estimate + shift, ci_lower=fit.ci_lower + shift, ci_upper=fit.ci_upper + shift
        )


class WrongLength(_Base):
    def fit(self, data):
        return dataclasses.replace(super().fit(data), se=np.ones(3))


class IntArrays(_Base):
    def fit(self, data):
        return dataclasses.replace(super().fit(data), df=np.array([1, 2]))


class BadStatus(_Base):
    def fit(self, data):
        return dataclasses.replace(super().fit(data), status="converged")


class FailedWithNumbers(_Base):
    def fit(self, data):
        return dataclasses.replace(super().fit(data), status="failed")


class IntervalMissesEstimate(_Base):
    def fit(self, data):
        fit = super().fit(data)
        return dataclasses.replace(fit, ci_lower=fit.estimate + 1.0, ci_upper=fit.estimate + 2.0)


class NanWithoutReason(_Base):
    def fit(self, data):
        fit = super().fit(data)
        return dataclasses.replace(fit, estimate=np.array([np.nan, 1.0]))


class MutatesData(_Base):
    def fit(self, data):
        data["y"][0] += 1.0
        return super().fit(data)


class DictOnly(_Base):
    def fit(self, data):
        fit = super().fit(data)
        if isinstance(data, pd.DataFrame):
            return dataclasses.replace(fit, message="a DataFrame")
        return fit


@pytest.mark.parametrize(
    "estimator,match",
    [
        (StoresState(), "changed the estimator's attributes"),
        (MutatesConfig(), "changed the estimator's attributes"),
        (Random(), "not deterministic"),
        (WrongLength(), "Fit.se has shape"),
        (IntArrays(), "must be float"),
        (BadStatus(), "is not one of"),
        (FailedWithNumbers(), "failed fit must have every"),
        (IntervalMissesEstimate(), "ci_lower > estimate"),
        (NanWithoutReason(), "need a reason"),
        (MutatesData(), "changed the data"),
        (DictOnly(), "dict of arrays and a DataFrame"),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, str) else "",
)
def test_checker_catches(estimator, match):
    data = {k: v.copy() for k, v in DATA.items()}
    with pytest.raises(AssertionError, match=match):
        check_estimator(estimator, data)
