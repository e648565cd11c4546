"""FastMixedLM against stored lme4 results (tests/data/lme4), statsmodels, and on edge cases."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simstudy.estimators.fast_mixedlm import FastMixedLM

DATA = Path(__file__).resolve().parents[1] / "data" / "lme4"
MANIFEST = pd.read_csv(DATA / "manifest.csv")
REF = pd.read_csv(DATA / "lme4_results.csv")
CASES = [(row.name, reml) for row in MANIFEST.itertuples() for reml in (1, 0)]


def load(name: str):
    row = MANIFEST.set_index("name").loc[name]
    return pd.read_csv(DATA / row.file), row.formula, row.groups.split("/")


def slope_of(name: str):
    """The random-slope covariate of a reference data set (None: random intercepts only)."""
    s = MANIFEST.set_index("name").loc[name].slope
    return s if isinstance(s, str) and s else None


def reference(name: str, reml: int) -> dict:
    r = REF[(REF.dataset == name) & (REF.reml == reml)]
    get = lambda kind: r[r.kind == kind]  # noqa: E731
    return {
        "fixef": get("fixef").value.to_numpy(), "se": get("se").value.to_numpy(),
        "vc": dict(zip(get("vc").name, get("vc").value)), "crit": float(get("crit").value.iloc[0]),
        "singular": bool(get("singular").value.iloc[0]),
    }


@pytest.mark.parametrize("name,reml", CASES)
def test_matches_lme4(name, reml):
    data, formula, groups = load(name)
    est = FastMixedLM(formula, groups=groups[0] if len(groups) == 1 else groups, reml=bool(reml),
                      slope=slope_of(name), nested_ids="within")  # lme4: (1|centre) + (1|centre:rep)
    fit, info = est.fit_with_info(data)
    ref = reference(name, reml)
    p = len(ref["fixef"])
    assert fit.converged, fit.message
    # lme4's optimiser is derivative-free: where the criterion is flat its theta is good to ~1e-7 (restarted
    # from its own optimum on rs_near_c it moves the slope by 1.8e-8 with the criterion equal to 1e-13; the
    # fast engine's certified optima have Newton decrements ~1e-17), which bounds the agreement: 1e-8 is
    # met on all data sets but that one, where the gap is 1.1e-8
    np.testing.assert_allclose(fit.estimate[:p], ref["fixef"], rtol=0, atol=2e-8)
    np.testing.assert_allclose(fit.se[:p], ref["se"], rtol=2e-7)
    for k, v in ref["vc"].items():
        mine = fit.estimate[fit.params.index(k)]
        assert abs(mine - v) <= max(1e-4 * abs(v), 1e-6), (k, mine, v)
    assert info["crit"] <= ref["crit"] + 1e-7
    assert abs(info["crit"] - ref["crit"]) < 1e-6
    assert (fit.status == "boundary") == ref["singular"]


def test_reference_includes_boundary_and_interior_cases():
    sing = REF[REF.kind == "singular"].value
    assert sing.sum() >= 6 and (sing == 0).sum() >= 6


def test_lme4_default_start_stops_early_near_singular_slopes():
    """fit_lme4.R keeps the best of several starts for random slopes: from lme4's default start its
    optimiser stops in rs_near_b (REML, ML) and rs_near_d (ML) at a local minimum of its Cholesky
    parametrisation (intercept SD at 0, covariance of the wrong sign) that is not a minimum over the
    covariance matrices; the fast engine's certified optimum is lower there by 3e-4 to 3e-3, and lme4 started
    elsewhere agrees with it (test_matches_lme4)."""
    default = REF[REF.kind == "crit_default_start"].set_index(["dataset", "reml"]).value
    best = REF[REF.kind == "crit"].set_index(["dataset", "reml"]).value.loc[default.index]
    early = sorted(default.index[default - best > 1e-5])
    assert early == [("rs_near_b", 0), ("rs_near_b", 1), ("rs_near_d", 0)]
    for name, reml in early:
        data, formula, groups = load(name)
        fit, info = FastMixedLM(formula, groups=groups[0], slope="x", reml=bool(reml)).fit_with_info(data)
        assert fit.status == "boundary" and info["crit"] < default[(name, reml)] - 2e-4


def test_uncertified_fit_is_nonconverged_with_message():
    """A random-intercept criterion still falling at theta * nbar = 1e12 (var(residual) -> 0) is not a
    certified optimum: status nonconverged, the message says which check failed and by how much (it used to
    be reported as var(g) = 0, status boundary)."""
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(12), 5)
    x = rng.normal(size=60)
    y = 1 + 0.5 * x + rng.normal(size=12)[g] + 1e-6 * rng.normal(size=60)
    fit = FastMixedLM("y ~ x", groups="g").fit({"g": g, "x": x, "y": y})
    assert fit.status == "nonconverged"
    assert fit.message.startswith("optimality check failed: variance at 0 but d crit / d theta = ")
    assert "decrease available" in fit.message and "var(residual) -> 0" in fit.message


def _statsmodels_llf(data, formula, group, reml):
    import statsmodels.formula.api as smf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = smf.mixedlm(formula, data, groups=data[group]).fit(reml=reml)
    return res.llf


@pytest.mark.parametrize("name", ["ri10x5_s1", "ri10x5_s3", "ri10x5_s6", "ri30x20", "ri_unbalanced", "teaching"])
@pytest.mark.parametrize("reml", [True, False])
def test_never_worse_than_statsmodels(name, reml):
    data, formula, groups = load(name)
    fit, info = FastMixedLM(formula, groups=groups[0], reml=reml).fit_with_info(data)
    llf_sm = _statsmodels_llf(data, formula, groups[0], reml)
    if np.isfinite(llf_sm):
        assert info["llf"] >= llf_sm - 1e-8


def test_fit_batch_equals_fit():
    frames = [load(f"ri10x5_s{s}")[0] for s in range(1, 11)] + [load("ri_unbalanced")[0].rename(columns={})]
    frames[-1] = frames[-1].drop(columns="z")
    est = FastMixedLM("y ~ x", groups="g")
    batch = est.fit_batch(frames)
    for data, fb in zip(frames, batch):
        f1 = est.fit(data)
        assert f1.params == fb.params and f1.status == fb.status
        np.testing.assert_allclose(fb.estimate, f1.estimate, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(fb.se, f1.se, rtol=1e-10)


def test_fit_batch_nested_and_failures():
    data, formula, groups = load("callcentre")
    est = FastMixedLM(formula, groups=groups, nested_ids="within")
    bad = data.iloc[:0]
    out = est.fit_batch([data, bad])
    assert out[0].converged and out[1].status == "failed"
    assert out[0].params[-3:] == ("var(centre)", "var(rep)", "var(residual)")


def test_nested_rep_ids_combined_with_centre():
    """Rep ids numbered within centres (nested_ids="within") and ids made globally unique (the default
    "unique"): the same fit; the ids numbered within centres are refused under the default."""
    data, formula, groups = load("callcentre")
    a = FastMixedLM(formula, groups=groups, nested_ids="within").fit(data)
    d2 = data.assign(rep=data.centre.astype(str) + "_" + data.rep.astype(str))
    b = FastMixedLM(formula, groups=groups).fit(d2)
    assert a.converged and b.converged
    np.testing.assert_allclose(a.estimate, b.estimate, rtol=1e-12)
    c = FastMixedLM(formula, groups=groups).fit(data)
    assert c.status == "failed" and "nested_ids='within'" in c.message


def _ri_data(seed=0, G=12, m=6, var_u=0.5):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(G), m)
    x = rng.normal(size=g.size)
    y = 1 + 0.5 * x + rng.normal(scale=np.sqrt(var_u), size=G)[g] + rng.normal(size=g.size)
    return {"g": g, "x": x, "y": y}


def test_single_group_fails_clearly():
    d = _ri_data(G=1, m=10)
    fit = FastMixedLM("y ~ x", groups="g").fit(d)
    assert fit.status == "failed" and "only one level" in fit.message
    assert fit.params == ("Intercept", "x", "var(g)", "var(residual)")
    assert np.isnan(fit.estimate).all()


def test_singleton_groups():
    d = _ri_data(G=30, m=1)
    d2 = _ri_data(seed=1, G=10, m=4)
    both = {k: np.concatenate([d[k], d2[k] + (100 if k == "g" else 0)]) for k in d}
    fit = FastMixedLM("y ~ x", groups="g").fit(both)
    assert fit.converged and np.isfinite(fit.estimate).all()


def test_all_singletons_is_not_identifiable_residual():
    """With only singleton groups var(g) and var(residual) are confounded: no within variation."""
    fit = FastMixedLM("y ~ x", groups="g").fit(_ri_data(G=30, m=1))
    assert fit.status == "failed" and "within groups" in fit.message


def test_rank_deficient_fixed_effects():
    d = _ri_data()
    d["x2"] = 2 * d["x"]
    fit = FastMixedLM("y ~ x + x2", groups="g").fit(d)
    ref = FastMixedLM("y ~ x", groups="g").fit(d)
    i = fit.params.index("x2")
    assert np.isnan(fit.estimate[i]) and np.isnan(fit.se[i]) and "x2" in fit.message
    np.testing.assert_allclose(np.delete(fit.estimate, i), ref.estimate, rtol=1e-12)


def test_group_level_covariate_zero_within_variation():
    d = _ri_data(G=20, m=5)
    d["t"] = (d["g"] % 2).astype(float)
    fit = FastMixedLM("y ~ x + t", groups="g", df_method="between-within").fit(d)
    assert fit.converged
    df = dict(zip(fit.params, fit.df))
    assert df["Intercept"] == df["t"] == 20 - 2
    assert df["x"] == 100 - 3 - (20 - 2)


def test_constant_within_group_response_fails_clearly():
    d = _ri_data()
    d["y"] = np.repeat(np.arange(12.0), 6)
    fit = FastMixedLM("y ~ 1", groups="g").fit(d)
    assert fit.status == "failed" and "var(residual)" in fit.message


def test_z_and_t_intervals():
    data, formula, groups = load("teaching")
    z = FastMixedLM(formula, groups=groups[0]).fit(data)
    assert np.isnan(z.df).all()
    np.testing.assert_allclose((z.ci_upper - z.estimate)[:4], 1.959963984540054 * z.se[:4])
    t = FastMixedLM(formula, groups=groups[0], df_method="satterthwaite").fit(data)
    bw = FastMixedLM(formula, groups=groups[0], df_method="between-within").fit(data)
    d = dict(zip(t.params, t.df))
    # method is an instructor-level factor: its df are near the between df (50 - 3), hs_gpa's near n
    assert 30 < d["C(method)[T.b]"] < 60 and d["hs_gpa"] > 500
    assert dict(zip(bw.params, bw.df))["C(method)[T.b]"] == 50 - 3
    assert (t.ci_upper[:4] - t.estimate[:4] > z.ci_upper[:4] - z.estimate[:4]).all()


def test_satterthwaite_balanced_equals_between_df():
    """Balanced random intercept, cluster-level effect, interior optimum: Satterthwaite = G - p_between."""
    rng = np.random.default_rng(5)
    G, m = 16, 8
    g = np.repeat(np.arange(G), m)
    t = (np.arange(G) % 2)[g].astype(float)
    y = t + rng.normal(size=G)[g] + rng.normal(size=g.size)
    fit = FastMixedLM("y ~ t", groups="g", df_method="satterthwaite").fit({"g": g, "t": t, "y": y})
    assert fit.status == "ok"
    np.testing.assert_allclose(fit.df[:2], G - 2, rtol=1e-4)


def test_constructor_validates_and_stores_nothing_fitted():
    with pytest.raises(ValueError):
        FastMixedLM("y ~ x", groups="g", df_method="kenward-roger")
    with pytest.raises(ValueError):
        FastMixedLM("y ~ x", groups=["a", "b", "c"])
    est = FastMixedLM("y ~ x", groups="g")
    before = dict(vars(est))
    est.fit(_ri_data())
    assert vars(est).keys() == before.keys()


def test_large_nested_memory():
    """200,000 rows: beyond what building the design matrix costs (simstudy.estimators.formula), the fit allocates
    less than a tenth of the data's size (tracemalloc peaks; the builder's own peak is ~2.4x the data)."""
    import tracemalloc

    from simstudy.estimators.formula import Formula

    rng = np.random.default_rng(3)
    n = 200_000
    centre = rng.integers(0, 40, size=n)
    rep = rng.integers(0, 25, size=n)
    reason = rng.integers(0, 4, size=n)
    age = rng.uniform(18, 80, size=n)
    y = 0.01 * age + rng.normal(size=40)[centre] + rng.normal(size=(40, 25))[centre, rep] + rng.normal(size=n)
    data = {"centre": centre, "rep": rep, "reason": reason, "age": age, "call_CSAT": y}
    size = sum(v.nbytes for v in data.values())
    formula = "call_CSAT ~ C(reason) + age"
    tracemalloc.start()
    Formula(formula).build(data)
    _, build_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    est = FastMixedLM(formula, groups=["centre", "rep"], nested_ids="within")
    tracemalloc.start()
    fit = est.fit(data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert fit.converged
    assert peak < build_peak + 0.1 * size, (peak, build_peak, size)


def _same_fit(a, b):
    assert a.params == b.params and a.status == b.status and a.message == b.message
    for attr in ("estimate", "se", "ci_lower", "ci_upper", "df"):
        assert np.array_equal(getattr(a, attr), getattr(b, attr), equal_nan=True), attr


def _layouts(seed):
    """Replicates with different grouping layouts: balanced sorted, shuffled, unbalanced, string labels."""
    rng = np.random.default_rng(seed)
    out = []
    for kind in ("balanced", "shuffled", "unbalanced", "strings", "balanced"):
        sizes = rng.integers(1, 12, size=15) if kind == "unbalanced" else np.full(15, 6)
        g = np.repeat(np.arange(15), sizes)
        if kind == "shuffled":
            g = rng.permutation(g)
        x = rng.normal(size=g.size)
        y = 1 + 0.5 * x + rng.normal(scale=0.4, size=15)[g] + rng.normal(size=g.size)
        d = {"g": g, "x": x, "y": y, "t": (g % 2).astype(float)}
        if kind == "strings":
            d["g"] = np.array([f"c{k}" for k in g])
        out.append(d)
    return out


@pytest.mark.parametrize("df_method", [None, "between-within", "satterthwaite"])
def test_fit_batch_bit_identical_to_single_fits(df_method):
    """A replicate's Fit does not depend on the batch it is fitted in (layouts mixed, classes padded)."""
    data = [d for s in range(6) for d in _layouts(s)]
    est = FastMixedLM("y ~ x + t", groups="g", df_method=df_method)
    batch = est.fit_batch(data)
    for d, fb in zip(data, batch):
        _same_fit(est.fit(d), fb)
    _same_fit(est.fit_batch(data[3:9])[2], batch[5])


def test_fit_batch_failures_mixed_in():
    good = _layouts(0)
    nan = dict(good[0], y=np.where(np.arange(good[0]["y"].size) == 3, np.nan, good[0]["y"]))
    single = {k: v[:6] for k, v in good[0].items()}
    dup = dict(good[0], x2=2 * good[0]["x"])
    nog = {k: v for k, v in good[0].items() if k != "g"}
    data = [good[0], nan, single, good[1], nog, good[2]]
    est = FastMixedLM("y ~ x + t", groups="g")
    out = est.fit_batch(data)
    assert [f.status for f in out].count("failed") == 3
    assert "non-finite" in out[1].message and "only one level" in out[2].message and "'g'" in out[4].message
    for d, fb in zip(data, out):
        _same_fit(est.fit(d), fb)
    est2 = FastMixedLM("y ~ x + x2", groups="g")
    _same_fit(est2.fit_batch([good[0], dup])[1], est2.fit(dup))
    assert "x2" in est2.fit(dup).message


def test_fit_batch_nested_equals_fit():
    frames = [load(n)[0] for n in ("callcentre", "callcentre_b", "callcentre_c")]
    _, formula, groups = load("callcentre")
    est = FastMixedLM(formula, groups=groups, nested_ids="within")
    for d, fb in zip(frames, est.fit_batch(frames)):
        assert fb.converged
        _same_fit(est.fit(d), fb)


# --- nested vs crossed grouping factors -------------------------------------------------------------------
def _crossed(seed=1, n_subj=30, n_item=20, per_cell=1):
    """Fully crossed subjects x items (every item seen by every subject), var(subj) = var(item) = 1."""
    rng = np.random.default_rng(seed)
    subj = np.repeat(np.arange(n_subj), n_item * per_cell)
    item = np.tile(np.repeat(np.arange(n_item), per_cell), n_subj)
    x = rng.normal(size=subj.size)
    y = 0.5 * x + rng.normal(size=n_subj)[subj] + rng.normal(size=n_item)[item] + rng.normal(size=subj.size)
    return {"y": y, "x": x, "subj": subj, "item": item}


@pytest.mark.parametrize("per_cell", [1, 3])
def test_crossed_factors_are_refused(per_cell):
    """30 subjects x 20 items: item ids repeat across subjects, so the default (unique ids) refuses the data
    with one line naming the fixes; declared as numbered within subjects, one observation per cell is refused
    because var(item) would be confounded with the residual variance."""
    d = _crossed(per_cell=per_cell)
    fit = FastMixedLM("y ~ x", groups=["subj", "item"]).fit(d)
    assert fit.status == "failed" and np.isnan(fit.estimate).all()
    assert fit.params == ("Intercept", "x", "var(subj)", "var(item)", "var(residual)")
    assert "\n" not in fit.message
    assert "'item' labels repeat across 'subj' groups (20 of 20 labels" in fit.message
    assert "crossed random effects are not supported" in fit.message
    assert "subj * 1000 + item" in fit.message and "nested_ids='within'" in fit.message
    within = FastMixedLM("y ~ x", groups=["subj", "item"], nested_ids="within").fit(d)
    if per_cell == 1:
        assert within.status == "failed"
        assert within.message.startswith("every (subj, item) unit has a single observation")
    else:  # indistinguishable from reps numbered within centres: fitted as nested, as documented
        assert within.converged


def test_nested_unique_ids_and_ids_numbered_within():
    """Reps numbered 0..R-1 in every centre are refused by default and fitted with nested_ids="within";
    the same reps with unique ids (centre * 1000 + rep) are fitted by default: the same fit."""
    rng = np.random.default_rng(4)
    C, R, m = 12, 5, 6
    centre = np.repeat(np.arange(C), R * m)
    rep = np.tile(np.repeat(np.arange(R), m), C)
    x = rng.normal(size=centre.size)
    y = x + rng.normal(size=C)[centre] + 0.7 * rng.normal(size=(C, R))[centre, rep] + rng.normal(size=centre.size)
    within = {"y": y, "x": x, "centre": centre, "rep": rep}
    unique = {**within, "rep": centre * 1000 + rep}
    a = FastMixedLM("y ~ x", groups=["centre", "rep"]).fit(unique)
    b = FastMixedLM("y ~ x", groups=["centre", "rep"], nested_ids="within").fit(within)
    c = FastMixedLM("y ~ x", groups=["centre", "rep"], nested_ids="within").fit(unique)
    assert a.status == "ok", a.message
    _same_fit(a, b)
    _same_fit(a, c)
    refused = FastMixedLM("y ~ x", groups=["centre", "rep"]).fit(within)
    assert refused.status == "failed" and "'rep' labels repeat across 'centre' groups" in refused.message
    one_rep = {**unique, "rep": centre}
    assert "every 'centre' has a single 'rep'" in FastMixedLM("y ~ x", groups=["centre", "rep"]).fit(one_rep).message


def test_nested_ids_option_is_validated():
    with pytest.raises(ValueError, match="nested_ids"):
        FastMixedLM("y ~ x", groups=["a", "b"], nested_ids="crossed")
    assert "nested_ids='within'" in repr(FastMixedLM("y ~ x", groups=["a", "b"], nested_ids="within"))
    assert "nested_ids" not in repr(FastMixedLM("y ~ x", groups=["a", "b"]))


def test_nested_between_within_df_not_positive_are_nan_with_a_message():
    """Two centres, a centre-level treatment: its between-within df C - p_centre = 0 (was a silent NaN)."""
    rng = np.random.default_rng(2)
    centre = np.repeat(np.arange(2), 40)
    rep = np.repeat(np.arange(8), 10)
    treat = centre.astype(float)
    y = treat + 0.5 * rng.normal(size=8)[rep] + rng.normal(size=80)
    fit = FastMixedLM("y ~ treat", groups=["centre", "rep"], df_method="between-within").fit(
        {"y": y, "treat": treat, "centre": centre, "rep": rep})
    assert fit.converged
    assert np.isnan(fit.df[:2]).all() and np.isnan(fit.ci_lower[:2]).all()
    assert "some t df are not positive" in fit.message


# --- nested and random-slope batches: a replicate's Fit does not depend on the batch ----------------------
def _nested_layouts(seed):
    """Nested replicates with different layouts: balanced (twice the same layout), unbalanced (centres with
    reps of several sizes), rows shuffled, string labels; variances 0 (boundary fits) to 0.5."""
    rng = np.random.default_rng(seed)
    out = []
    for kind in ("balanced", "unbalanced", "shuffled", "strings", "balanced"):
        centre, rep = [], []
        k = 0
        for c in range(8):
            for _ in range(3 if kind in ("balanced", "strings") else int(rng.integers(2, 5))):
                m = 4 if kind in ("balanced", "strings") else int(rng.integers(1, 8))
                centre += [c] * m
                rep += [k] * m
                k += 1
        centre, rep = np.array(centre), np.array(rep)
        n = centre.size
        vc, vr = rng.choice([0.0, 0.05, 0.5], size=2)
        x = rng.normal(size=n)
        t = (centre % 2).astype(float)
        y = (1 + 0.5 * x + 0.3 * t + np.sqrt(vc) * rng.normal(size=8)[centre] + np.sqrt(vr) * rng.normal(size=k)[rep]
             + rng.normal(size=n))
        d = {"y": y, "x": x, "t": t, "centre": centre, "rep": rep}
        if kind == "shuffled":
            perm = rng.permutation(n)
            d = {key: v[perm] for key, v in d.items()}
        if kind == "strings":
            d["centre"] = np.array([f"c{c}" for c in centre])
            d["rep"] = np.array([f"r{r}" for r in rep])
        out.append(d)
    return out


@pytest.mark.parametrize("df_method", [None, "between-within"])
def test_fit_batch_nested_bit_identical_to_single_fits(df_method):
    """Layouts mixed (compressed statistics padded), failures and a rank-deficient replicate mixed in; a
    replicate fitted alone, in the whole batch, in a sub-batch and in reversed order: the same Fit, bit for
    bit."""
    data = [d for s in range(4) for d in _nested_layouts(s)]
    data[3] = dict(data[3], y=np.where(np.arange(data[3]["y"].size) == 2, np.nan, data[3]["y"]))  # fails
    data[6] = dict(data[6], x2=2 * data[6]["x"])
    data[6]["x2"][0] += 1e-3  # still estimable
    data[11] = dict(data[11], t=2 * data[11]["x"])  # t not estimable next to x: fewer columns
    est = FastMixedLM("y ~ x + t", groups=["centre", "rep"], df_method=df_method)
    batch = est.fit_batch(data)
    assert batch[3].status == "failed" and "t" in batch[11].message
    assert {f.status for f in batch} >= {"ok", "boundary", "failed"}
    for d, fb in zip(data, batch):
        _same_fit(est.fit(d), fb)
    _same_fit(est.fit_batch(data[5:12])[2], batch[7])
    for fr, fb in zip(est.fit_batch(data[::-1]), batch[::-1]):
        _same_fit(fr, fb)


def test_fit_batch_nested_reference_data_bit_identical():
    """The call-centre reference replicates (tests/data/lme4; interior optima next to the boundary) in one
    batch and one at a time, with their infos (criterion, variance ratios)."""
    names = ["cc_study_r1", "cc_study_r3", "cc_small_a", "cc_small_b", "cc_small_c"]
    frames = [load(n)[0] for n in names]
    _, formula, groups = load(names[0])
    est = FastMixedLM(formula, groups=groups)
    fits, infos = est._fit_all(frames)
    for d, fb, ib in zip(frames, fits, infos):
        f1, i1 = est.fit_with_info(d)
        _same_fit(f1, fb)
        assert i1["crit"] == ib["crit"] and np.array_equal(i1["theta"], ib["theta"])


def test_fit_batch_nested_bit_identical_with_restarts(monkeypatch):
    """Replicates whose first optimum fails its certificate (forced: the first search's answer replaced by
    (0, 0) for some replicates, a rule that depends on the replicate alone) go through the restarts: alone
    or in a batch, the same Fit."""
    from simstudy.estimators import reml_nested as nested

    real = nested._best
    restarted = []

    def flaky(P, slots, k):
        best = real(P, slots, k)
        if len(slots) == 7:  # the first search of every replicate (restarts have more candidates)
            sn = slots[3][0]
            hit = np.floor(sn[:, 0] * 1e3) % 2 == 0
            best[hit] = 0.0
            restarted.append(int(hit.sum()))
        return best

    monkeypatch.setattr(nested, "_best", flaky)
    data = [d for s in range(3) for d in _nested_layouts(10 + s)]
    est = FastMixedLM("y ~ x + t", groups=["centre", "rep"])
    batch = est.fit_batch(data)
    assert restarted[0] >= 3
    assert all(f.converged for f in batch)
    for d, fb in zip(data, batch):
        _same_fit(est.fit(d), fb)


def _slope_frames(seed, G=12):
    """Random-slope replicates: group sizes equal or not, rows shuffled, variances 0 (singular fits) to 0.5."""
    rng = np.random.default_rng(seed)
    out = []
    for kind in ("balanced", "unbalanced", "shuffled", "balanced"):
        sizes = rng.integers(3, 12, size=G) if kind != "balanced" else np.full(G, 6)
        g = np.repeat(np.arange(G), sizes)
        x = rng.normal(size=g.size) + 0.5
        v0, v1 = rng.choice([0.0, 0.05, 0.5], size=2)
        u = rng.normal(size=(G, 2)) * np.sqrt([v0, v1])
        y = 1 + 0.5 * x + u[g, 0] + u[g, 1] * x + rng.normal(size=g.size)
        d = {"y": y, "x": x, "g": g}
        if kind == "shuffled":
            perm = rng.permutation(g.size)
            d = {k: v[perm] for k, v in d.items()}
        out.append(d)
    return out


def test_fit_batch_slope_bit_identical_to_single_fits():
    """Random slope: replicates of 12 and 30 groups, failures and a rank-deficient replicate mixed in; alone,
    in the batch, in a sub-batch and reversed: the same Fit, bit for bit."""
    data = [d for s in range(3) for d in _slope_frames(s)] + _slope_frames(7, G=30)
    data[2] = dict(data[2], x=np.where(np.arange(data[2]["x"].size) == 0, np.inf, data[2]["x"]))  # fails
    data[5] = dict(data[5], z=3 * data[5]["x"] - 1)  # z not estimable
    for d in data:
        d.setdefault("z", np.cos(np.arange(d["y"].size)))
    est = FastMixedLM("y ~ x + z", groups="g", slope="x", df_method="between-within")
    batch = est.fit_batch(data)
    assert batch[2].status == "failed" and "z" in batch[5].message
    assert {f.status for f in batch} >= {"ok", "boundary", "failed"}
    for d, fb in zip(data, batch):
        _same_fit(est.fit(d), fb)
    _same_fit(est.fit_batch(data[4:9])[3], batch[7])
    for fr, fb in zip(est.fit_batch(data[::-1]), batch[::-1]):
        _same_fit(fr, fb)


def test_fit_batch_slope_bit_identical_with_restarts(monkeypatch):
    """Replicates whose first optimum fails its certificate (forced: the first search's answer moved away
    from the optimum for some replicates, by a rule that depends on the replicate alone) go through the
    second search: alone or in a batch, the same Fit (and the right optimum)."""
    from simstudy.estimators import reml_slope as rs

    real = rs._search
    moved = []

    def flaky(S, reml, reps, starts, also=None, optional=None, face=None):
        lam = real(S, reml, reps, starts, also=also, optional=optional, face=face)
        if optional is not None:  # the first search
            hit = np.floor(lam[:, 0] * 1e3) % 2 == 0
            lam[hit] = lam[hit] + [0.3, 0.2, 0.3]
            moved.append(int(hit.sum()))
        return lam

    data = [d for s in range(3) for d in _slope_frames(20 + s)]
    est = FastMixedLM("y ~ x", groups="g", slope="x")
    clean = est.fit_batch(data)
    monkeypatch.setattr(rs, "_search", flaky)
    batch = est.fit_batch(data)
    assert moved[0] >= 3
    for d, fb, fc in zip(data, batch, clean):
        _same_fit(est.fit(d), fb)
        assert fb.status == fc.status
        np.testing.assert_allclose(fb.estimate, fc.estimate, rtol=1e-5, atol=1e-6)


def _arrays_match(est, data):
    """``fit_batch_arrays`` holds, row by row, exactly ``fit_batch``'s Fits (and their failures)."""
    batch = est.fit_batch(data)
    arrays = est.fit_batch_arrays(data)
    assert arrays.names == [f.params for f in batch]
    assert [arrays.fit(i).status for i in range(len(data))] == [f.status for f in batch]
    for i, fb in enumerate(batch):
        _same_fit(arrays.fit(i), fb)
        assert arrays.reported[i].sum() == len(fb.params)
    return batch


def test_fit_batch_arrays_equal_fit_batch_for_every_model():
    """The runner's stacked results are the Fits, value for value: random intercept (with failures and a
    dropped column), nested, random slope."""
    ri = [d for s in range(3) for d in _layouts(s)]
    ri[1] = dict(ri[1], y=np.where(np.arange(ri[1]["y"].size) == 0, np.nan, ri[1]["y"]))
    ri[4] = dict(ri[4], t=2 * ri[4]["x"])
    batch = _arrays_match(FastMixedLM("y ~ x + t", groups="g", df_method="satterthwaite"), ri)
    assert batch[1].status == "failed" and "t" in batch[4].message
    nested = [d for s in range(2) for d in _nested_layouts(s)]
    _arrays_match(FastMixedLM("y ~ x + t", groups=["centre", "rep"]), nested)
    slope = [d for s in range(2) for d in _slope_frames(s)]
    slope[0] = {k: v for k, v in slope[0].items() if k != "g"}  # fails: no grouping column
    assert _arrays_match(FastMixedLM("y ~ x", groups="g", slope="x"), slope)[0].status == "failed"


def test_random_intercept_from_the_columns_equals_from_the_design_matrix(monkeypatch):
    """Numeric formulas skip the design matrix (Formula.numeric_columns); the Fits are those of the matrix
    path, bit for bit, failures included."""
    from simstudy.estimators.formula import Formula

    data = [d for s in range(2) for d in _layouts(s)]
    data[2] = dict(data[2], t=data[2]["t"].astype(np.int64))  # an integer column, converted as build does
    data[3] = dict(data[3], y=np.where(np.arange(data[3]["y"].size) == 1, np.inf, data[3]["y"]))
    est = FastMixedLM("y ~ x + t", groups="g", df_method="satterthwaite")
    direct = est.fit_batch(data)
    monkeypatch.setattr(Formula, "numeric_columns", lambda self, data: None)
    for a, b in zip(direct, est.fit_batch(data)):
        _same_fit(a, b)
    assert direct[3].status == "failed"
