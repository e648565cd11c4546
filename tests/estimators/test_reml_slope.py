"""Numerics of the random-slope engine (simstudy.estimators.reml_slope) against dense-matrix definitions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from simstudy.estimators import reml_slope as rs
from support import dense_criterion


def _data(seed=0, sizes=(6,) * 8, var=(0.5, 0.2, 0.1)):
    rng = np.random.default_rng(seed)
    G = len(sizes)
    g = np.repeat(np.arange(G), sizes)
    x = rng.normal(size=g.size) + 0.5
    cov = np.array([[var[0], var[2]], [var[2], var[1]]])
    u = rng.multivariate_normal([0, 0], cov, size=G)
    X = np.column_stack([np.ones(g.size), x, rng.normal(size=g.size)])
    y = X @ [1.0, 0.5, -0.3] + u[g, 0] + u[g, 1] * x + rng.normal(size=g.size)
    return y, X, x, g, G


def _dense_crit(y, X, x, g, psi, reml):
    n, p = X.shape
    G = g.max() + 1
    Z = np.zeros((n, 2 * G))
    Z[np.arange(n), 2 * g] = 1.0
    Z[np.arange(n), 2 * g + 1] = x
    H = np.eye(n) + Z @ np.kron(np.eye(G), psi) @ Z.T
    return dense_criterion(y, X, H, reml)


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("sizes", [(6,) * 8, (1, 2, 3, 7, 12, 4, 9)])
def test_criterion_and_gradient_match_dense(reml, sizes):
    y, X, x, g, G = _data(sizes=sizes)
    S = rs.slope_stats(y, X, x, g, G)
    lam = np.array([[0.0, 0.0, 0.0], [0.7, -0.2, 0.4], [1.5, 0.3, 0.0], [0.0, 0.5, 0.2]])
    ev = rs.evaluate_slope(lam, S, reml)
    dense = [_dense_crit(y, X, x, g, rs.psi_of(lm[None])[0], reml) for lm in lam]
    np.testing.assert_allclose(ev["crit"], dense, rtol=1e-10)
    h = 1e-6
    for k in range(3):
        e = np.zeros(3)
        e[k] = h
        up = rs.evaluate_slope(lam + e, S, reml, deriv=False)["crit"]
        dn = rs.evaluate_slope(lam - e, S, reml, deriv=False)["crit"]
        np.testing.assert_allclose(ev["grad"][:, k], (up - dn) / (2 * h), rtol=1e-5, atol=1e-5)


def test_optimum_not_worse_than_grid_and_stationary():
    for seed in range(6):
        y, X, x, g, G = _data(seed=seed, sizes=(8,) * 15)
        S = rs.slope_stats(y, X, x, g, G)
        res = rs.fit_slope(S)
        rng = np.random.default_rng(seed)
        lam = np.abs(rng.normal(size=(300, 3))) * [1.0, 0.0, 1.0] + rng.normal(size=(300, 3)) * [0, 1.0, 0]
        grid = rs.evaluate_slope(lam, S, True, deriv=False)["crit"]
        assert res["crit"] <= np.nanmin(grid) + 1e-10
        if not res["boundary"]:
            ev = rs.evaluate_slope(res["lam"][None], S, True)
            assert np.abs(ev["grad"]).max() < 1e-5


def _frame(seed=0, G=12, m=8):
    y, X, x, g, _ = _data(seed=seed, sizes=(m,) * G)
    return {"g": g, "x": x, "z": X[:, 2], "y": y}


def test_fast_mixedlm_slope_params_and_batch():
    from simstudy.estimators.fast_mixedlm import FastMixedLM

    est = FastMixedLM("y ~ x + z", groups="g", slope="x")
    data = [_frame(s) for s in range(4)]
    fits = est.fit_batch(data)
    assert fits[0].params == ("Intercept", "x", "z", "var(g)", "var(g:x)", "cov(g:x)", "var(residual)")
    for d, fb in zip(data, fits):
        f1 = est.fit(d)
        assert f1.status == fb.status
        np.testing.assert_array_equal(f1.estimate, fb.estimate)
    fit, info = est.fit_with_info(data[0])
    psi = info["psi"]
    s2 = fit.estimate[-1]
    np.testing.assert_allclose(fit.estimate[3:6], s2 * np.array([psi[0, 0], psi[1, 1], psi[0, 1]]))


def test_fast_mixedlm_slope_edge_cases():
    from simstudy.estimators.fast_mixedlm import FastMixedLM

    d = _frame()
    d["c"] = (d["g"] % 3).astype(float)  # constant within groups
    fit = FastMixedLM("y ~ x", groups="g", slope="c").fit(d)
    assert fit.status == "failed" and "constant within every group" in fit.message
    fit = FastMixedLM("y ~ x", groups="g", slope="nope").fit(d)
    assert fit.status == "failed" and "nope" in fit.message
    with pytest.raises(ValueError):
        FastMixedLM("y ~ x", groups=["a", "b"], slope="x")
    d["x2"] = 2 * d["x"]
    fit = FastMixedLM("y ~ x + x2", groups="g", slope="x").fit(d)
    assert fit.converged and np.isnan(fit.estimate[2]) and "x2" in fit.message


def test_slope_boundary_when_no_slope_variance():
    """Slope variance 0 and few groups: singular fits are flagged boundary, criterion not worse than the
    random-intercept fit (the face Psi = diag(theta, 0))."""
    from simstudy.estimators import reml as ri
    from simstudy.estimators.fast_mixedlm import FastMixedLM

    n_boundary = 0
    for seed in range(8):
        y, X, x, g, G = _data(seed=seed, sizes=(5,) * 10, var=(0.3, 0.0, 0.0))
        d = {"g": g, "x": x, "y": y}
        fit, info = FastMixedLM("y ~ x", groups="g", slope="x").fit_with_info(d)
        n_boundary += fit.status == "boundary"
        S = ri.ri_stats(y, X[:, :2], g, G)
        assert info["crit"] <= ri.fit_ri(S)["crit"][0] + 1e-9
    assert n_boundary >= 3


# --- certificate over the covariance matrices (simstudy.estimators.reml_slope.certify_slope) -------------
def _lme4_frame(name: str):
    from pathlib import Path

    import pandas as pd

    d = pd.read_csv(Path(__file__).resolve().parents[1] / "data" / "lme4" / f"{name}.csv")
    y, x, g = d.y.to_numpy(), d.x.to_numpy(), d.g.to_numpy()
    X = np.column_stack([np.ones(y.size), x])
    return y, X, x, g, int(g.max()) + 1


def test_certificate_rejects_a_cholesky_local_minimum():
    """rs_near_b (ML): at ``Lambda = (0, 0, 0.2545)`` (intercept variance 0) the criterion is stationary
    in the slope SD and rises with l11 -- a local minimum over lme4's theta, where lme4 (default start) and
    the earlier L-BFGS-B multistart stopped -- but it falls with an intercept-slope covariance of the other
    sign: the certificate fails (not stationary among the rank-1 matrices); the fit finds the rank-1 optimum
    3.0e-3 lower and certifies it."""
    y, X, x, g, G = _lme4_frame("rs_near_b")
    S = rs.slope_stats(y, X, x, g, G)
    bad = np.array([0.0, 0.0, 0.2545048])
    ok, why, restarts = rs.certify_slope(S, False, bad)
    assert not ok and "not stationary among the rank-1" in why and restarts
    res = rs.fit_slope(S, reml=False)
    assert res["converged"] and res["boundary"] and res["message"] == ""
    f_bad = rs.evaluate_slope(bad[None], S, False, deriv=False)["crit"][0]
    assert f_bad - res["crit"] > 2.9e-3
    assert rs.certify_slope(S, False, res["lam"])[0]


def test_certificate_rank_one_null_direction():
    """At a rank-1 point the one-sided derivative along the null direction decides: rs_near_a (REML) has an
    interior optimum with a small l22 (0.015); its rank-1 projection (l22 = 0) fails the one-sided test
    (the earlier engine reported it as 'boundary')."""
    y, X, x, g, G = _lme4_frame("rs_near_a")
    S = rs.slope_stats(y, X, x, g, G)
    res = rs.fit_slope(S)
    assert res["converged"] and not res["boundary"] and 0.01 < res["lam"][2] < 0.02
    proj = res["lam"].copy()
    proj[2] = 0.0
    ok, why, restarts = rs.certify_slope(S, True, rs._polish(S, True, np.array([0]), proj[None])[0])
    assert not ok and "along Psi + t w w'" in why and len(restarts) == 1


def _slope_design(seed, G, max_size, v0, v1, rho, xscale):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(3, max_size + 1, size=G)
    g = np.repeat(np.arange(G), sizes)
    x = (rng.normal(size=g.size) + 0.5) * xscale
    v1 = v1 / xscale**2
    c = rho * np.sqrt(v0 * v1)
    u = rng.multivariate_normal([0.0, 0.0], [[v0, c], [c, v1]], size=G, method="eigh")
    X = np.column_stack([np.ones(g.size), x])
    y = X @ [1.0, 0.5] + u[g, 0] + u[g, 1] * x + rng.normal(size=g.size)
    return y, X, x, g, G


def _dense_slope_optimum(y, X, x, g, reml, fast_lam):
    """Reference: the dense criterion minimised by Nelder-Mead over lme4's Cholesky factor (diagonal as
    |.|) from lme4's start, both signs of the correlation and the fast solution perturbed, and over the
    symmetric square root ``Psi = B B`` (B symmetric: no sign folding at a zero intercept SD) from two
    starts; the lowest wins."""
    n, G = y.size, int(g.max()) + 1
    Z = np.zeros((n, 2 * G))
    Z[np.arange(n), 2 * g] = 1.0
    Z[np.arange(n), 2 * g + 1] = x

    def crit_psi(psi):
        return dense_criterion(y, X, np.eye(n) + Z @ np.kron(np.eye(G), psi) @ Z.T, reml)

    def chol(lam):
        return crit_psi(rs.psi_of(np.abs(lam[None]) * [1, 0, 1] + lam[None] * [0, 1, 0])[0])

    def sym(b):
        B = np.array([[b[0], b[1]], [b[1], b[2]]])
        return crit_psi(B @ B)

    sx = 1.0 / x.std()
    best = crit_psi(np.zeros((2, 2)))
    opts = {"xatol": 1e-10, "fatol": 1e-13, "maxfev": 1500}
    for f, x0 in [(chol, [1.0, 0.0, sx]), (chol, [0.5, 0.5 * sx, 0.1 * sx]), (chol, [0.5, -0.5 * sx, 0.1 * sx]),
                  (chol, fast_lam + [0.01, 0.01 * sx, 0.01 * sx]), (chol, fast_lam * [1, -1, 1] + [0.01, 0, 0.01 * sx]),
                  (sym, [0.5, 0.2 * sx, 0.3 * sx]), (sym, [0.5, -0.2 * sx, 0.3 * sx])]:
        best = min(best, minimize(f, np.asarray(x0, float), method="Nelder-Mead", options=opts).fun)
    return best, crit_psi


@settings(max_examples=40, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), G=st.integers(4, 10), max_size=st.integers(3, 8),
       v0=st.sampled_from([0.0, 1e-4, 1e-2, 0.3]), v1=st.sampled_from([0.0, 1e-4, 1e-2, 0.3]),
       rho=st.sampled_from([0.0, 0.6, -0.95, 1.0]), xscale=st.sampled_from([0.1, 1.0, 10.0]), reml=st.booleans())
def test_property_never_worse_than_dense_reference(seed, G, max_size, v0, v1, rho, xscale, reml):
    """Random near-singular random-slope designs (variances 0 or tiny, correlations up to +-1, x on
    different scales, unbalanced groups of 3 to 8): the fast criterion is never above the dense reference's
    by more than 1e-8 (absolute; criteria here are 20 to 250); the fit is certified; at a singular covariance
    matrix, adding ``t w w'`` along its null direction ``w`` (or, at Psi = 0, along either axis and the
    eigenvector of dcrit/dPsi) never lowers the dense criterion by more than 1e-8 (t = 1e-8 to 1e-2 in units
    of the direction's natural scale). The certificate is local: the engine's grid and starts find the
    global optimum here, but not always in designs with 2 observations in most groups (local minima orders
    of magnitude apart, so not generated here) and, about once in 1000 random draws of this test with other
    seeds, with 3 per group and no random effects at all (a flat criterion with shallow local minima
    0.15 apart; lme4 stops at the same local minimum as the fast engine)."""
    y, X, x, g, G = _slope_design(seed, G, max_size, v0, v1, rho, xscale)
    # the data FastMixedLM fits (it refuses e.g. data that a line per group fits exactly: the criterion
    # is then unbounded below)
    from simstudy.estimators.fast_mixedlm import FastMixedLM

    assume(FastMixedLM("y ~ x", groups="g", slope="x").fit({"y": y, "x": x, "g": g}).status != "failed")
    S = rs.slope_stats(y, X, x, g, G)
    res = rs.fit_slope(S, reml)
    ref, crit_psi = _dense_slope_optimum(y, X, x, g, reml, res["lam"])
    assert res["converged"], res["message"]
    assert res["crit"] == pytest.approx(crit_psi(res["psi"]), rel=1e-9, abs=1e-7)
    assert res["crit"] <= ref + 1e-8
    psi = res["psi"]
    lam_, V = np.linalg.eigh(psi)
    if lam_[0] > 1e-12 * max(lam_[1], 1e-300):
        return
    if lam_[1] > 0:
        dirs = [V[:, 0]]
    else:
        gam = rs.evaluate_slope(res["lam"][None], S, reml)["gpsi"][0]
        dirs = [np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.linalg.eigh(gam)[1][:, 0]]
    qb = S.qbar[0]
    Qbar = np.array([[qb[0], qb[1]], [qb[1], qb[2]]])
    for w in dirs:
        for t in 10.0 ** np.arange(-8, -1):
            assert crit_psi(psi + t / (w @ Qbar @ w) * np.outer(w, w)) >= res["crit"] - 1e-8


def test_fast_mixedlm_slope_refuses_a_line_per_group_fitting_exactly():
    """Two observations in every group: a separate intercept and slope per group fits the data exactly, the
    criterion falls without bound as the variances grow; the fit fails with a message (lme4 refuses it too:
    observations <= random effects)."""
    from simstudy.estimators.fast_mixedlm import FastMixedLM

    y, X, x, g, G = _data(seed=3, sizes=(2,) * 6)
    fit = FastMixedLM("y ~ x", groups="g", slope="x").fit({"g": g, "x": x, "y": y})
    assert fit.status == "failed" and "separate intercept and slope per group" in fit.message


# --- batches ----------------------------------------------------------------------------------------------
def test_batch_is_bit_identical_to_single_fits():
    """Replicates with the same number of groups fitted together (lockstep Newton runs, grids, candidates,
    polish, certificates) give each replicate exactly its fit alone, in any order and batch composition;
    singular and interior fits mixed."""
    stats = []
    params = [(0.0, 0.0, 0.0, 1.0), (0.3, 0.01, 0.6, 1.0), (0.5, 0.5, 0.0, 1.0), (0.3, 0.3, -0.95, 0.1),
              (1.0, 0.5, 0.3, 10.0), (0.3, 0.0, 0.0, 1.0), (1e-4, 0.3, 1.0, 1.0), (0.8, 0.8, 0.2, 1.0)]
    for seed, (v0, v1, rho, xs) in enumerate(params):
        y, X, x, g, G = _slope_design(seed, 8, 12, v0, v1, rho, xs)
        stats.append(rs.slope_stats(y, X, x, g, G))
    for reml in (True, False):
        alone = [rs.fit_slope(S, reml) for S in stats]
        assert {a["boundary"] for a in alone} == {True, False}
        for order in (np.arange(8), np.arange(8)[::-1], np.array([5, 2, 7])):
            res = rs.fit_slope_batch(rs.SlopeStats.stack([stats[i] for i in order]), reml)
            for r, i in enumerate(order):
                for key, v in alone[i].items():
                    same = v == res[key][r] if key == "message" else np.array_equal(v, res[key][r])
                    assert same, key


def test_evaluation_is_row_by_row():
    """A point's criterion and gradient do not depend on the other points or replicates of the call, nor on
    the blocks the evaluation is cut into."""
    from simstudy.estimators import slope_stats as ss

    stats = [rs.slope_stats(*_data(seed=s, sizes=(5,) * 8)[:4], 8) for s in range(5)]
    S = rs.SlopeStats.stack(stats)
    rng = np.random.default_rng(0)
    lam = rng.normal(size=(5, 6, 3))
    with np.errstate(all="ignore"):
        full = ss.evaluate_points(S, lam, None, True)
        old = ss.BLOCK_DERIV
        try:
            ss.BLOCK_DERIV = 1
            blocked = ss.evaluate_points(S, lam, None, True)
        finally:
            ss.BLOCK_DERIV = old
        for r in range(5):
            one = ss.evaluate_points(stats[r], lam[r : r + 1], None, True)
            for key in ("crit", "grad", "gpsi", "beta"):
                assert np.array_equal(one[key][0], full[key][r]) and np.array_equal(blocked[key][r], full[key][r])
