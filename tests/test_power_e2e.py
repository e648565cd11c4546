"""Simulated power and type I error from real runs against the analytic companions (simstudy.stats.power)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import simstudy
from simstudy import OLS, Design, MixedLM, Study
from simstudy.dgp.clustered import RandomIntercept
from simstudy.stats.power import cluster_trial_power, naive_type1_error

REPS = 2000


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Cells where a REML estimate of 0 is uncommon (at most ~3% of replicates, at 10 clusters of 20 and ICC
    0.1), so that REML with between-within df and the t test on cluster means nearly always agree."""
    study = Study(
        name="power_check",
        design=Design({"n_groups": [10, 20], "group_size": [20, 40], "icc": [0.1, 0.2],
                       "treatment_effect": [0.0, 0.4], "beta_x": [0.0]}),
        dgp=RandomIntercept(),
        estimators={"ols": OLS("y ~ treat"), "lmm_t": MixedLM("y ~ treat", groups="group", df_method="between-within")},
        reps=REPS, seed=7, unscored=("x",),
    )
    return simstudy.run(study, out=tmp_path_factory.mktemp("pw") / "run", jobs=1, quiet=True)


def test_lmm_power_matches_the_design_effect_power(runs):
    s = runs.summary.sel({"param": "treat", "estimator": "lmm_t", "beta_x": 0.0}).sel(treatment_effect=0.4)
    for G in (10, 20):
        for m in (20, 40):
            for icc in (0.1, 0.2):
                one = s.sel(n_groups=G, group_size=m, icc=icc)
                expected = cluster_trial_power(0.4, G / 2, m, icc, var=1 / (1 - icc), test="t")
                assert abs(float(one["power"]) - expected) < 3 * float(one["power_mcse"]), (G, m, icc)


def test_between_within_t_keeps_the_level(runs):
    s = runs.summary.sel({"param": "treat", "estimator": "lmm_t", "beta_x": 0.0}).sel(treatment_effect=0.0)
    err = s["power"].values.ravel()
    mcse = math.sqrt(0.05 * 0.95 / REPS)
    assert np.all(np.abs(err - 0.05) < 3 * mcse), err


def test_naive_ols_type1_error_is_hedges(runs):
    s = runs.summary.sel({"param": "treat", "estimator": "ols", "beta_x": 0.0}).sel(treatment_effect=0.0)
    for G in (10, 20):
        for m in (20, 40):
            for icc in (0.1, 0.2):
                one = s.sel(n_groups=G, group_size=m, icc=icc)
                expected = naive_type1_error(G // 2, m, icc)
                assert abs(float(one["power"]) - expected) < 3 * math.sqrt(expected * (1 - expected) / REPS)


def test_reml_wald_test_is_the_cluster_means_t_test_for_interior_balanced_fits():
    dgp = RandomIntercept()
    est = MixedLM("y ~ treat", groups="group", df_method="between-within")
    rng = np.random.default_rng(3)
    compared = 0
    for _ in range(20):
        data = dgp.generate(rng, n_groups=8, group_size=10, icc=0.2, beta_x=0.0)
        fit = est.fit(data)
        if fit.status != "ok":
            continue
        means = np.bincount(data["group"], weights=data["y"]) / np.bincount(data["group"])
        arm = np.bincount(data["group"], weights=data["treat"]) > 0
        t = stats.ttest_ind(means[arm], means[~arm])
        k = fit.params.index("treat")
        assert fit.estimate[k] == pytest.approx(means[arm].mean() - means[~arm].mean(), rel=1e-9)
        assert fit.estimate[k] / fit.se[k] == pytest.approx(t.statistic, rel=1e-7)
        assert fit.df[k] == 8 - 2
        compared += 1
    assert compared >= 15
