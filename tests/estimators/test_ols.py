"""OLS: classical, cluster-robust (CR1) and fixed-effects fits against statsmodels; not-estimable columns."""

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from simstudy.estimators import OLS, Fit

G, M = 15, 8  # groups x group size


def clustered(seed=3, n_groups=G, size=M):
    """Clustered data: a within-group x and z, a cluster-level treatment, a random group intercept."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), size)
    n = g.size
    treat = (np.arange(n_groups) % 2)[g].astype(float)
    x = rng.normal(size=n) + rng.normal(size=n_groups)[g]  # correlated within groups
    z = rng.normal(size=n)
    y = 1.0 + 0.5 * x - 0.3 * z + 0.4 * treat + rng.normal(size=n_groups)[g] + rng.normal(size=n)
    return {"y": y, "x": x, "z": z, "treat": treat, "g": g}


@pytest.fixture(scope="module")
def data():
    return clustered()


@pytest.fixture(scope="module")
def df(data):
    return pd.DataFrame(data)


def assert_matches(fit: Fit, res, names=None, rtol=1e-8, atol=1e-10):
    """Estimates, SEs and CI limits of ``fit`` equal statsmodels' results ``res``, matched by name."""
    names = fit.params if names is None else names
    ci = res.conf_int()
    for name in names:
        j = fit.params.index(name)
        np.testing.assert_allclose(fit.estimate[j], res.params[name], rtol=rtol, atol=atol, err_msg=name)
        np.testing.assert_allclose(fit.se[j], res.bse[name], rtol=rtol, atol=atol, err_msg=name)
        np.testing.assert_allclose(fit.ci_lower[j], ci.loc[name, 0], rtol=rtol, atol=atol, err_msg=name)
        np.testing.assert_allclose(fit.ci_upper[j], ci.loc[name, 1], rtol=rtol, atol=atol, err_msg=name)


def test_classical_matches_statsmodels(data, df):
    fit = OLS("y ~ x + z + treat").fit(data)
    res = smf.ols("y ~ x + z + treat", df).fit()
    assert fit.params == ("Intercept", "x", "z", "treat")
    assert_matches(fit, res)
    n = G * M
    np.testing.assert_array_equal(fit.df, np.full(4, n - 4.0))
    assert (fit.status, fit.n_warnings, fit.message) == ("ok", 0, "")


def test_cluster_robust_matches_statsmodels_cr1_with_g_minus_1_df(data, df):
    fit = OLS("y ~ x + z + treat", groups="g").fit(data)
    res = smf.ols("y ~ x + z + treat", df).fit(cov_type="cluster", cov_kwds={"groups": df["g"]}, use_t=True)
    assert_matches(fit, res)
    # statsmodels' df for cluster inference is G - 1 (df_resid_inference); so is ours
    assert res.df_resid_inference == G - 1
    np.testing.assert_array_equal(fit.df, np.full(4, G - 1.0))
    q = stats.t.ppf(0.975, G - 1)
    np.testing.assert_allclose(fit.ci_upper - fit.estimate, q * fit.se, rtol=1e-12)
    # and it is not the classical SE
    classical = OLS("y ~ x + z + treat").fit(data)
    assert not np.allclose(fit.se, classical.se, rtol=1e-3)


def test_cluster_robust_small_sample_factor_by_hand(data):
    """CR1 = G/(G-1) (n-1)/(n-p) (X'X)^-1 (sum_g s_g s_g') (X'X)^-1, computed here independently."""
    fit = OLS("y ~ x + z", groups="g").fit(data)
    X = np.column_stack([np.ones(G * M), data["x"], data["z"]])
    beta, *_ = np.linalg.lstsq(X, data["y"], rcond=None)
    e = data["y"] - X @ beta
    S = np.stack([(X[data["g"] == k] * e[data["g"] == k, None]).sum(0) for k in range(G)])
    bread = np.linalg.inv(X.T @ X)
    n, p = X.shape
    V = G / (G - 1) * (n - 1) / (n - p) * bread @ S.T @ S @ bread
    np.testing.assert_allclose(fit.se, np.sqrt(np.diag(V)), rtol=1e-10)


def test_string_cluster_labels_and_dataframe_input(data, df):
    labels = np.array([f"school-{k:02d}" for k in range(G)])[data["g"]]
    a = OLS("y ~ x", groups="g").fit(data)
    b = OLS("y ~ x", groups="g").fit({**data, "g": labels})
    c = OLS("y ~ x", groups="g").fit(df)
    np.testing.assert_allclose(b.se, a.se, rtol=1e-13)
    np.testing.assert_array_equal(c.se, a.se)


def test_fixed_effects_match_statsmodels_with_group_dummies(data, df):
    fit = OLS("y ~ x + z", fixed_effects="g").fit(data)
    res = smf.ols("y ~ x + z + C(g)", df).fit()
    assert fit.params == ("x", "z")  # the intercept is absorbed by the group intercepts
    assert_matches(fit, res)
    n, p = G * M, 3
    assert res.df_resid == n - p - G + 1
    np.testing.assert_array_equal(fit.df, np.full(2, n - p - G + 1.0))


def test_fixed_effects_without_intercept_in_formula_is_the_same_model(data):
    a = OLS("y ~ x + z", fixed_effects="g").fit(data)
    b = OLS("y ~ 0 + x + z", fixed_effects="g").fit(data)
    assert a.params == b.params
    np.testing.assert_allclose(b.estimate, a.estimate, rtol=1e-12)
    np.testing.assert_allclose(b.se, a.se, rtol=1e-12)
    np.testing.assert_array_equal(b.df, a.df)


def test_cluster_level_treatment_is_not_estimable_with_fixed_effects(data, df):
    fit = OLS("y ~ x + treat", fixed_effects="g").fit(data)
    j = fit.params.index("treat")
    for arr in (fit.estimate, fit.se, fit.ci_lower, fit.ci_upper, fit.df):
        assert np.isnan(arr[j])
    assert "not estimable: treat is collinear with the fixed effects of g" in fit.message
    assert fit.status == "ok"
    # statsmodels prints a number for treat from a singular design (the notebook's pitfall) ...
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = smf.ols("y ~ x + treat + C(g)", df).fit()
    assert np.isfinite(res.params["treat"]) and res.condition_number > 1e10
    # ... while x, identified, is the same, with the same df (n - rank)
    assert_matches(fit, res, names=["x"])
    assert fit.df[fit.params.index("x")] == res.df_resid


def test_fixed_effects_with_cluster_robust_se_match_statsmodels(data, df):
    fit = OLS("y ~ x + z", fixed_effects="g", groups="g").fit(data)
    res = smf.ols("y ~ x + z + C(g)", df).fit(cov_type="cluster", cov_kwds={"groups": df["g"]}, use_t=True)
    assert_matches(fit, res, names=["x", "z"])
    np.testing.assert_array_equal(fit.df, np.full(2, G - 1.0))


def test_fixed_effects_at_a_finer_level_than_the_clusters(df):
    """Fixed effects for pairs of observations, clusters = groups: the CR1 factor counts the absorbed
    intercepts, as statsmodels does with the dummies in its design."""
    d = df.assign(pair=np.arange(len(df)) // 2)
    fit = OLS("y ~ x + z", fixed_effects="pair", groups="g").fit(d)
    res = smf.ols("y ~ x + z + C(pair)", d).fit(cov_type="cluster", cov_kwds={"groups": d["g"]}, use_t=True)
    assert_matches(fit, res, names=["x", "z"], rtol=1e-7)


def test_rank_deficient_plain_ols_reports_not_estimable(data, df):
    d = {**data, "x2": 2.0 * data["x"] + 1.0}
    fit = OLS("y ~ x + x2 + z").fit(d)
    j = fit.params.index("x2")
    assert np.isnan(fit.estimate[j]) and np.isnan(fit.se[j]) and np.isnan(fit.df[j])
    assert "not estimable: x2 is collinear with Intercept, x" in fit.message
    # the rest is the fit without x2, df n - 3
    assert_matches(fit, smf.ols("y ~ x + z", df).fit(), names=["Intercept", "x", "z"])
    assert fit.df[0] == G * M - 3


def test_collinearity_tolerance_is_relative_to_the_column_norm(data, df):
    rng = np.random.default_rng(9)
    noise = rng.normal(size=G * M)
    near = OLS("y ~ x + x2").fit({**data, "x2": data["x"] + 1e-10 * noise})
    assert np.isnan(near.estimate[2]) and "x2 is collinear" in near.message
    # the same relative size of noise on a column of another scale: same decision
    scaled = OLS("y ~ x + x2").fit({**data, "x": 1e6 * data["x"], "x2": 1e6 * (data["x"] + 1e-10 * noise)})
    assert np.isnan(scaled.estimate[2])
    # clearly identified (noise 1e-3 relative): estimated, and equal to statsmodels
    d = df.assign(x2=df["x"] + 1e-3 * noise)
    ok = OLS("y ~ x + x2").fit({c: d[c].to_numpy() for c in d})
    assert ok.message == ""
    assert_matches(ok, smf.ols("y ~ x + x2", d).fit(), rtol=1e-6)


def test_all_zero_column_is_not_estimable(data):
    fit = OLS("y ~ x + w").fit({**data, "w": np.zeros(G * M)})
    assert np.isnan(fit.estimate[2]) and "w is all zero" in fit.message
    assert np.isfinite(fit.estimate[:2]).all()


def test_categorical_terms_match_statsmodels(data, df):
    d = {**data, "h": np.array(["a", "b", "c"])[np.arange(G * M) % 3]}
    fit = OLS("y ~ x + C(h)").fit(d)
    res = smf.ols("y ~ x + C(h)", pd.DataFrame(d)).fit()
    assert set(fit.params) == set(res.params.index)
    assert_matches(fit, res)


def test_level_sets_the_t_quantile(data, df):
    fit = OLS("y ~ x", level=0.80).fit(data)
    res = smf.ols("y ~ x", df).fit()
    ci = res.conf_int(alpha=0.20)
    np.testing.assert_allclose(fit.ci_lower, ci[0].to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(fit.ci_upper, ci[1].to_numpy(), rtol=1e-10)


def test_missing_values_are_dropped_like_statsmodels(data):
    d = {k: v.copy() for k, v in data.items()}
    d["y"][[3, 40]] = np.nan
    d["x"][7] = np.inf
    fit = OLS("y ~ x + z", groups="g").fit(d)
    df = pd.DataFrame(d).replace([np.inf], np.nan).dropna()
    res = smf.ols("y ~ x + z", df).fit(cov_type="cluster", cov_kwds={"groups": df["g"]}, use_t=True)
    assert_matches(fit, res)
    fe = OLS("y ~ x + z", fixed_effects="g").fit(d)
    assert_matches(fe, smf.ols("y ~ x + z + C(g)", df).fit(), names=["x", "z"])


def test_constant_response_is_a_failed_fit_not_a_crash(data):
    # an exact fit: SEs of 0 would make zero-width intervals (it was "ok" with SE 0 before; see below)
    fit = OLS("y ~ x").fit({**data, "y": np.full(G * M, 2.0)})
    assert fit.status == "failed" and "perfect fit" in fit.message
    assert fit.params == ("Intercept", "x") and np.isnan(fit.se).all()


def test_no_residual_df_and_single_cluster_give_failed_fits(data):
    small = {k: v[:2] for k, v in data.items()}
    fit = OLS("y ~ x + z").fit(small)
    assert fit.status == "failed" and "no residual degrees of freedom" in fit.message
    assert fit.params == ("Intercept", "x", "z") and np.isnan(fit.estimate).all()
    one = OLS("y ~ x", groups="g").fit({**data, "g": np.zeros(G * M, dtype=int)})
    assert one.status == "failed" and "at least 2 clusters" in one.message
    fe = OLS("y ~ x", fixed_effects="g").fit({**data, "g": np.arange(G * M)})
    assert fe.status == "failed"


def test_configuration_and_data_errors_raise(data):
    with pytest.raises(ValueError, match="column 'w'"):
        OLS("y ~ x + w").fit(data)
    with pytest.raises(ValueError, match="grouping column 'school'"):
        OLS("y ~ x", groups="school").fit(data)
    with pytest.raises(ValueError, match="level"):
        OLS("y ~ x", level=95)
    with pytest.raises(TypeError, match="groups"):
        OLS("y ~ x", groups=["g"])
    with pytest.raises(ValueError):
        OLS("y ~ x +")


def test_fit_stores_nothing(data):
    est = OLS("y ~ x", groups="g", fixed_effects="g")
    before = dict(vars(est))
    est.fit(data)
    assert vars(est) == before
    assert set(vars(est)) == {"formula", "groups", "fixed_effects", "level", "tol"}


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(8, 60), st.integers(1, 5))
def test_estimates_equal_lstsq_on_random_designs(seed, n, p):
    rng = np.random.default_rng(seed)
    cols = {f"x{j}": rng.normal(size=n) * 10.0 ** rng.integers(-3, 4) for j in range(p)}
    y = rng.normal(size=n)
    fit = OLS("y ~ " + " + ".join(cols)).fit({"y": y, **cols})
    X = np.column_stack([np.ones(n), *cols.values()])
    if n <= p + 1:
        assert fit.status == "failed"
        return
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    np.testing.assert_allclose(fit.estimate, beta, rtol=1e-7, atol=1e-9 * np.abs(beta).max())
    assert np.all(fit.ci_lower <= fit.estimate) and np.all(fit.estimate <= fit.ci_upper)


# --- batches: every replicate's fit bit for bit, whatever the batch --------------------------------------


def same_fit(a: Fit, b: Fit) -> None:
    assert a.params == b.params and (a.status, a.n_warnings, a.message) == (b.status, b.n_warnings, b.message)
    for v in ("estimate", "se", "ci_lower", "ci_upper", "df"):
        x, y = getattr(a, v), getattr(b, v)
        assert x.shape == y.shape and x.tobytes() == y.tobytes(), v


def mixed_replicates(rng, n, p, k):
    """k replicates of n rows (a few of another size), p covariates; some collinear, with missing values,
    an all-zero column, integer columns, one cluster only."""
    out = []
    for r in range(k):
        m = n if r % 4 else int(rng.integers(3, 2 * n))
        d = {"y": rng.normal(size=m) * 10.0 ** rng.integers(-2, 3)}
        for j in range(p):
            d[f"x{j}"] = rng.normal(size=m) * 10.0 ** rng.integers(-3, 4)
        d["g"] = rng.integers(0, int(rng.integers(1, 8)), m)
        d["c"] = rng.choice(["a", "b", "c"], m)
        kind = rng.integers(0, 6)
        if kind == 1 and p > 1:
            d["x1"] = 3.0 * d["x0"]
        elif kind == 2:
            d["y"][rng.integers(0, m)] = np.nan
        elif kind == 3:
            d["x0"] = np.zeros(m)
        elif kind == 4:
            d["x0"] = rng.integers(0, 3, m)
        out.append(d)
    return out


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(4, 40), st.integers(1, 10), st.integers(1, 12),
       st.sampled_from([{}, {"groups": "g"}, {"fixed_effects": "g"}, {"groups": "c", "fixed_effects": "g"}]),
       st.sampled_from(["", " + C(c)", " - 1", " + x0:g"]))
def test_batches_equal_single_fits_bit_for_bit(seed, n, p, k, opts, extra):
    from simstudy.estimators.formula import shared_designs

    rng = np.random.default_rng(seed)
    est = OLS("y ~ " + " + ".join(f"x{j}" for j in range(p)) + extra, **opts)
    datasets = mixed_replicates(rng, n, p, k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate draws may warn (0/0): the same in both
        singles = [est.fit(d) for d in datasets]
        with shared_designs():
            batch = est.fit_batch(datasets)
            arrays = est.fit_batch_arrays(datasets)
    for single, fit, i in zip(singles, batch, range(k)):
        same_fit(fit, single)
        same_fit(arrays.fit(i), single)
        cols = [arrays.params.index(q) for q in single.params]
        np.testing.assert_array_equal(arrays.estimate[i, cols], single.estimate)
        assert arrays.reported[i, cols].all() and arrays.reported[i].sum() == len(single.params)


def test_stacked_results_of_a_batch(data):
    d2 = {**data, "x": data["x"] * 2.0, "z": data["x"]}  # z collinear with x: not estimable in that one
    arrays = OLS("y ~ x + z", groups="g").fit_batch_arrays([data, d2, {k: v[:2] for k, v in data.items()}])
    assert arrays.params == ("Intercept", "x", "z")
    assert arrays.estimate.shape == (3, 3) and arrays.status.tolist() == [0, 0, 3]
    assert arrays.message[1] == "not estimable: z is collinear with Intercept, x" and arrays.message[0] == ""
    assert np.isnan(arrays.estimate[1, 2]) and arrays.reported[1].all()
    assert "no residual degrees of freedom" in arrays.message[2] and np.isnan(arrays.estimate[2]).all()


@pytest.mark.parametrize("kwargs", [{}, {"groups": "g"}, {"fixed_effects": "g"}])
def test_a_perfect_fit_is_failed_not_zero_standard_errors(kwargs):
    # residuals 0 up to rounding: SEs of 0 would give zero-width intervals and certain tests (coverage 0)
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(8), 5)
    x = rng.normal(size=g.size)
    exact = {"y": 1.0 + 2.0 * x, "x": x, "g": g}
    noisy = {**exact, "y": exact["y"] + 1e-6 * rng.normal(size=g.size)}  # tiny, but real, residual variance
    est = OLS("y ~ x", **kwargs)
    fits = [est.fit(exact), *est.fit_batch([exact, noisy, exact])]
    for fit in (fits[0], fits[1], fits[3]):
        assert fit.status == "failed" and "perfect fit" in fit.message and np.isnan(fit.se).all()
    assert fits[2].status == "ok" and (fits[2].se > 0).all()
    zeros = {**exact, "y": np.zeros(g.size)}
    assert est.fit(zeros).status == "failed"
    if "fixed_effects" in kwargs:  # the group means absorb a response constant within groups
        assert est.fit({**exact, "y": rng.normal(size=8)[g]}).status == "failed"
