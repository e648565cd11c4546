"""Satterthwaite df of the random-intercept model: against lmerTest (tests/data/lmertest), at boundary fits,
and the analytic derivatives against finite differences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simstudy.estimators import reml as ri
from simstudy.estimators.fast_mixedlm import FastMixedLM
from simstudy.estimators.formula import Formula

DATA = Path(__file__).resolve().parents[1] / "data" / "lmertest"
MANIFEST = pd.read_csv(DATA / "manifest.csv")
REF = pd.read_csv(DATA / "lmertest_results.csv")
CASES = [(row.name, reml) for row in MANIFEST.itertuples() for reml in (1, 0)]

#: Relative tolerances for the df against lmerTest (see tests/data/lmertest/README.md). Measured: boundary
#: fits 4e-11, interior fits with lme4's theta (relative SD) >= 0.05 at most 2.2e-7, interior fits closer to
#: the boundary 1.9e-5 (theta 0.016) and 6.7e-4 (theta 0.0042): lmerTest's numDeriv Hessian in
#: (theta, sigma) loses accuracy there (finite differences in our parametrisation agree with ours to 1e-6).
RTOL_BOUNDARY, RTOL_INTERIOR, RTOL_NEAR = 1e-9, 1e-6, 2e-3


def reference(name: str, reml: int) -> dict:
    r = REF[(REF.dataset == name) & (REF.reml == reml)]

    def get(kind: str) -> np.ndarray:
        return r[r.kind == kind].value.to_numpy(dtype=float)

    return {k: get(k) for k in ("estimate", "se", "df", "contest_df", "theta", "sigma2", "singular", "nobs", "p",
                                "jac_theta")}


def fit(name: str, reml: int, **kw):
    row = MANIFEST.set_index("name").loc[name]
    data = pd.read_csv(DATA / row.file)
    return FastMixedLM(row.formula, groups=row.groups, reml=bool(reml), df_method="satterthwaite", **kw).fit(data)


@pytest.mark.parametrize("name,reml", CASES)
def test_satterthwaite_matches_lmertest(name, reml):
    ref = reference(name, reml)
    f = fit(name, reml)
    p = ref["df"].size
    assert (f.status == "boundary") == bool(ref["singular"][0]), f.message
    np.testing.assert_allclose(f.estimate[:p], ref["estimate"], rtol=0, atol=1e-7)
    np.testing.assert_allclose(f.se[:p], ref["se"], rtol=1e-6)
    if ref["singular"][0]:
        rtol = RTOL_BOUNDARY
    else:
        rtol = RTOL_INTERIOR if ref["theta"][0] >= 0.05 else RTOL_NEAR
    np.testing.assert_allclose(f.df[:p], ref["df"], rtol=rtol)
    np.testing.assert_array_equal(ref["contest_df"], ref["df"])


def test_lmertest_reference_covers_the_cases():
    """Boundary and interior fits, balanced and unbalanced designs, near-boundary interior fits, REML and ML."""
    sing = {(n, r): bool(reference(n, r)["singular"][0]) for n, r in CASES}
    assert sum(sing.values()) >= 8 and sum(not s for s in sing.values()) >= 8
    for reml in (0, 1):
        assert any(sing[(n, reml)] for n in MANIFEST.name if n.startswith("unbal"))
        assert any(not sing[(n, reml)] for n in MANIFEST.name if n.startswith("unbal"))
    thetas = [reference(n, 1)["theta"][0] for n in MANIFEST.name if not sing[(n, 1)]]
    assert min(thetas) < 0.01


@pytest.mark.parametrize("name,reml", CASES)
def test_lmertest_at_the_boundary_gives_the_residual_df(name, reml):
    """What lmerTest does at a singular fit (documents the reference): the derivative of vcov(beta) in its
    relative SD vanishes (vcov depends on it through its square), so only sigma contributes and the df are
    those of the model without the random intercept: n - p (REML) or n (ML)."""
    ref = reference(name, reml)
    if not ref["singular"][0]:
        return
    n, p = ref["nobs"][0], ref["p"][0]
    np.testing.assert_allclose(ref["df"], n - p if reml else n, rtol=1e-9)
    assert ref["jac_theta"][0] < 1e-7


def _small(seed: int, G: int = 6, m: int = 10, icc: float = 0.01) -> dict:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(G), m)
    treat = (np.arange(G) % 2)[g].astype(float)
    x = rng.normal(size=g.size)
    y = 1 + 0.5 * x + 0.3 * treat + np.sqrt(icc / (1 - icc)) * rng.normal(size=G)[g] + rng.normal(size=g.size)
    return {"g": g, "x": x, "treat": treat, "y": y}


@pytest.mark.parametrize("reml", [True, False])
def test_no_nan_or_tiny_df_at_boundary_fits(reml):
    """6 groups x 10, ICC 0.01 (defect: df 0.02-0.4 or NaN at singular fits): boundary fits get the residual
    df of the linear model, interior fits finite df above 1 (near G - 2 for the cluster-level columns)."""
    data = [_small(s) for s in range(400)]
    fits = FastMixedLM("y ~ x + treat", groups="g", reml=reml, df_method="satterthwaite").fit_batch(data)
    df = np.array([f.df[:3] for f in fits])
    boundary = np.array([f.status == "boundary" for f in fits])
    assert all(f.status in ("ok", "boundary") for f in fits)
    assert 50 < boundary.sum() < 350
    assert np.isfinite(df).all() and (df > 1).all()
    np.testing.assert_array_equal(df[boundary], 57.0 if reml else 60.0)
    assert (df[~boundary][:, [0, 2]] < 8).all() and (df[~boundary][:, 1] > 40).all()
    assert all(np.isfinite(f.ci_lower[:3]).all() for f in fits)


def _stats(data: dict, formula: str = "y ~ x + treat") -> ri.GroupStats:
    y, X, _ = Formula(formula).build(data)
    return ri.ri_stats(y, X, data["g"], int(data["g"].max()) + 1)


@pytest.mark.parametrize("reml", [True, False])
def test_analytic_derivatives_match_finite_differences(reml):
    """The df from central differences of the exact criterion in (var ratio, var(residual)) at an interior
    optimum, including one close to the boundary (ratio 1.8e-5), equal the analytic ones."""
    for data in (_small(8), _small(1457), {**_small(3, G=15, m=7, icc=0.3)}):
        S = _stats(data)
        res = ri.fit_ri(S, reml)
        if res["boundary"][0]:
            continue
        r0, s0 = res["theta"][0], res["sigma2"][0]
        dof = S.nobs[0] - S.p if reml else S.nobs[0]

        def ev(r: float) -> dict:
            return ri.evaluate(np.array([[r]]), S, reml, deriv=False)

        def F(r: float, s: float) -> float:
            e = ev(r)
            return dof * np.log(2 * np.pi * s) + e["ldH"][0, 0] + (e["logdetM"][0, 0] if reml else 0) + e["q"][0, 0] / s

        def V(r: float, s: float) -> np.ndarray:
            return s * np.diag(ev(r)["Minv"][0, 0])

        hr, hs = 0.5 * min(r0, 1e-3 * max(r0, 1e-2)), 1e-4 * s0
        Htt = (F(r0 + hr, s0) - 2 * F(r0, s0) + F(r0 - hr, s0)) / hr**2
        Hss = (F(r0, s0 + hs) - 2 * F(r0, s0) + F(r0, s0 - hs)) / hs**2
        Hts = (F(r0 + hr, s0 + hs) - F(r0 + hr, s0 - hs) - F(r0 - hr, s0 + hs) + F(r0 - hr, s0 - hs)) / (4 * hr * hs)
        C = 2 * np.linalg.inv(np.array([[Htt, Hts], [Hts, Hss]]))
        g = np.stack([(V(r0 + hr, s0) - V(r0 - hr, s0)) / (2 * hr), (V(r0, s0 + hs) - V(r0, s0 - hs)) / (2 * hs)], 1)
        fd = 2 * V(r0, s0) ** 2 / np.einsum("ki,ij,kj->k", g, C, g)
        mine = ri.satterthwaite_ri(S, res["theta"], res["sigma2"], reml, res["boundary"])[0]
        np.testing.assert_allclose(mine, fd, rtol=2e-5)


def test_boundary_df_is_the_residual_df_and_boundary_defaults_to_the_fit_flag():
    S = _stats(_small(1))
    res = ri.fit_ri(S, True)
    assert res["boundary"][0]
    np.testing.assert_array_equal(ri.satterthwaite_ri(S, res["theta"], res["sigma2"]), 57.0)
    np.testing.assert_array_equal(ri.satterthwaite_ri(S, res["theta"], res["sigma2"], True, res["boundary"]), 57.0)


def test_df_nan_where_the_hessian_is_not_positive_definite():
    """Away from the optimum (here var(residual) three times its estimate, where the criterion is concave
    in it) the df cannot be computed: NaN, never a number."""
    S = _stats(_small(8))
    res = ri.fit_ri(S, True)
    df = ri.satterthwaite_ri(S, res["theta"], 3 * res["sigma2"], True, np.array([False]))
    assert np.isnan(df).all()


def test_uncomputable_df_are_nan_with_a_message(monkeypatch):
    data = [_small(8), _small(9)]
    real = ri.satterthwaite_ri

    def broken_first(S, theta, sigma2, reml=True, boundary=None):
        out = real(S, theta, sigma2, reml, boundary)
        out[0] = np.nan
        return out

    monkeypatch.setattr(ri, "satterthwaite_ri", broken_first)
    est = FastMixedLM("y ~ x + treat", groups="g", df_method="satterthwaite")
    a, b = est.fit_batch(data)
    assert a.status == "ok" and "Satterthwaite df could not be computed" in a.message
    assert np.isnan(a.df[:3]).all() and np.isnan(a.ci_lower[:3]).all() and np.isnan(a.ci_upper[:3]).all()
    assert np.isfinite(a.estimate[:3]).all() and np.isfinite(a.se[:3]).all()
    assert b.message == "" and np.isfinite(b.df[:3]).all()
