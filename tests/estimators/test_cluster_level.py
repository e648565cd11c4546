"""ClusterLevel: the unweighted t test on cluster summaries, the inverse-variance weighted version, the log
scales, failures and the estimator contract."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

from simstudy.dgp import BinaryTrial, CountTrial
from simstudy.estimators import ClusterLevel
from simstudy.estimators.conformance import check_estimator


def binary(seed=1, K=10, m=20, spread=0.7, **kw):
    return BinaryTrial().generate(np.random.default_rng(seed), n_clusters=K, cluster_size=m, size_spread=spread,
                                  icc=0.1, odds_ratio=2.0, **kw)


def summaries(data):
    g, y, t = data["cluster"], data["y"], data["treat"]
    n = np.bincount(g).astype(float)
    return np.bincount(g, weights=y) / n, np.bincount(g, weights=t) / n == 1, n


def test_unweighted_is_the_pooled_t_test():
    data = binary()
    s, t, _ = summaries(data)
    fit = ClusterLevel("y ~ treat", groups="cluster").fit(data)
    res = stats.ttest_ind(s[t], s[~t], equal_var=True)
    ci = res.confidence_interval(0.95)
    assert fit.params == ("Intercept", "treat")
    np.testing.assert_allclose(fit.estimate, [s[~t].mean(), s[t].mean() - s[~t].mean()], rtol=1e-12)
    np.testing.assert_allclose(fit.estimate[1] / fit.se[1], res.statistic, rtol=1e-10)
    np.testing.assert_allclose([fit.ci_lower[1], fit.ci_upper[1]], [ci.low, ci.high], rtol=1e-10)
    np.testing.assert_array_equal(fit.df, [8.0, 8.0])
    ols = sm.OLS(s, sm.add_constant(t.astype(float))).fit()  # the same as OLS of summaries on the arm
    np.testing.assert_allclose(fit.se, ols.bse, rtol=1e-10)


def test_inverse_variance_weights():
    data = binary(seed=3, K=12)
    s, t, n = summaries(data)
    y, g = data["y"], data["cluster"]
    K, N = s.size, y.size
    sw2 = np.sum((y - s[g]) ** 2) / (N - K)
    assert np.isclose(sw2, np.sum(n * s * (1 - s)) / (N - K))  # binomial within-cluster variance
    sb2 = max(0.0, (np.var(s[t], ddof=0) * t.sum() + np.var(s[~t], ddof=0) * (~t).sum()) / (K - 2)
              - sw2 * np.mean(1 / n))
    w = 1 / (sb2 + sw2 / n)
    wls = sm.WLS(s, sm.add_constant(t.astype(float)), weights=w).fit()
    fit = ClusterLevel(groups="cluster", weights="inverse-variance").fit(data)
    np.testing.assert_allclose(fit.estimate, wls.params, rtol=1e-10)
    np.testing.assert_allclose(fit.se[1], wls.bse[1], rtol=1e-10)
    np.testing.assert_allclose(fit.se[0], np.sqrt(wls.scale / w[~t].sum()), rtol=1e-10)
    np.testing.assert_array_equal(fit.df, [K - 2.0, K - 2.0])
    # equal cluster sizes: every weight the same, the unweighted test
    equal = binary(seed=3, K=12, spread=0.0)
    a = ClusterLevel(groups="cluster", weights="inverse-variance").fit(equal)
    b = ClusterLevel(groups="cluster").fit(equal)
    np.testing.assert_allclose(a.estimate, b.estimate, rtol=1e-12)
    np.testing.assert_allclose(a.se, b.se, rtol=1e-10)


@pytest.mark.parametrize("weights", ["equal", "inverse-variance"])
def test_log_scales_by_the_delta_method(weights):
    data = binary(seed=5, K=14)
    diff = ClusterLevel(groups="cluster", weights=weights).fit(data)
    m0, d = diff.estimate
    m1 = m0 + d
    v0 = diff.se[0] ** 2
    v1 = diff.se[1] ** 2 - v0
    ratio = ClusterLevel(groups="cluster", weights=weights, scale="log-ratio").fit(data)
    np.testing.assert_allclose(ratio.estimate, [np.log(m0), np.log(m1 / m0)], rtol=1e-12)
    np.testing.assert_allclose(ratio.se, np.sqrt([v0 / m0**2, v0 / m0**2 + v1 / m1**2]), rtol=1e-10)
    odds = ClusterLevel(groups="cluster", weights=weights, scale="log-odds").fit(data)
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    np.testing.assert_allclose(odds.estimate, [logit(m0), logit(m1) - logit(m0)], rtol=1e-12)
    g0, g1 = 1 / (m0 * (1 - m0)), 1 / (m1 * (1 - m1))
    np.testing.assert_allclose(odds.se, np.sqrt([g0**2 * v0, g0**2 * v0 + g1**2 * v1]), rtol=1e-10)
    q = stats.t.ppf(0.975, 12)
    np.testing.assert_allclose(odds.ci_upper - odds.estimate, q * odds.se, rtol=1e-12)


def test_estimand_labels():
    assert ClusterLevel(groups="cluster").estimand == "difference"
    assert ClusterLevel(groups="cluster", scale="log-ratio").estimand == "log-ratio"
    assert ClusterLevel(groups="cluster", scale="log-odds").estimand == "marginal"
    truth = BinaryTrial().truth()
    for scale in ("difference", "log-ratio", "log-odds"):
        est = ClusterLevel(groups="cluster", scale=scale)
        assert {p: truth[p][est.estimand] for p in ("Intercept", "treat")}


def test_counts_and_missing_values():
    data = CountTrial().generate(np.random.default_rng(2), n_clusters=8, size_spread=0.5, rate=2.0)
    s, t, _ = summaries(data)
    fit = ClusterLevel(groups="cluster", scale="log-ratio").fit(data)
    np.testing.assert_allclose(fit.estimate[1], np.log(s[t].mean() / s[~t].mean()), rtol=1e-12)
    y = data["y"].copy()
    y[:3] = np.nan
    keep = {k: v[3:] for k, v in data.items()}
    np.testing.assert_allclose(ClusterLevel(groups="cluster").fit({**data, "y": y}).estimate,
                               ClusterLevel(groups="cluster").fit(keep).estimate, rtol=1e-12)


def test_failures():
    data = binary(seed=1, K=6)
    no_events = {**data, "y": np.where(data["treat"] == 1, 0.0, data["y"])}
    assert ClusterLevel(groups="cluster").fit(no_events).status == "ok"  # a difference is still finite
    for scale in ("log-ratio", "log-odds"):
        fit = ClusterLevel(groups="cluster", scale=scale).fit(no_events)
        assert fit.status == "failed" and "treated arm mean 0" in fit.message and np.isnan(fit.estimate).all()
    all_events = {**data, "y": np.ones_like(data["y"])}
    assert "control arm mean 1" in ClusterLevel(groups="cluster", scale="log-odds").fit(all_events).message
    one_arm = {**data, "treat": np.zeros_like(data["treat"])}
    assert ClusterLevel(groups="cluster").fit(one_arm).status == "failed"
    two = binary(seed=1, K=2)
    assert "at least 3 clusters" in ClusterLevel(groups="cluster").fit(two).message
    varies = {**data, "treat": (np.arange(data["y"].size) % 2)}
    with pytest.raises(ValueError, match="varies within clusters"):
        ClusterLevel(groups="cluster").fit(varies)
    with pytest.raises(ValueError, match="0/1"):
        ClusterLevel(groups="cluster").fit({**data, "treat": data["treat"] * 2})


@pytest.mark.parametrize("weights", ["equal", "inverse-variance"])
def test_summaries_constant_within_arms_give_no_test(weights):
    # every response 0, or 0 in one arm and 1 in the other: the variance estimate is 0; an SE of 0 would make
    # a zero-width interval (coverage 0) and p = 0 or NaN (R's t.test stops: data are essentially constant)
    data = binary(seed=3, K=8)
    arm = data["treat"].astype(float)
    for y in (np.zeros_like(arm), arm, 0.3 + 0 * arm, 0.1 * 3 + 0.2 * arm):
        fit = ClusterLevel(groups="cluster", weights=weights).fit({**data, "y": y})
        assert fit.status == "failed" and "essentially constant" in fit.message
        assert np.isnan(fit.se).all() and np.isnan(fit.ci_lower).all()
    nearly = {**data, "y": np.where(data["cluster"] == 0, 1e-9, 0.0)}  # one cluster differs: a real variance
    fit = ClusterLevel(groups="cluster", weights=weights).fit(nearly)
    assert fit.status == "ok" and (fit.se > 0).all()


@pytest.mark.parametrize("formula", ["y ~ treat + x", "y ~ C(treat)", "y ~ treat - 1", "y ~ treat:x"])
def test_formula_must_be_response_and_one_column(formula):
    with pytest.raises(ValueError, match="response ~ treat"):
        ClusterLevel(formula, groups="cluster")


@pytest.mark.parametrize("kwargs", [{"scale": "odds"}, {"weights": "size"}, {"level": 1.0}])
def test_bad_options(kwargs):
    with pytest.raises(ValueError):
        ClusterLevel(groups="cluster", **kwargs)


@pytest.mark.parametrize("scale", ["difference", "log-ratio", "log-odds"])
@pytest.mark.parametrize("weights", ["equal", "inverse-variance"])
def test_conformance(scale, weights):
    fit = check_estimator(ClusterLevel("y ~ treat", groups="cluster", scale=scale, weights=weights), binary(K=4))
    assert fit.status == "ok"
    check_estimator(ClusterLevel(groups="cluster", scale=scale, weights=weights), binary(K=2))  # failed fit
