"""Numerics of the random-slope engine (simstudy.estimators.reml_slope) against dense-matrix definitions."""

from __future__ import annotations

import numpy as np
import pytest

from support import dense_criterion

from simstudy.estimators import reml_slope as rs


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
    dense = [_dense_crit(y, X, x, g, rs.psi_of(l[None])[0], reml) for l in lam]
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
