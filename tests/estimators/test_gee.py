"""GEE: the small-sample corrections against per-cluster matrix algebra written here, statsmodels and R (geepack and
tests/data/gee/fit_gee.R); Fay-Graubard df; statuses, failures and the estimator contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.genmod import cov_struct, families
from statsmodels.genmod.generalized_estimating_equations import GEE as SMGEE

from simstudy.dgp import BinaryTrial, CountTrial
from simstudy.estimators import GEE
from simstudy.estimators.conformance import check_estimator
from simstudy.estimators.formula import Formula
from simstudy.estimators.gee import fay_graubard_df, sandwich

REF = Path(__file__).resolve().parents[1] / "data" / "gee"
CORRECTIONS = ("robust", "md", "kc", "fg")


def binary(seed=1, K=10, m=15, spread=0.6, x=True, **factors):
    d = BinaryTrial().generate(np.random.default_rng(seed), n_clusters=K, cluster_size=m, size_spread=spread,
                               icc=0.1, odds_ratio=2.0, **factors)
    if x:
        d["x"] = np.random.default_rng(seed + 100).normal(size=d["y"].size)
    return d


def counts(seed=2, K=8, m=12, spread=0.4):
    return CountTrial().generate(np.random.default_rng(seed), n_clusters=K, cluster_size=m, size_spread=spread,
                                 icc=0.1, rate=1.5, rate_ratio=0.7)


CASES = {
    "binary-x-exch": (binary(), "y ~ treat + x", "binomial", "exchangeable"),
    "binary-x-ind": (binary(), "y ~ treat + x", "binomial", "independence"),
    "binary-6": (binary(seed=4, K=6, x=False), "y ~ treat", "binomial", "exchangeable"),
    "count-exch": (counts(), "y ~ treat", "poisson", "exchangeable"),
    "count-ind": (counts(seed=3), "y ~ treat", "poisson", "independence"),
}


# ------------------------------------------------------------------------------------------------------------
# The independent computation: per cluster, n_i x n_i matrices, the published formulas as they are written.
def _msqrt(M, power):
    lam, Q = np.linalg.eigh(M)
    return (Q * lam**power) @ Q.T


def per_cluster(data, formula, family, alpha, beta, bound=0.75):
    """SEs of every correction and the pieces of Fay-Graubard's df, cluster by cluster."""
    y, X, _ = Formula(formula).build(data)
    g = np.asarray(data["cluster"])
    eta = X @ beta
    mu = 1 / (1 + np.exp(-eta)) if family == "binomial" else np.exp(eta)
    var = mu * (1 - mu) if family == "binomial" else mu  # also d mu / d eta (canonical links)
    parts = []
    for c in np.unique(g):
        rows = g == c
        n = rows.sum()
        D = X[rows] * var[rows, None]
        R = np.full((n, n), alpha) + (1 - alpha) * np.eye(n)
        V = np.sqrt(var[rows])[:, None] * R * np.sqrt(var[rows])[None, :]
        parts.append((D, V, np.linalg.inv(V), y[rows] - mu[rows]))
    B = sum(D.T @ Vi @ D for D, V, Vi, r in parts)
    Binv = np.linalg.inv(B)
    f = {}  # correction -> per cluster n_i x n_i matrix F_i with G_i = D_i' V_i^-1 F_i r_i (fg: None)
    for D, V, Vi, r in parts:
        H = D @ Binv @ D.T @ Vi
        Ht = _msqrt(V, -0.5) @ D @ Binv @ D.T @ _msqrt(V, -0.5)
        f.setdefault("robust", []).append(np.eye(len(r)))
        f.setdefault("md", []).append(np.linalg.inv(np.eye(len(r)) - H))
        f.setdefault("kc", []).append(_msqrt(V, 0.5) @ _msqrt(np.eye(len(r)) - Ht, -0.5) @ _msqrt(V, -0.5))
    fg_diag = [np.diag((1 - np.minimum(bound, np.diag(D.T @ Vi @ D @ Binv))) ** -0.5) for D, V, Vi, r in parts]
    out = {}
    for corr in CORRECTIONS:
        if corr == "fg":
            G = [Hd @ D.T @ Vi @ r for Hd, (D, V, Vi, r) in zip(fg_diag, parts)]
        else:
            G = [D.T @ Vi @ F @ r for F, (D, V, Vi, r) in zip(f[corr], parts)]
        cov = Binv @ sum(np.outer(gi, gi) for gi in G) @ Binv
        out[corr] = np.sqrt(np.diag(cov))
    return out, parts, Binv, f, fg_diag


def fg_df_nspace(parts, Binv, F, fg_diag, k):
    """Fay-Graubard's df of coefficient k in the observations' space: the contrast's variance is
    sum_i (c_i' rhat_i)^2 with rhat = (I - D B^-1 D' V^-1) r and Var(r) = blockdiag(V_i) (the working model)."""
    ell = np.eye(Binv.shape[0])[k]
    sizes = [len(r) for *_, r in parts]
    N, K = sum(sizes), len(parts)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    Dall = np.vstack([D for D, *_ in parts])
    Vinv_all = np.zeros((N, N))
    Vall = np.zeros((N, N))
    for i, (D, V, Vi, r) in enumerate(parts):
        s = slice(starts[i], starts[i + 1])
        Vinv_all[s, s], Vall[s, s] = Vi, V
    P = np.eye(N) - Dall @ Binv @ Dall.T @ Vinv_all  # rhat = P r
    A = np.zeros((K, N))
    for i, (D, V, Vi, r) in enumerate(parts):
        s = slice(starts[i], starts[i + 1])
        if F is None:  # fg: G_i = H_i D_i' V_i^-1 r_i
            c = Vi @ D @ fg_diag[i].T @ Binv @ ell
        else:
            c = F[i].T @ Vi @ D @ Binv @ ell
        A[i] = c @ P[s]
    S = A @ Vall @ A.T
    return np.trace(S) ** 2 / np.sum(S * S)


@pytest.mark.parametrize("case", CASES)
def test_corrections_match_per_cluster_algebra(case):
    data, formula, family, corr = CASES[case]
    for correction in CORRECTIONS:
        est = GEE(formula, groups="cluster", family=family, corr=corr, correction=correction, df="fg",
                  corr_floor=None)
        det = est.details(data)
        assert det.status == "ok", det.message
        ses, parts, Binv, f, fg_diag = per_cluster(data, formula, family, det.alpha, det.beta)
        np.testing.assert_allclose(np.sqrt(np.diag(det.cov)), ses[correction], rtol=1e-8, err_msg=correction)
        dfs = [fg_df_nspace(parts, Binv, f.get(correction), fg_diag, k) for k in range(len(det.beta))]
        np.testing.assert_allclose(det.df, dfs, rtol=1e-8, err_msg=correction)
        fit = est.fit(data)
        np.testing.assert_allclose(fit.se, ses[correction], rtol=1e-8)
        q = stats.t.ppf(0.975, fit.df)
        np.testing.assert_allclose(fit.ci_upper - fit.estimate, q * fit.se, rtol=1e-10)


@pytest.mark.parametrize("case", CASES)
def test_robust_and_mancl_derouen_match_statsmodels(case):
    """statsmodels' cov_robust is the uncorrected sandwich and its cov_type="bias_reduced" is Mancl-DeRouen."""
    data, formula, family, corr = CASES[case]
    y, X, _ = Formula(formula).build(data)
    fam = families.Binomial() if family == "binomial" else families.Poisson()
    cs = cov_struct.Exchangeable() if corr == "exchangeable" else cov_struct.Independence()
    res = SMGEE(y, X, groups=data["cluster"], family=fam, cov_struct=cs).fit(ctol=1e-8, cov_type="bias_reduced")
    for correction, ref in (("robust", res.cov_robust), ("md", res.cov_robust_bc)):
        det = GEE(formula, groups="cluster", family=family, corr=corr, correction=correction,
                  corr_floor=None).details(data)
        np.testing.assert_allclose(det.beta, res.params, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(det.cov, ref, rtol=1e-9, atol=1e-14, err_msg=correction)


# ------------------------------------------------------------------------------------------------------------
# R: geepack's fits and fit_gee.R's corrections (see tests/data/gee/README.md)
MANIFEST = pd.read_csv(REF / "manifest.csv")
RESULTS = pd.read_csv(REF / "gee_results.csv")


def _reference(name, corstr):
    r = RESULTS[(RESULTS.dataset == name) & (RESULTS.corstr == corstr)]
    return lambda kind, names: r[r.kind == kind].set_index("name").loc[list(names), "value"].to_numpy(float)


@pytest.mark.parametrize("corstr", ["exchangeable", "independence"])
@pytest.mark.parametrize("name", MANIFEST["name"])
def test_corrections_match_r_at_geepack_estimates(name, corstr):
    m = MANIFEST.set_index("name").loc[name]
    data = pd.read_csv(REF / m.file)
    ref = _reference(name, corstr)
    y, X, names = Formula(m.formula).build(data)
    beta = ref("coef", names)
    alpha = ref("alpha", ["alpha"])[0]
    mu = 1 / (1 + np.exp(-X @ beta)) if m.family == "binomial" else np.exp(X @ beta)
    codes = data["cluster"].to_numpy() - 1
    for correction in CORRECTIONS:
        cov, H, B, Bi = sandwich(X, y, mu, codes, codes.max() + 1, m.family, alpha, correction)
        np.testing.assert_allclose(np.sqrt(np.diag(cov)), ref(f"se_{correction}", names), rtol=1e-10)
        if correction == "robust":
            np.testing.assert_allclose(np.sqrt(np.diag(cov)), ref("se_geepack", names), rtol=1e-10)
        if correction in ("robust", "fg"):
            np.testing.assert_allclose(fay_graubard_df(B, Bi, H), ref(f"df_fg_{correction}", names), rtol=1e-10)


@pytest.mark.parametrize("corstr", ["exchangeable", "independence"])
@pytest.mark.parametrize("name", MANIFEST["name"])
def test_fit_matches_geepack(name, corstr):
    """With ddof_scale=0 the working correlation is geepack's and the whole fit is geepack's; statsmodels'
    default (ddof p) moves alpha, and with it the exchangeable coefficients, a little."""
    m = MANIFEST.set_index("name").loc[name]
    data = pd.read_csv(REF / m.file)
    ref = _reference(name, corstr)
    est = GEE(m.formula, groups="cluster", family=m.family, corr=corstr, tol=1e-12, ddof_scale=0, corr_floor=None)
    fit, det = est.fit(data), est.details(data)
    np.testing.assert_allclose(fit.estimate, ref("coef", fit.params), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(det.alpha, ref("alpha", ["alpha"])[0], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(fit.se, ref("se_geepack", fit.params), rtol=1e-8)
    default = GEE(m.formula, groups="cluster", family=m.family, corr=corstr, tol=1e-12, corr_floor=None).fit(data)
    np.testing.assert_allclose(default.estimate, ref("coef", fit.params), atol=2e-3)


# ------------------------------------------------------------------------------------------------------------
def test_df_options():
    data, formula, *_ = CASES["binary-x-exch"]
    K = 10
    kp = GEE(formula, groups="cluster").fit(data)
    np.testing.assert_array_equal(kp.df, np.full(3, K - 3.0))
    z = GEE(formula, groups="cluster", df=None).fit(data)
    assert np.isnan(z.df).all()
    np.testing.assert_allclose(z.ci_upper - z.estimate, stats.norm.ppf(0.975) * z.se, rtol=1e-12)
    np.testing.assert_allclose(z.se, kp.se)
    fg = GEE(formula, groups="cluster", correction="fg", df="fg").fit(data)
    assert np.all((fg.df >= 1) & (fg.df <= K))


def test_correction_order_on_few_clusters():
    """Leverage corrections inflate the sandwich: robust < FG, KC < MD (KC is the geometric middle)."""
    data = binary(seed=7, K=6, x=False)
    se = {c: GEE("y ~ treat", groups="cluster", correction=c).fit(data).se for c in CORRECTIONS}
    assert np.all(se["robust"] < se["kc"]) and np.all(se["kc"] < se["md"]) and np.all(se["robust"] < se["fg"])


def test_separation_is_nonconverged():
    data = binary(seed=1, K=8, x=False)
    y = np.where(data["treat"] == 1, 0.0, data["y"])  # no event in the treated arm
    fit = GEE("y ~ treat", groups="cluster").fit({**data, "y": y})
    assert fit.status == "nonconverged" and "separation" in fit.message
    zero = counts()
    fit = GEE("y ~ treat", groups="cluster", family="poisson").fit({**zero, "y": np.where(zero["treat"] == 1, 0.0,
                                                                                          zero["y"])})
    assert fit.status == "nonconverged" and "separation" in fit.message


def test_failures():
    data = binary(seed=1, K=3, x=True)
    fit = GEE("y ~ treat + x", groups="cluster").fit(data)  # K - p = 0
    assert fit.status == "failed" and "clusters" in fit.message and np.isnan(fit.estimate).all()
    assert GEE("y ~ treat + x", groups="cluster", df=None).fit(data).status in ("ok", "boundary")
    lone = binary(seed=2, K=3, x=False)  # one treated cluster: it alone determines treat
    for correction in ("md", "kc"):
        fit = GEE("y ~ treat", groups="cluster", corr="independence", correction=correction).fit(lone)
        assert fit.status == "failed" and "leverage" in fit.message
    assert GEE("y ~ treat", groups="cluster", corr="independence", correction="fg").fit(lone).status == "ok"
    fit = GEE("y ~ treat", groups="cluster", corr_floor=None).fit(lone)  # alpha -0.041, a cluster of 31 units
    assert fit.status == "failed" and "not positive definite" in fit.message
    with pytest.raises(ValueError, match="binomial"):
        GEE("y ~ treat", groups="cluster").fit({**lone, "y": lone["y"] * 2})
    with pytest.raises(ValueError, match="non-negative"):
        GEE("y ~ treat", groups="cluster", family="poisson").fit({**lone, "y": lone["y"] - 1})


def test_negative_working_correlation_is_floored_at_zero():
    """By default a negative exchangeable estimate is set to 0: the fit is then the independence fit, with
    status boundary; corr_floor=None keeps statsmodels' estimate (and fails where it is not a correlation)."""
    lone = binary(seed=2, K=3, x=False)
    fit = GEE("y ~ treat", groups="cluster").fit(lone)
    det = GEE("y ~ treat", groups="cluster").details(lone)
    ind = GEE("y ~ treat", groups="cluster", corr="independence").fit(lone)
    assert (fit.status, det.alpha) == ("boundary", 0.0) and "below 0" in fit.message
    np.testing.assert_allclose(fit.estimate, ind.estimate, rtol=1e-7)
    np.testing.assert_allclose(fit.se, ind.se, rtol=1e-7)
    data, formula, *_ = CASES["binary-6"]
    assert GEE(formula, groups="cluster", corr_floor=None).details(data).alpha < 0
    floored = GEE(formula, groups="cluster", corr_floor=-0.001).details(data)
    assert (floored.status, floored.alpha) == ("boundary", -0.001)
    positive, *_ = CASES["count-exch"]
    a = GEE("y ~ treat", groups="cluster", family="poisson").fit(positive)
    b = GEE("y ~ treat", groups="cluster", family="poisson", corr_floor=None).fit(positive)
    assert a.status == "ok" and np.array_equal(a.estimate, b.estimate) and np.array_equal(a.se, b.se)


def test_collinear_column_and_missing_values():
    data = binary(seed=5, K=10, x=True)
    fit = GEE("y ~ treat + x + x2", groups="cluster").fit({**data, "x2": 2 * data["x"]})
    ref = GEE("y ~ treat + x", groups="cluster").fit(data)
    assert np.isnan(fit.estimate[3]) and "x2 is collinear" in fit.message
    np.testing.assert_allclose(fit.estimate[:3], ref.estimate, rtol=1e-12)
    x = data["x"].copy()
    x[:5] = np.nan
    keep = {k: v[5:] for k, v in data.items()}
    np.testing.assert_allclose(GEE("y ~ treat + x", groups="cluster").fit({**data, "x": x}).estimate,
                               GEE("y ~ treat + x", groups="cluster").fit(keep).estimate, rtol=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    ({"family": "gaussian"}, "family"), ({"corr": "ar1"}, "corr"), ({"correction": "hc3"}, "correction"),
    ({"df": "satterthwaite"}, "df"), ({"fg_bound": 1.0}, "fg_bound"), ({"level": 95}, "level"),
    ({"ddof_scale": -1}, "ddof_scale"), ({"corr_floor": -1.0}, "corr_floor"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GEE("y ~ treat", groups="cluster", **kwargs)


@pytest.mark.parametrize("correction", CORRECTIONS)
@pytest.mark.parametrize("case", ["binary-x-exch", "binary-6", "count-ind"])
@pytest.mark.parametrize("df", ["K-p", "fg", None])
def test_conformance(case, correction, df):
    data, formula, family, corr = CASES[case]
    est = GEE(formula, groups="cluster", family=family, corr=corr, correction=correction, df=df)
    fit = check_estimator(est, data)
    assert fit.status == ("boundary" if case == "binary-6" else "ok") and est.estimand == "marginal"
    assert fit.params == tuple(Formula(formula).build(data)[2])


def test_conformance_of_failed_boundary_and_nonconverged_fits():
    check_estimator(GEE("y ~ treat + x", groups="cluster"), binary(seed=1, K=3))
    assert check_estimator(GEE("y ~ treat", groups="cluster"), binary(seed=2, K=3, x=False)).status == "boundary"
    data = binary(seed=1, K=8, x=False)
    check_estimator(GEE("y ~ treat", groups="cluster"), {**data, "y": np.where(data["treat"] == 1, 0.0, data["y"])})


def test_model_based_variance_with_independence_is_naive_logistic_regression():
    import statsmodels.api as sm

    from simstudy.dgp import BinaryTrial

    data = BinaryTrial().generate(np.random.default_rng(1), n_clusters=10, cluster_size=30)
    fit = GEE("y ~ treat", groups="cluster", corr="independence", correction="model", df=None).fit(data)
    glm = sm.GLM(data["y"], sm.add_constant(data["treat"].astype(float)), family=sm.families.Binomial()).fit()
    np.testing.assert_allclose(fit.estimate, glm.params, rtol=1e-6)
    np.testing.assert_allclose(fit.se, glm.bse, rtol=1e-6)
    assert np.isnan(fit.df).all()
