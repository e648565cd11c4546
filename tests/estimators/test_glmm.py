"""GLMM against lme4's glmer (stored references), the estimator contract, batching and edge cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simstudy.estimators import glmm_fit
from simstudy.estimators.conformance import check_estimator
from simstudy.estimators.glmm import GLMM

DATA = Path(__file__).resolve().parents[1] / "data" / "glmer"
MANIFEST = pd.read_csv(DATA / "manifest.csv")
RESULTS = pd.read_csv(DATA / "glmer_results.csv", keep_default_na=False)
CASES = [(name, int(q)) for name in MANIFEST["name"]
         for q in sorted(RESULTS.loc[RESULTS["dataset"] == name, "nagq"].unique())]
SEPARATED = {"bin_sep", "poi_sep"}


def _estimator(row, nagq: int) -> GLMM:
    return GLMM("y ~ x + treat", groups="g", family=row["family"], nagq=nagq,
                trials="n" if row["kind"] == "trials" else None)


def _ref(name: str, nagq: int, kind: str) -> np.ndarray:
    r = RESULTS[(RESULTS["dataset"] == name) & (RESULTS["nagq"] == nagq) & (RESULTS["kind"] == kind)]
    return r["value"].to_numpy()


@pytest.mark.parametrize("name,nagq", CASES, ids=[f"{n}-nagq{q}" for n, q in CASES])
def test_matches_glmer(name: str, nagq: int) -> None:
    row = MANIFEST.set_index("name").loc[name]
    data = pd.read_csv(DATA / row["file"])
    fit, info = _estimator(row, nagq).fit_with_info(data)
    fe, se = _ref(name, nagq, "fixef").astype(float), _ref(name, nagq, "se").astype(float)
    if name in SEPARATED:
        # lme4 stops somewhere along the separating direction: a large treat effect with an enormous SE (and
        # warnings); we refuse to report a number
        assert abs(fe[2]) > 20 and se[2] > 1e4 and len(_ref(name, nagq, "warning")) > 0
        assert fit.status == "failed" and fit.message.startswith("separation") and "(treat)" in fit.message
        assert np.isnan(fit.estimate).all()
        return
    vc = float(_ref(name, nagq, "vc")[0])
    singular = bool(int(_ref(name, nagq, "singular")[0]))
    assert fit.params == ("Intercept", "x", "treat", "var(g)")
    np.testing.assert_allclose(fit.estimate[:3], fe, rtol=0, atol=1e-5)
    np.testing.assert_allclose(fit.se[:3], se, rtol=1e-4)
    if vc > 1e-8:
        assert abs(fit.estimate[3] - vc) <= 1e-4 * vc
    else:
        assert fit.estimate[3] <= 1e-8
    assert (fit.status == "boundary") == singular
    assert fit.status in ("ok", "boundary")
    assert np.isnan(fit.df).all() and np.isnan(fit.se[3])
    np.testing.assert_allclose(fit.ci_upper[:3] - fit.estimate[:3], 1.959963984540054 * fit.se[:3], rtol=1e-12)
    # lme4's -2 logLik (Laplace: aic-based; AGQ: deviance residuals); lme4's Laplace deviance carries the
    # log-determinant of its penultimate PIRLS iterate, hence the looser tolerance there
    assert abs(info["deviance"] - float(_ref(name, nagq, "deviance")[0])) < (1e-6 if nagq == 1 else 1e-9)


def _two_arm(rng, G=10, n=8, family="binomial", sd=0.7, b0=-0.3, trials=False):
    g = np.repeat(np.arange(G), n)
    x = rng.normal(size=g.size)
    treat = (np.arange(G) % 2)[g]
    eta = b0 + 0.5 * x + 0.4 * treat + rng.normal(scale=sd, size=G)[g]
    if family == "poisson":
        return {"y": rng.poisson(np.exp(eta)), "x": x, "treat": treat, "g": g}
    if trials:
        n_t = rng.integers(1, 8, size=g.size)
        return {"y": rng.binomial(n_t, 1 / (1 + np.exp(-eta))), "n": n_t, "x": x, "treat": treat, "g": g}
    return {"y": rng.binomial(1, 1 / (1 + np.exp(-eta))), "x": x, "treat": treat, "g": g}


@pytest.mark.parametrize("family,trials,nagq", [("binomial", False, 1), ("binomial", True, 1),
                                                ("poisson", False, 1), ("binomial", False, 7),
                                                ("poisson", False, 4)])
def test_conformance(family: str, trials: bool, nagq: int) -> None:
    rng = np.random.default_rng(11)
    data = _two_arm(rng, family=family, trials=trials)
    est = GLMM("y ~ x + treat", groups="g", family=family, nagq=nagq, trials="n" if trials else None)
    fit = check_estimator(est, data)
    assert fit.converged
    check_estimator(est, {**data, "y": np.zeros_like(data["y"])})  # a failing fit keeps the contract


def _same(a, b) -> bool:
    return (a.params == b.params and a.status == b.status and a.message == b.message
            and all(np.array_equal(getattr(a, k), getattr(b, k), equal_nan=True)
                    for k in ("estimate", "se", "ci_lower", "ci_upper", "df")))


@pytest.mark.parametrize("family,nagq", [("binomial", 1), ("poisson", 1), ("binomial", 5)])
def test_fit_batch_bit_identical(family: str, nagq: int) -> None:
    rng = np.random.default_rng(5)
    datasets = []
    for k in range(14):
        G = [6, 10, 15][k % 3]
        d = _two_arm(rng, G=G, n=[5, 8][k % 2], family=family, sd=[0.0, 0.5, 1.2][k % 3])
        if k % 4 == 3:  # unbalanced: drop some rows
            keep = rng.random(d["g"].size) > 0.3
            d = {c: v[keep] for c, v in d.items()}
        datasets.append(d)
    datasets[4] = {**datasets[4], "y": np.where(datasets[4]["treat"] == 1, 0, datasets[4]["y"])}  # separated
    datasets[7] = {**datasets[7], "x2": 2.0 * datasets[7]["x"]}  # rank deficient (formula below)
    est = GLMM("y ~ x + treat", groups="g", family=family, nagq=nagq)
    alone = [est.fit(d) for d in datasets]
    batch = est.fit_batch(datasets)
    reverse = est.fit_batch(datasets[::-1])[::-1]
    pairs = est.fit_batch(datasets[:5]) + est.fit_batch(datasets[5:])
    for fits in (batch, reverse, pairs):
        assert all(_same(a, b) for a, b in zip(alone, fits))
    assert {f.status for f in alone} >= {"ok", "boundary", "failed"}
    est2 = GLMM("y ~ x + x2 + treat", groups="g", family=family, nagq=nagq)
    mixed = [datasets[7], {**datasets[2], "x2": rng.normal(size=datasets[2]["g"].size)}]
    assert all(_same(est2.fit(d), f) for d, f in zip(mixed, est2.fit_batch(mixed)))


def test_status_and_messages() -> None:
    rng = np.random.default_rng(3)
    G, n = 12, 6
    g = np.repeat(np.arange(G), n)
    x = rng.normal(size=G * n)
    t = (np.arange(G) % 2)[g]
    y = rng.binomial(1, 0.4, G * n)
    est = GLMM("y ~ x", groups="g")

    def fit(data, **kw):
        return GLMM(kw.pop("formula", "y ~ x"), groups="g", **kw).fit(data)

    # complete separation on x, and quasi-complete separation of a cluster-level arm
    f = fit({"y": (x > 0).astype(int), "x": x, "g": g})
    assert f.status == "failed" and f.message.startswith("separation") and "(Intercept, x)" in f.message
    f = fit({"y": rng.binomial(1, 0.3, G * n) * (t == 0), "t": t, "g": g}, formula="y ~ t")
    assert f.status == "failed" and "(t)" in f.message and np.isnan(f.estimate).all()
    f = fit({"y": rng.poisson(1.0, G * n) * (t == 0), "t": t, "g": g}, formula="y ~ t", family="poisson")
    assert f.status == "failed" and "(t)" in f.message
    # no cluster with both outcomes: var is infinite; single Bernoulli trials: not identifiable
    f = fit({"y": (np.arange(G) % 3 == 0)[g].astype(int), "x": x, "g": g})
    assert f.status == "failed" and "both successes and failures" in f.message
    f = fit({"y": y, "x": x, "g": np.arange(G * n)})
    assert f.status == "failed" and "single Bernoulli trial" in f.message
    # constant response, one group, bad responses, missing trials
    assert "constant" in fit({"y": np.zeros(G * n), "x": x, "g": g}).message
    assert "only one level" in fit({"y": y, "x": x, "g": np.zeros(G * n, int)}).message
    assert "0/1" in fit({"y": 2 * y, "x": x, "g": g}).message
    assert "non-negative integer" in fit({"y": -y, "x": x, "g": g}, family="poisson").message
    assert "trials column" in fit({"y": y, "x": x, "g": g}, trials="n").message
    assert "between 0 and" in fit({"y": y + 2, "n": np.ones(G * n), "x": x, "g": g}, trials="n").message
    assert "non-finite" in fit({"y": np.where(np.arange(G * n) == 2, np.nan, y), "x": x, "g": g}).message
    # all-0 clusters are fitted and said; rank deficiency named
    y0 = np.where(np.isin(g, [0, 1, 2]), 0, y)
    f = est.fit({"y": y0, "x": x, "g": g})
    n0 = int((np.bincount(g, weights=y0) == 0).sum())
    assert n0 >= 3 and f.converged and f"{n0} of 12 clusters have every response 0" in f.message
    f = fit({"y": y, "x": x, "x2": 2 * x, "g": g}, formula="y ~ x + x2")
    assert f.converged and np.isnan(f.estimate[2]) and "not estimable" in f.message and "x2" in f.message
    # Poisson with one observation per cluster (observation-level random effect) is identifiable
    f = fit({"y": rng.poisson(np.exp(0.5 + rng.normal(scale=0.7, size=G * n))), "x": x, "g": np.arange(G * n)},
            family="poisson")
    assert f.converged and f.estimate[-1] > 0


def test_boundary_fit_is_the_glm() -> None:
    """At var = 0 the estimates and SEs are the GLM's (the Hessian is block diagonal there)."""
    import statsmodels.api as sm

    row = MANIFEST.set_index("name").loc["bin_bound"]
    data = pd.read_csv(DATA / row["file"])
    fit = _estimator(row, 1).fit(data)
    assert fit.status == "boundary" and fit.estimate[3] == 0.0 and "boundary" in fit.message
    X = np.column_stack([np.ones(len(data)), data["x"], data["treat"]])
    glm = sm.GLM(data["y"].to_numpy(), X, family=sm.families.Binomial()).fit(tol=1e-14)
    np.testing.assert_allclose(fit.estimate[:3], glm.params, atol=1e-9)
    np.testing.assert_allclose(fit.se[:3], glm.bse, rtol=1e-7)


def test_nonconvergence_is_certified_not_trusted(monkeypatch) -> None:
    """An optimiser stopped early is caught by the optimality certificate, with the reason in the message."""
    rng = np.random.default_rng(8)
    data = _two_arm(rng, G=12, n=10, sd=1.0)
    good = GLMM("y ~ x + treat", groups="g").fit(data)
    assert good.status == "ok"
    monkeypatch.setattr(glmm_fit, "MAXIT", 1)
    bad = GLMM("y ~ x + treat", groups="g").fit(data)
    assert bad.status == "nonconverged" and "optimality check failed" in bad.message


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="family"):
        GLMM("y ~ x", groups="g", family="gaussian")
    with pytest.raises(ValueError, match="nagq"):
        GLMM("y ~ x", groups="g", nagq=0)
    with pytest.raises(ValueError, match="nagq"):
        GLMM("y ~ x", groups="g", nagq=26)
    with pytest.raises(ValueError, match="trials"):
        GLMM("y ~ x", groups="g", family="poisson", trials="n")
    with pytest.raises(ValueError, match="groups"):
        GLMM("y ~ x", groups=["a", "b"])
    with pytest.raises(ValueError, match="level"):
        GLMM("y ~ x", groups="g", level=1.5)
    assert "nagq=3" in repr(GLMM("y ~ x", groups="g", nagq=3))


def test_quadrature_node_chunks_do_not_change_results(monkeypatch) -> None:
    """Large replicates evaluate the quadrature nodes in chunks (bounded memory): same numbers, bit for bit."""
    from simstudy.estimators import glmm_deviance

    rng = np.random.default_rng(4)
    datasets = [_two_arm(rng, G=12, n=10, sd=s) for s in (0.3, 1.0, 2.0)]
    est = GLMM("y ~ x + treat", groups="g", nagq=9)
    whole = est.fit_batch(datasets)
    monkeypatch.setattr(glmm_deviance, "_NODE_BUDGET", 500)  # one node per chunk
    assert all(_same(a, b) for a, b in zip(whole, est.fit_batch(datasets)))
