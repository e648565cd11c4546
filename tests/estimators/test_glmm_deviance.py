"""The GLMM deviance and its derivatives against an independent dense implementation, and the optimum against
scipy's optimisers on that dense deviance (property-style, fixed seeds)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, special, stats

from simstudy.estimators import glmm_deviance as gd
from simstudy.estimators.glmm import GLMM


def _data(seed: int, family: str, G: int, n: int, sd: float, trials: bool = False, b0: float = -0.3):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(G), n)
    x = rng.normal(size=g.size)
    treat = (np.arange(G) % 2)[g]
    eta = b0 + 0.5 * x + 0.4 * treat + rng.normal(scale=sd, size=G)[g]
    m = rng.integers(1, 6, size=g.size) if trials else np.ones(g.size, dtype=int)
    if family == "poisson":
        y = rng.poisson(np.exp(eta))
    else:
        y = rng.binomial(m, special.expit(eta))
    return {"y": y, "n": m, "x": x, "treat": treat, "g": g}


def dense_deviance(params, data, family: str, nagq: int) -> float:
    """-2 log-likelihood (Laplace or adaptive Gauss-Hermite), written directly from the definitions: per
    cluster the conditional mode by Brent's root finder on the score, ``-2 log p`` from scipy.stats."""
    theta, beta = params[0], np.asarray(params[1:])
    X = np.column_stack([np.ones(data["y"].size), data["x"], data["treat"]])
    y, m, g = data["y"], data["n"], data["g"]
    if nagq > 1:
        xk, wk = np.polynomial.hermite.hermgauss(nagq)  # physicists' rule: weight exp(-x^2)
        zk, wk = np.sqrt(2.0) * xk, wk / np.sqrt(np.pi)
    total = 0.0
    for j in np.unique(g):
        rows = g == j
        o, yy, mm = X[rows] @ beta, y[rows], m[rows]

        def h(u):
            eta = o + theta * u
            lp = stats.poisson.logpmf(yy, np.exp(eta)) if family == "poisson" else \
                stats.binom.logpmf(yy, mm, special.expit(eta))
            return -2.0 * lp.sum() + u * u

        def score(u):
            eta = o + theta * u
            mu = np.exp(eta) if family == "poisson" else mm * special.expit(eta)
            return theta * 2.0 * (mu - yy).sum() + 2.0 * u

        lo, hi = -1.0, 1.0
        while score(lo) > 0:
            lo *= 2
        while score(hi) < 0:
            hi *= 2
        u = optimize.brentq(score, lo, hi, xtol=1e-14, rtol=1e-15)
        eta = o + theta * u
        w = np.exp(eta) if family == "poisson" else mm * special.expit(eta) * special.expit(-eta)
        D = 1.0 + theta * theta * w.sum()
        total += h(u) + np.log(D)
        if nagq > 1:
            h0 = h(u)
            terms = [wq * np.exp(0.5 * z * z - 0.5 * (h(u + z / np.sqrt(D)) - h0)) for z, wq in zip(zk, wk)]
            total -= 2.0 * np.log(np.sum(terms))
    return total


def _engine_f(params, data, family, nagq):
    X = np.column_stack([np.ones(data["y"].size), data["x"], data["treat"]])
    m = data["n"].astype(float) if family == "binomial" else np.ones(data["y"].size)
    y = data["y"].astype(float)
    b = gd.Batch.build(family, [(y, m, X, data["g"], int(data["g"].max()) + 1)])
    ev = gd.evaluate(b, np.array([params[0]]), np.array([params[1:]]), np.zeros(b.crep.size), gd.gh_rule(nagq), 2)
    return ev, gd.lme4_constant(family, y, m, agq=False)


@pytest.mark.parametrize("family,trials,nagq", [("binomial", False, 1), ("binomial", True, 1), ("poisson", False, 1),
                                                ("binomial", False, 6), ("binomial", True, 9), ("poisson", False, 5)])
def test_deviance_and_derivatives(family: str, trials: bool, nagq: int) -> None:
    data = _data(1, family, G=7, n=6, sd=0.8, trials=trials)
    for params in ([0.9, -0.2, 0.4, 0.3], [-1.7, 0.3, 0.6, -0.5], [0.0, -0.4, 0.5, 0.2], [0.03, 0.1, 0.2, 0.3]):
        params = np.array(params)
        ev, const = _engine_f(params, data, family, nagq)
        ref = dense_deviance(params, data, family, nagq)
        assert abs(ev["f"][0] + const - ref) <= 1e-9 * abs(ref)
        # derivatives: central differences of the engine's own deviance and gradient
        h = 1e-5
        g_fd, H_fd = np.zeros(4), np.zeros((4, 4))
        for k in range(4):
            e = np.zeros(4)
            e[k] = h
            up, dn = _engine_f(params + e, data, family, nagq)[0], _engine_f(params - e, data, family, nagq)[0]
            g_fd[k] = (up["f"][0] - dn["f"][0]) / (2 * h)
            H_fd[:, k] = (up["g"][0] - dn["g"][0]) / (2 * h)
        scale = np.abs(ev["H"][0]).max()
        np.testing.assert_allclose(ev["g"][0], g_fd, atol=1e-6 * scale)
        np.testing.assert_allclose(ev["H"][0], H_fd, atol=1e-6 * scale)


def test_batch_take_keeps_replicates() -> None:
    parts = []
    for seed in range(4):
        d = _data(seed, "binomial", G=4 + seed, n=3 + seed, sd=0.5)
        X = np.column_stack([np.ones(d["y"].size), d["x"], d["treat"]])
        perm = np.random.default_rng(seed).permutation(d["y"].size)  # unsorted clusters
        parts.append((d["y"][perm].astype(float), np.ones(d["y"].size), X[perm], d["g"][perm], 4 + seed))
    b = gd.Batch.build("binomial", parts)
    theta = np.array([0.5, 1.0, 0.0, 2.0])
    beta = np.tile([-0.3, 0.5, 0.4], (4, 1))
    full = gd.evaluate(b, theta, beta, np.zeros(b.crep.size), gd.gh_rule(3), 2)
    sub = b.take(np.array([3, 1]))
    part = gd.evaluate(sub, theta[[3, 1]], beta[[3, 1]], np.zeros(sub.crep.size), gd.gh_rule(3), 2)
    for k in ("f", "g", "H"):
        assert np.array_equal(full[k][[3, 1]], part[k])


CASES = [  # seed, family, trials, G, n, sd, nagq, b0
    (1, "binomial", False, 8, 6, 0.8, 1, -0.3), (2, "binomial", False, 6, 10, 0.2, 1, 0.0),
    (3, "binomial", True, 8, 4, 1.2, 1, -0.5), (4, "poisson", False, 8, 5, 0.6, 1, 0.3),
    (5, "poisson", False, 6, 8, 0.1, 1, -1.0), (6, "binomial", False, 10, 5, 2.0, 1, -1.5),
    (7, "binomial", False, 8, 6, 0.8, 5, -0.3), (8, "poisson", False, 8, 5, 1.0, 5, 0.0),
    (9, "binomial", True, 6, 5, 0.5, 8, 0.2), (10, "binomial", False, 12, 4, 0.0, 1, -1.2),
    (11, "poisson", False, 7, 6, 0.0, 3, 0.5), (12, "binomial", False, 8, 8, 1.5, 3, 1.0),
]


@pytest.mark.parametrize("seed,family,trials,G,n,sd,nagq,b0", CASES)
def test_optimum_not_worse_than_scipy(seed, family, trials, G, n, sd, nagq, b0) -> None:
    """The engine's optimum, judged by the dense deviance, is never worse than scipy's (L-BFGS-B and
    Nelder-Mead from two starts, theta >= 0) by more than 1e-6."""
    data = _data(seed, family, G, n, sd, trials, b0)
    est = GLMM("y ~ x + treat", groups="g", family=family, nagq=nagq, trials="n" if trials else None)
    fit = est.fit(data)
    assert fit.converged, fit.message
    ours = np.concatenate([[np.sqrt(fit.estimate[3])], fit.estimate[:3]])
    f_ours = dense_deviance(ours, data, family, nagq)

    def fun(p):
        return dense_deviance(p, data, family, nagq)

    best = np.inf
    for th0 in (0.5, 1.5):
        x0 = np.array([th0, b0, 0.0, 0.0])
        r1 = optimize.minimize(fun, x0, method="L-BFGS-B", bounds=[(0, None)] + [(None, None)] * 3,
                               options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 2000})
        r2 = optimize.minimize(lambda p: fun(np.concatenate([[abs(p[0])], p[1:]])), r1.x, method="Nelder-Mead",
                               options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 4000})
        best = min(best, r1.fun, r2.fun)
    assert f_ours <= best + 1e-6
