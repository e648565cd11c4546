"""BinaryTrial and CountTrial: contract, columns, validation, the truths by quadrature (checked against adaptive
quadrature), the marginal estimand recovered by a huge GEE fit, the ICC conversions and the cluster-level
estimand checked by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize, special

from simstudy.dgp import DGP, BinaryTrial, CountTrial
from simstudy.dgp.binary import ESTIMANDS, binary_parameters, latent_variance, normal_expectation
from simstudy.dgp.count import count_variance
from simstudy.estimators import GEE, ClusterLevel

BIN, CNT = BinaryTrial(), CountTrial()


def quad_expectation(f, sd):
    """E[f(U)], U ~ N(0, sd^2), by adaptive quadrature (the check of normal_expectation)."""
    g = lambda u: f(u) * np.exp(-0.5 * (u / sd) ** 2) / (sd * math.sqrt(2 * math.pi))  # noqa: E731
    cuts = [-40 * sd, -6 * sd, 0.0, 6 * sd, 40 * sd]
    return sum(integrate.quad(g, a, b, epsabs=1e-15, epsrel=1e-13, limit=400)[0] for a, b in zip(cuts, cuts[1:]))


@pytest.mark.parametrize("dgp", [BIN, CNT])
def test_contract_and_columns(dgp, declared_factors):
    assert isinstance(dgp, DGP)
    declared_factors(dgp)
    d = dgp.generate(np.random.default_rng(0), n_clusters=5, cluster_size=4)
    assert set(d) == {"y", "treat", "cluster"}
    assert all(v.shape == (20,) for v in d.values())
    assert d["y"].dtype == np.float64 and d["treat"].dtype == d["cluster"].dtype == np.int64
    np.testing.assert_array_equal(d["cluster"], np.repeat(np.arange(5), 4))
    by_cluster = d["treat"].reshape(5, 4)
    assert (by_cluster == by_cluster[:, :1]).all() and by_cluster[:, 0].sum() == 2  # floor(5 / 2) treated
    if dgp is BIN:
        assert set(np.unique(d["y"])) <= {0.0, 1.0}
    else:
        assert np.all(d["y"] >= 0) and np.all(d["y"] == np.round(d["y"]))


@pytest.mark.parametrize("dgp", [BIN, CNT])
def test_few_clusters_and_unequal_sizes(dgp):
    dgp.validate(n_clusters=4, size_spread=0.5)
    cvs = []
    for seed in range(300):
        d = dgp.generate(np.random.default_rng(seed), n_clusters=4, cluster_size=30, size_spread=0.5)
        sizes = np.bincount(d["cluster"])
        assert sizes.size == 4 and sizes.sum() == 120 and sizes.min() >= 1
        assert np.bincount(d["cluster"], weights=d["treat"]).astype(bool).sum() == 2
        cvs.append(sizes.var() / sizes.mean() ** 2)
    assert abs(np.mean(cvs) - 0.25) < 0.03  # expected squared CV (the RandomIntercept sizes)


@pytest.mark.parametrize("factor, value", [
    ("n_clusters", 1), ("n_clusters", 4.5), ("cluster_size", 0), ("size_spread", -0.1), ("size_spread", 5.0),
    ("icc", 1.0), ("icc", -0.1), ("prevalence", 0.0), ("prevalence", 1.0), ("odds_ratio", 0.0),
    ("odds_ratio", math.nan),
])
def test_binary_validate_rejects(factor, value):
    with pytest.raises(ValueError, match=f"'{factor}'") as err:
        BIN.validate(**{factor: value})
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("factor, value", [("rate", 0.0), ("rate", -1.0), ("rate_ratio", 0.0), ("icc", 1.0),
                                           ("n_clusters", 1)])
def test_count_validate_rejects(factor, value):
    with pytest.raises(ValueError, match=f"'{factor}'"):
        CNT.validate(**{factor: value})


@pytest.mark.parametrize("icc", [0.0, 0.001, 0.05, 0.3, 0.8, 0.95])
@pytest.mark.parametrize("prevalence, odds_ratio", [(0.3, 2.0), (0.02, 0.5), (0.9, 1.0), (0.5, 6.0)])
def test_binary_truth_by_quadrature(prevalence, odds_ratio, icc):
    t = BIN.truth(prevalence=prevalence, odds_ratio=odds_ratio, icc=icc)
    var = icc / (1 - icc) * math.pi**2 / 3
    assert t["var(cluster)"] == pytest.approx(var, rel=1e-15, abs=0)
    b0, b1 = t["Intercept"]["conditional"], t["treat"]["conditional"]
    assert b1 == pytest.approx(math.log(odds_ratio), rel=1e-15)
    sd = math.sqrt(var)
    if sd == 0:
        p0, p1 = special.expit(b0), special.expit(b0 + b1)
    else:
        p0 = quad_expectation(lambda u: special.expit(b0 + u), sd)
        p1 = quad_expectation(lambda u: special.expit(b0 + b1 + u), sd)
    assert p0 == pytest.approx(prevalence, rel=1e-11)  # b0 solves the marginal prevalence
    assert t["Intercept"]["difference"] == pytest.approx(prevalence, rel=1e-12)
    assert t["Intercept"]["marginal"] == pytest.approx(special.logit(prevalence), rel=1e-12)
    assert t["treat"]["marginal"] == pytest.approx(special.logit(p1) - special.logit(p0), abs=1e-10)
    assert t["treat"]["difference"] == pytest.approx(p1 - p0, abs=1e-11)
    assert t["treat"]["log-ratio"] == pytest.approx(math.log(p1 / p0), abs=1e-10)
    if icc == 0 or odds_ratio == 1:
        assert t["treat"]["marginal"] == pytest.approx(b1, abs=1e-12)
    else:  # attenuated towards 0
        assert abs(t["treat"]["marginal"]) < abs(b1)


def test_quadrature_agrees_with_gauss_hermite_where_it_converges():
    x, w = np.polynomial.hermite.hermgauss(120)
    for sd in (0.1, 0.5, 1.0, 1.8):
        for f in (lambda u: special.expit(-1.3 + u), np.exp):
            gh = np.sum(w * f(math.sqrt(2) * sd * x)) / math.sqrt(math.pi)
            assert normal_expectation(f, sd) == pytest.approx(gh, rel=1e-13)


@pytest.mark.parametrize("icc, rate", [(0.0, 1.0), (0.05, 0.3), (0.2, 4.0)])
def test_count_truth(icc, rate):
    t = CNT.truth(icc=icc, rate=rate, rate_ratio=0.6)
    var = t["var(cluster)"]
    assert var == pytest.approx(math.log1p(icc / ((1 - icc) * rate)), rel=1e-14)
    b0, b1 = t["Intercept"]["conditional"], t["treat"]["conditional"]
    if var > 0:
        assert quad_expectation(lambda u: np.exp(b0 + u), math.sqrt(var)) == pytest.approx(rate, rel=1e-12)
    assert t["Intercept"]["marginal"] == t["Intercept"]["log-ratio"] == pytest.approx(math.log(rate))
    assert t["treat"]["marginal"] == t["treat"]["log-ratio"] == b1 == pytest.approx(math.log(0.6))
    assert t["treat"]["difference"] == pytest.approx(rate * (0.6 - 1), rel=1e-14)


def test_estimands_selection():
    assert BinaryTrial().estimands == ESTIMANDS
    t = BinaryTrial(estimands=("conditional", "marginal")).truth(icc=0.2, odds_ratio=2.0)
    assert set(t["treat"]) == set(t["Intercept"]) == {"conditional", "marginal"}
    assert set(CountTrial(estimands="marginal").truth()["treat"]) == {"marginal"}
    assert "estimands=('marginal',)" in repr(CountTrial(estimands="marginal"))
    for bad in ((), ("conditionl",)):
        with pytest.raises(ValueError, match="estimands"):
            BinaryTrial(estimands=bad)


# ------------------------------------------------------------------------------------------------------------
def test_huge_gee_fit_recovers_the_marginal_log_odds_ratio():
    """4000 clusters: GEE's estimate is within its SE of the marginal log odds ratio computed by quadrature,
    and many SEs from the conditional (GLMM) one."""
    factors = dict(n_clusters=4000, cluster_size=20, size_spread=0.4, icc=0.3, odds_ratio=3.0, prevalence=0.25)
    t = BIN.truth(**factors)
    d = BIN.generate(np.random.default_rng(11), **factors)
    for corr in ("exchangeable", "independence"):
        fit = GEE("y ~ treat", groups="cluster", corr=corr).fit(d)
        z = (fit.estimate - [t["Intercept"]["marginal"], t["treat"]["marginal"]]) / fit.se
        assert np.all(np.abs(z) < 2.5), (corr, z)
        z_conditional = (fit.estimate[1] - t["treat"]["conditional"]) / fit.se[1]
        assert z_conditional < -4, (corr, z_conditional)  # expected about -6.6
    assert t["treat"]["conditional"] - t["treat"]["marginal"] > 0.2


def test_huge_gee_fit_recovers_the_count_estimands():
    factors = dict(n_clusters=3000, cluster_size=15, size_spread=0.4, icc=0.1, rate=0.6, rate_ratio=0.7)
    t = CNT.truth(**factors)
    fit = GEE("y ~ treat", groups="cluster", family="poisson").fit(CNT.generate(np.random.default_rng(5), **factors))
    z = (fit.estimate - [t["Intercept"]["marginal"], t["treat"]["marginal"]]) / fit.se
    assert np.all(np.abs(z) < 2.5), z
    assert (fit.estimate[0] - t["Intercept"]["conditional"]) / fit.se[0] > 5  # log mu_0 = b0 + var / 2


def _anova_icc(y, cluster, m):
    """One-way ANOVA estimate of the ICC with equal cluster sizes m."""
    Y = y[np.argsort(cluster, kind="stable")].reshape(-1, m)
    means = Y.mean(axis=1)
    msw = ((Y - means[:, None]) ** 2).sum() / (Y.shape[0] * (m - 1))
    msb = m * ((means - means.mean()) ** 2).sum() / (Y.shape[0] - 1)
    return (msb - msw) / (msb + (m - 1) * msw)


def test_binary_icc_by_simulation():
    """The latent ICC sets var(cluster) = icc pi^2/3 / (1 - icc): the binary responses of a control cluster are
    correlated as that variance implies (observed-scale ICC by quadrature), and a maximum-likelihood fit of the
    random-intercept logistic model (written here, Gauss-Hermite over cluster totals) recovers the variance."""
    icc, m, K = 0.3, 10, 40000
    par = binary_parameters(0.3, 2.0, icc)
    d = BIN.generate(np.random.default_rng(3), n_clusters=K, cluster_size=m, icc=icc, odds_ratio=2.0)
    control = d["treat"] == 0
    observed = _anova_icc(d["y"][control], d["cluster"][control], m)
    assert observed == pytest.approx(par["icc_observed"], abs=0.006)  # SE about 0.0018
    assert not observed == pytest.approx(icc, abs=0.05)  # the observed-scale ICC is much smaller

    totals = np.bincount(d["cluster"], weights=d["y"]) + (m + 1) * np.bincount(d["cluster"], weights=d["treat"]) / m
    pattern = np.bincount(totals.astype(int), minlength=2 * (m + 1))  # clusters per (events, arm)
    events, arm = np.arange(2 * (m + 1)) % (m + 1), np.arange(2 * (m + 1)) // (m + 1)
    x, w = np.polynomial.hermite.hermgauss(60)

    def nll(theta):
        b0, b1, log_var = theta
        u = math.sqrt(2 * math.exp(log_var)) * x
        eta = b0 + b1 * arm[:, None] + u[None, :]
        loglik = events[:, None] * -np.logaddexp(0, -eta) + (m - events)[:, None] * -np.logaddexp(0, eta)
        return -np.dot(pattern, special.logsumexp(loglik, b=w / math.sqrt(math.pi), axis=1))

    res = optimize.minimize(nll, [par["b0"], par["b1"], 0.0], method="BFGS", options={"gtol": 1e-6})
    h = 1e-4  # SE of log var from the curvature of the profile along log var
    curv = (nll(res.x + [0, 0, h]) - 2 * res.fun + nll(res.x - [0, 0, h])) / h**2
    se_log_var = 1 / math.sqrt(curv)  # conservative (ignores the other parameters' estimation)
    assert abs(res.x[2] - math.log(latent_variance(icc))) < 4 * se_log_var + 0.02
    assert abs(math.exp(res.x[2]) - par["var"]) / par["var"] < 0.05
    np.testing.assert_allclose(res.x[:2], [par["b0"], par["b1"]], atol=0.05)


def test_count_icc_by_simulation(mc_check):
    """The correlation of two counts of a control cluster is the icc factor (ANOVA estimates, 30 data sets of
    10000 control clusters each)."""
    for icc, rate in ((0.05, 1.0), (0.2, 3.0)):
        values = []
        for seed in range(30):
            d = CNT.generate(np.random.default_rng(seed), n_clusters=20000, cluster_size=10, icc=icc, rate=rate)
            control = d["treat"] == 0
            values.append(_anova_icc(d["y"][control], d["cluster"][control], 10))
        mc_check(values, icc, f"count icc {icc} at rate {rate}")
        assert count_variance(icc, rate) == pytest.approx(CNT.truth(icc=icc, rate=rate)["var(cluster)"])


def test_cluster_level_estimand_by_simulation(mc_check):
    """The unweighted mean of cluster proportions (and mean counts) estimates the marginal mean whatever the
    cluster sizes: the difference of arms is unbiased for pi_1 - pi_0 (mu_1 - mu_0)."""
    factors = dict(n_clusters=10, cluster_size=20, size_spread=0.8, icc=0.2, odds_ratio=3.0, prevalence=0.2)
    est = ClusterLevel(groups="cluster")
    values = [est.fit(BIN.generate(np.random.default_rng(s), **factors)).estimate for s in range(3000)]
    truth = BIN.truth(**factors)
    mc_check([v[1] for v in values], truth["treat"]["difference"], "risk difference")
    mc_check([v[0] for v in values], truth["Intercept"]["difference"], "control risk")
    cfactors = dict(n_clusters=10, cluster_size=20, size_spread=0.8, icc=0.2, rate=1.5, rate_ratio=0.5)
    values = [est.fit(CNT.generate(np.random.default_rng(s), **cfactors)).estimate[1] for s in range(3000)]
    mc_check(values, CNT.truth(**cfactors)["treat"]["difference"], "rate difference")
