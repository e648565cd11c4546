"""Numerics of the profiled REML/ML engines: gradients, sufficient statistics, batching, boundary rule."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from simstudy.estimators import reml as ri
from simstudy.estimators import reml_nested as nested
from support import dense_criterion


def _data(seed=0, sizes=(5,) * 10, var_u=0.3, p_extra=1):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(len(sizes)), sizes)
    X = np.column_stack([np.ones(g.size)] + [rng.normal(size=g.size) for _ in range(p_extra)])
    y = X @ np.arange(1, X.shape[1] + 1) * 0.3 + rng.normal(scale=np.sqrt(var_u), size=len(sizes))[g]
    y = y + rng.normal(size=g.size)
    return y, X, g, len(sizes)


def _dense_crit(y, X, g, theta, reml):
    """-2 log-likelihood from dense matrices (the definition), profiled over sigma^2."""
    n, p = X.shape
    Z = (g[:, None] == np.arange(g.max() + 1)).astype(float)
    H = np.eye(n) + theta * Z @ Z.T
    return dense_criterion(y, X, H, reml)


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("sizes", [(5,) * 10, (1, 1, 2, 3, 7, 12, 4)])
def test_criterion_and_gradient_match_dense(reml, sizes):
    y, X, g, G = _data(sizes=sizes)
    S = ri.ri_stats(y, X, g, G)
    th = np.array([[0.0, 0.05, 0.7, 12.0]])
    ev = ri.evaluate(th, S, reml)
    dense = [_dense_crit(y, X, g, t, reml) for t in th[0]]
    np.testing.assert_allclose(ev["crit"][0], dense, rtol=1e-11)
    h = 1e-6
    up = ri.evaluate(th + h, S, reml, deriv=False)["crit"]
    dn = ri.evaluate(np.maximum(th - h, 0), S, reml, deriv=False)["crit"]
    fd = (up - dn) / (th + h - np.maximum(th - h, 0))
    np.testing.assert_allclose(ev["grad"], fd, rtol=1e-5, atol=1e-5)


def test_chunked_within_cross_products(monkeypatch):
    y, X, g, G = _data(sizes=(7,) * 40, p_extra=3)
    full = ri.ri_stats(y, X, g, G)
    monkeypatch.setattr(ri, "_CHUNK", 13)
    chunked = ri.ri_stats(y, X, g, G)
    np.testing.assert_allclose(chunked.W, full.W, rtol=1e-12)


def test_size_classes_equal_per_group_representation():
    y, X, g, G = _data(sizes=(3, 3, 5, 5, 5, 9))
    S = ri.ri_stats(y, X, g, G)
    assert S.size.shape[1] == 3
    n, means, W = ri.group_means(y, X, g, G)
    per_group = ri.GroupStats(W[None], n[None], np.ones((1, G)), (means[:, :, None] * means[:, None, :])[None],
                              S.nobs, S.ngroups, S.p)
    th = np.array([[0.0, 0.3, 3.0]])
    np.testing.assert_allclose(ri.evaluate(th, S, True)["crit"], ri.evaluate(th, per_group, True)["crit"],
                               rtol=1e-13)


def test_batched_fit_equals_single_fits_with_padding():
    stats = [ri.ri_stats(*_data(seed=s, sizes=sz)) for s, sz in
             [(1, (5,) * 10), (2, (2, 3, 4, 5, 6, 7)), (3, (5,) * 10), (4, (1, 8, 8, 20))]]
    batch = ri.fit_ri(ri.stack_stats(stats))
    for r, S in enumerate(stats):
        one = ri.fit_ri(S)
        np.testing.assert_allclose(batch["theta"][r], one["theta"][0], rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(batch["beta"][r], one["beta"][0], rtol=1e-12)


def test_optimum_is_stationary_or_boundary():
    for seed in range(30):
        S = ri.ri_stats(*_data(seed=seed, var_u=0.05))
        res = ri.fit_ri(S)
        th = res["theta"][0]
        ev = ri.evaluate(np.array([[th]]), S, True)
        if th == 0:
            assert ev["grad"][0, 0] >= 0 or ev["crit"][0, 0] <= res["crit"][0]
        else:
            assert abs(ev["grad"][0, 0]) * max(th, 1e-3) < 1e-6
        grid = ri.evaluate(np.array([np.linspace(0, 5, 200)]), S, True, deriv=False)["crit"]
        assert res["crit"][0] <= grid.min() + 1e-10


def test_estimable_columns_drops_later_duplicates():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 2))
    X = np.column_stack([np.ones(50), x[:, 0], 2 * x[:, 0] + 1, x[:, 1], np.zeros(50)])
    assert ri.estimable_columns(X.T @ X).tolist() == [0, 1, 3]


def _nested_data(seed=0):
    rng = np.random.default_rng(seed)
    centre, rep = [], []
    for c in range(6):
        for r in range(int(rng.integers(2, 5))):
            m = int(rng.integers(1, 9))
            centre += [c] * m
            rep += [(c, r)] * m
    centre = np.array(centre)
    _, rcodes = np.unique(np.array([c * 100 + r for c, r in rep]), return_inverse=True)
    n = centre.size
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = X @ [1.0, 0.5] + rng.normal(size=6)[centre] + 0.7 * rng.normal(size=rcodes.max() + 1)[rcodes]
    y = y + rng.normal(size=n)
    return y, X, centre, rcodes


def _dense_nested(y, X, centre, rep, tr, tc, reml):
    n, p = X.shape
    Zc = (centre[:, None] == np.arange(centre.max() + 1)).astype(float)
    Zr = (rep[:, None] == np.arange(rep.max() + 1)).astype(float)
    H = np.eye(n) + tr * Zr @ Zr.T + tc * Zc @ Zc.T
    return dense_criterion(y, X, H, reml)


@pytest.mark.parametrize("reml", [True, False])
def test_nested_criterion_and_gradient_match_dense(reml):
    y, X, c, r = _nested_data()
    S = nested.nested_stats(y, X, c, r, c.max() + 1, r.max() + 1)
    tr, tc = np.array([0.0, 0.4, 2.0]), np.array([0.0, 0.3, 0.0])
    ev = nested.evaluate_nested(tr, tc, S, reml)
    dense = [_dense_nested(y, X, c, r, a, b, reml) for a, b in zip(tr, tc)]
    np.testing.assert_allclose(ev["crit"], dense, rtol=1e-11)
    h = 1e-6
    for k in range(2):
        e = np.zeros(2)
        e[k] = h
        up = nested.evaluate_nested(tr + e[0], tc + e[1], S, reml, deriv=False)["crit"]
        dn = nested.evaluate_nested(tr + 0 * e[0], tc + 0 * e[1], S, reml, deriv=False)["crit"]
        np.testing.assert_allclose(ev["grad"][:, k], (up - dn) / h, rtol=1e-4, atol=1e-4)


def test_nested_faces_are_random_intercept_models():
    y, X, c, r = _nested_data(1)
    S = nested.nested_stats(y, X, c, r, c.max() + 1, r.max() + 1)
    t = np.array([0.8])
    for face, (tr, tc) in (("rep", (t, 0 * t)), ("centre", (0 * t, t))):
        gs = S.rep_stats() if face == "rep" else S.centre_stats()
        a = ri.evaluate(t[None], gs, True, deriv=False)["crit"][0, 0]
        b = nested.evaluate_nested(tr, tc, S, True, deriv=False)["crit"][0]
        assert a == pytest.approx(b, rel=1e-12)


def test_nested_fit_not_worse_than_faces():
    for seed in range(5):
        y, X, c, r = _nested_data(seed)
        S = nested.nested_stats(y, X, c, r, c.max() + 1, r.max() + 1)
        res = nested.fit_nested(S)
        for gs in (S.rep_stats(), S.centre_stats()):
            assert res["crit"] <= ri.fit_ri(gs)["crit"][0] + 1e-9


# --- certificate (simstudy.estimators.reml.certify_ri) ------------------------------------------------
def test_certificate_batch_equals_single_and_flags_non_optima():
    stats = [ri.ri_stats(*_data(seed=s, sizes=sz, var_u=v)) for s, sz, v in
             [(1, (5,) * 10, 0.0), (2, (2, 3, 4, 5, 6, 7), 0.3), (3, (1, 8, 8, 20), 0.05)]]
    S = ri.stack_stats(stats)
    res = ri.fit_ri(S)
    ok, why = ri.certify_ri(res["theta"], res["crit"], S, True)
    assert ok.all() and why == [""] * 3 and res["converged"].all()
    for r, Sr in enumerate(stats):
        one = ri.fit_ri(Sr)
        assert one["theta"][0] == res["theta"][r] and one["crit"][0] == res["crit"][r]
    # a point off the optimum, and 0 where the optimum is interior, fail with the size of the miss
    interior = np.flatnonzero(res["theta"] > 0)
    assert interior.size
    th = res["theta"].copy()
    th[interior] *= 1.5
    crit = ri.evaluate(th[:, None], S, True, deriv=False)["crit"][:, 0]
    ok, why = ri.certify_ri(th, crit, S, True)
    assert not ok[interior].any() and all("not stationary" in why[r] for r in interior)
    th[interior] = 0.0
    crit = ri.evaluate(th[:, None], S, True, deriv=False)["crit"][:, 0]
    ok, why = ri.certify_ri(th, crit, S, True)
    assert all(why[r].startswith("optimality check failed: variance at 0 but d crit / d theta") for r in interior)


def _nearly_exact(eps, seed=0, G=12, m=5):
    """Groups whose responses are their group level plus noise of SD ``eps``: var(residual) ~ eps^2."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(G), m)
    x = rng.normal(size=G * m)
    X = np.column_stack([np.ones(G * m), x])
    y = 1 + 0.5 * x + rng.normal(size=G)[g] + eps * rng.normal(size=G * m)
    return y, X, g, G


def test_criterion_falling_beyond_the_grid_is_not_a_boundary():
    """The criterion can fall all the way along the first grid (theta * nbar up to 1e8): var(residual)
    -> 0. The boundary rule alone then reported theta = 0, status boundary (a variance ratio of 1e11 read
    as 0). Now: with the optimum within the wider grid (1e12) it is found and certified; beyond it, the fit
    is not converged and says why."""
    S = ri.ri_stats(*_nearly_exact(1e-5))
    res = ri.fit_ri(S)
    assert res["converged"][0] and res["theta"][0] > 1e9 and not res["boundary"][0]
    S = ri.ri_stats(*_nearly_exact(1e-6))
    res = ri.fit_ri(S)
    assert not res["converged"][0]
    assert "variance at 0 but d crit / d theta" in res["message"][0]
    assert "criterion still decreasing at theta = 1e+12" in res["message"][0]


def _dense_ri_optimum(y, X, g, reml):
    """Reference: dense criterion over tau = theta nbar / (1 + theta nbar), a 60-point grid, bounded Brent
    around the best grid point, and theta = 0."""
    from scipy.optimize import minimize_scalar

    nbar = y.size / (g.max() + 1)

    def f(tau):
        return _dense_crit(y, X, g, tau / ((1 - tau) * nbar), reml)

    grid = np.linspace(0, 1 - 1e-6, 60)
    vals = [f(t) for t in grid]
    k = int(np.argmin(vals))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]
    r = minimize_scalar(f, bounds=(lo, hi), method="bounded", options={"xatol": 1e-13})
    return min(r.fun, min(vals), f(0.0))


@settings(max_examples=100, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), G=st.integers(2, 15), max_size=st.integers(1, 9),
       log_var=st.floats(-6, 0.5), reml=st.booleans())
def test_property_never_worse_than_dense_reference_and_statsmodels(seed, G, max_size, log_var, reml):
    """Random near-boundary random-intercept designs (variance 0 below 1e-5.5, else tiny to large;
    unbalanced sizes 1..max_size, singletons included): the batched fast fit is certified and its criterion
    is never above the dense reference optimiser's, nor statsmodels' (-2 llf), by more than 1e-8 (absolute;
    criteria here are 5 to 400); at theta = 0, moving theta up (1e-8 to 1e-2 of 1 / mean group size)
    never lowers the dense criterion by more than 1e-8."""
    import warnings

    import statsmodels.api as sm

    rng = np.random.default_rng(seed)
    sizes = tuple(int(v) for v in rng.integers(1, max_size + 1, size=G))
    y, X, g, _ = _data(seed=seed, sizes=sizes, var_u=0.0 if log_var < -5.5 else 10.0**log_var)
    S = ri.ri_stats(y, X, g, G)
    assume(y.size - X.shape[1] >= 3 and ri.within_residual_ok(S.W, np.diag(X.T @ X)[None], S.nobs)[0])
    res = ri.fit_ri(S, reml)
    assert res["converged"][0], res["message"][0]
    crit = res["crit"][0]
    assert crit == pytest.approx(_dense_crit(y, X, g, res["theta"][0], reml), rel=1e-10, abs=1e-10)
    assert crit <= _dense_ri_optimum(y, X, g, reml) + 1e-8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            llf = sm.MixedLM(y, X, groups=g).fit(reml=reml).llf
        except Exception:  # noqa: BLE001 - statsmodels fails on some of these; nothing to compare
            llf = np.nan
    if np.isfinite(llf):
        assert crit <= -2 * llf + 1e-8
    if res["theta"][0] == 0:
        nbar = y.size / G
        for t in 10.0 ** np.arange(-8, -1):
            assert _dense_crit(y, X, g, t / nbar, reml) >= crit - 1e-8


def test_refit_of_uncertified_replicates_is_batch_invariant():
    """Replicates needing the wider search (var(residual) ~ 1e-10) or failing it, mixed with ordinary ones:
    each replicate's numbers and messages are bit-identical to its fit alone."""
    stats = [ri.ri_stats(*_data(seed=1)), ri.ri_stats(*_nearly_exact(1e-5)), ri.ri_stats(*_data(seed=2, var_u=0.0)),
             ri.ri_stats(*_nearly_exact(1e-6, seed=3)), ri.ri_stats(*_data(seed=4, sizes=(1, 8, 8, 20)))]
    batch = ri.fit_ri(ri.stack_stats(stats))
    assert batch["converged"].tolist() == [True, True, True, False, True]
    for r, S in enumerate(stats):
        one = ri.fit_ri(S)
        for key in ("theta", "crit", "sigma2", "beta", "cov", "converged", "boundary"):
            assert np.array_equal(one[key][0], batch[key][r]), (r, key)
        assert one["message"][0] == batch["message"][r]
