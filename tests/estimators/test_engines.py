"""MixedLM picks its engine; both engines agree on well-posed data."""

from __future__ import annotations

import numpy as np
import pytest

from simstudy.dgp.clustered import RandomIntercept
from simstudy.estimators import FastMixedLM, MixedLM, StatsmodelsMixedLM


def test_engine_choice():
    assert isinstance(MixedLM("y ~ x", groups="g"), FastMixedLM)
    assert isinstance(MixedLM("y ~ x", groups=["a", "b"]), FastMixedLM)
    assert isinstance(MixedLM("y ~ x", groups=["a", "b", "c"]), StatsmodelsMixedLM)
    assert isinstance(MixedLM("y ~ x", groups="g", method="cg"), StatsmodelsMixedLM)
    assert isinstance(MixedLM("y ~ x", groups="g", engine="statsmodels"), StatsmodelsMixedLM)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"engine": "lme4"}, "engine must be one of"),
        ({"engine": "fast", "groups": ["a", "b", "c"]}, "use engine='statsmodels'"),
        ({"engine": "statsmodels", "df_method": "satterthwaite"}, "needs engine='fast'"),
        ({"bogus": 1}, "unknown option 'bogus'"),
    ],
)
def test_bad_engine_options(kwargs, message):
    args = {"groups": "g"} | kwargs
    with pytest.raises(ValueError, match=message):
        MixedLM("y ~ x", **args)


def test_engines_agree_on_interior_fit():
    data = RandomIntercept().generate(np.random.default_rng(5), n_groups=30, group_size=20, icc=0.2,
                                      treatment_effect=0.3)
    fast = MixedLM("y ~ x + treat", groups="group").fit(data)
    sm = MixedLM("y ~ x + treat", groups="group", engine="statsmodels").fit(data)
    assert fast.params == sm.params
    np.testing.assert_allclose(fast.estimate, sm.estimate, rtol=2e-3, atol=2e-4)
    # statsmodels' SEs come from the observed Hessian, the fast engine's from (X' V^-1 X)^-1 as lme4's
    np.testing.assert_allclose(fast.se[:3], sm.se[:3], rtol=1e-2)


def test_nested_ids_reaches_either_engine():
    for engine in ("fast", "statsmodels"):
        est = MixedLM("y ~ x", groups=["centre", "rep"], engine=engine, nested_ids="within")
        assert est.nested_ids == "within"
