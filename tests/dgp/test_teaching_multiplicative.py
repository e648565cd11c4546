"""The seed notebook's multiplicative teaching model: the seed's draws, exact estimands, validation."""

import dataclasses
import math

import numpy as np
import pytest
from scipy import integrate, stats

from simstudy.dgp import DGP
from simstudy.dgp.teaching import capped_normal_moments
from simstudy.dgp.teaching_multiplicative import TeachingMethodsMultiplicative, _multiplicative_moments
from support import instructor_anova

MULT = TeachingMethodsMultiplicative()
#: The cap binds for 9%, 16% and 25% of the students of methods 0, 1, 2.
CAPPED = dict(gpa_mean=3.5, resid_sd=5.0, instructor_sd=0.15)


def _moments(dgp: TeachingMethodsMultiplicative, **factors) -> dict:
    f = dgp.factors(**factors)
    return _multiplicative_moments(f.method_multipliers, f.base_intercept, f.gpa_slope, f.instructor_sd,
                                   f.resid_sd, f.score_cap, f.gpa_mean, f.gpa_sd, dgp.gpa_cap)


def _gpa_expectation(h, gpa_mean: float, gpa_sd: float, cap: float = 4.0) -> float:
    """E[h(min(G*, cap))], G* ~ N(gpa_mean, gpa_sd^2), by scipy's adaptive quad (independent of the DGP's rule)."""
    zc = (cap - gpa_mean) / gpa_sd
    inner = integrate.quad(lambda z: h(gpa_mean + gpa_sd * z) * stats.norm.pdf(z), -np.inf, zc,
                           epsabs=1e-13, epsrel=1e-12, limit=400)[0]
    return inner + stats.norm.sf(zc) * h(cap)


def _capped_share(f, k: int) -> float:
    """P(score = score_cap | method k), exactly: given the GPA, Y is normal (the instructor multiplier too)."""
    m = f.method_multipliers[k]

    def p(g):
        mu = (f.base_intercept + f.gpa_slope * g) * m
        return stats.norm.sf((f.score_cap - mu) / math.hypot(mu * f.instructor_sd, f.resid_sd))

    return _gpa_expectation(p, f.gpa_mean, f.gpa_sd)


def test_multiplicative_contract_and_columns(declared_factors):
    assert isinstance(MULT, DGP)
    declared_factors(MULT)
    declared_factors(TeachingMethodsMultiplicative(adjust_gpa=False))
    d = MULT.generate(np.random.default_rng(0), n_methods=4, instructors_per_method=3, students_per_instructor=5,
                      method_multipliers=(1, 1.1, 1.2, 1.3))
    assert set(d) == {"score", "hs_gpa", "instructor", "method"}
    assert all(v.shape == (60,) for v in d.values())
    np.testing.assert_array_equal(d["instructor"], np.repeat(np.arange(12), 5))
    np.testing.assert_array_equal(d["method"], np.repeat(np.arange(4), 15))
    assert d["score"].dtype == d["hs_gpa"].dtype == np.float64
    assert set(MULT.truth()) == {"Intercept", "hs_gpa", "C(method)[T.1]", "C(method)[T.2]", "var(instructor)",
                                 "var(residual)"}
    assert set(TeachingMethodsMultiplicative(adjust_gpa=False).truth()) == set(MULT.truth()) - {"hs_gpa"}


def test_multiplicative_generate_is_the_seed_model():
    # score = min((15 + 19 gpa) * U_j * m_k + e, 100), U_j ~ N(1, 0.1^2), gpa = min(N(3, 0.25^2), 4); draws in
    # the documented order: multipliers, GPAs, residuals.
    f = dict(instructors_per_method=4, students_per_instructor=6, gpa_mean=3.9, gpa_sd=0.3)
    d = MULT.generate(np.random.default_rng(11), **f)
    rng = np.random.default_rng(11)
    u = rng.normal(1.0, 0.1, 12)
    g = np.minimum(rng.normal(3.9, 0.3, 72), 4.0)
    e = rng.normal(0.0, 10.0, 72)
    m = np.array([1.0, 1.05, 1.10])[d["method"]]
    np.testing.assert_array_equal(d["hs_gpa"], g)
    np.testing.assert_allclose(d["score"], np.minimum((15 + 19 * g) * u[d["instructor"]] * m + e, 100.0),
                               rtol=1e-15, atol=1e-12)
    assert (d["hs_gpa"] == 4.0).any() and (d["score"] <= 100.0).all()
    big = MULT.generate(np.random.default_rng(1), **CAPPED)
    assert big["score"].max() == 100.0  # the cap is applied to the final score
    uncapped = MULT.generate(np.random.default_rng(1), score_cap=math.inf, **CAPPED)
    assert uncapped["score"].max() > 100.0
    np.testing.assert_array_equal(np.minimum(uncapped["score"], 100.0), big["score"])


@pytest.mark.parametrize(
    "factor, value",
    [
        ("n_methods", 1),
        ("instructors_per_method", 0),
        ("students_per_instructor", 2.5),
        ("instructor_sd", -0.1),
        ("resid_sd", 0.0),
        ("method_multipliers", (1.0, 1.05)),  # n_methods is 3
        ("method_multipliers", (1.0, 1.05, math.nan)),
        ("method_multipliers", (1.0, -1.0, 1.1)),
        ("method_multipliers", (1.1, 1.0, 1.2)),  # method 0 must be 1
        ("method_multipliers", "1,1.05,1.1"),
        ("method_multipliers", 1.0),
        ("base_intercept", math.nan),
        ("gpa_slope", math.inf),
        ("score_cap", math.nan),
        ("score_cap", -math.inf),
        ("score_cap", "100"),
        ("gpa_mean", None),
        ("gpa_sd", -0.1),
        ("gpa_sd", 0.0),  # the hs_gpa slope needs a varying GPA
        ("gpa_mean", 6.5),  # 10 SD above the GPA cap: (nearly) all GPAs equal 4
    ],
)
def test_multiplicative_validate_rejects(factor, value):
    with pytest.raises(ValueError, match=f"'{factor}'") as err:
        MULT.validate(**{factor: value})
    assert "\n" not in str(err.value)


def test_multiplicative_validate_accepts():
    MULT.validate(score_cap=math.inf, instructor_sd=0.0, method_multipliers=np.array([1.0, 0.9, 1.2]))
    MULT.validate(n_methods=2, method_multipliers=[1, 1.5], gpa_mean=5.5)
    TeachingMethodsMultiplicative(adjust_gpa=False).validate(gpa_sd=0.0, gpa_mean=6.5)


@pytest.mark.parametrize("factors", [dict(), dict(instructor_sd=0.4, gpa_mean=3.8, gpa_sd=0.5, base_intercept=-20.0),
                                     dict(n_methods=2, method_multipliers=(1.0, 0.8), instructor_sd=0.0)])
def test_multiplicative_truth_closed_form_without_cap(factors):
    # With score_cap=inf every estimand is closed-form (see the class docstring); the quadrature must agree.
    f = MULT.factors(score_cap=math.inf, **factors)
    mean_g, var_g = capped_normal_moments(f.gpa_mean, f.gpa_sd, 4.0)
    m = np.asarray(f.method_multipliers)
    a, b, su, se = f.base_intercept, f.gpa_slope, f.instructor_sd, f.resid_sd
    beta = b * m.mean()
    expect = {"Intercept": a + b * mean_g - beta * mean_g, "hs_gpa": beta,
              "var(instructor)": np.mean(m**2) * (a + b * mean_g) ** 2 * su**2,
              "var(residual)": np.mean((b * m - beta) ** 2 + (b * m * su) ** 2) * var_g + se**2}
    for k in range(1, len(m)):
        expect[f"C(method)[T.{k}]"] = (m[k] - 1) * (a + b * mean_g)
    got = MULT.truth(**dataclasses.asdict(f))
    assert got.keys() == expect.keys()
    for name in expect:
        assert got[name] == pytest.approx(expect[name], rel=1e-12, abs=1e-10), name
    unadjusted = TeachingMethodsMultiplicative(adjust_gpa=False).truth(**dataclasses.asdict(f))
    assert unadjusted["Intercept"] == pytest.approx(a + b * mean_g, rel=1e-13)
    assert unadjusted["var(residual)"] == pytest.approx(
        np.mean((b * m) ** 2 * (1 + su**2)) * var_g + se**2, rel=1e-12)


@pytest.mark.parametrize("factors", [CAPPED, dict(resid_sd=0.5, gpa_mean=3.8, gpa_sd=0.4)])
def test_multiplicative_quadrature_is_exact(factors):
    # One-dimensional moments against scipy's adaptive quad; the two-dimensional between-instructor variance
    # against a finer rule (the nested-quad check, 1e-11, takes a minute: see the class docstring).
    f = MULT.factors(**factors)
    mom = _moments(MULT, **factors)
    assert (mom["mean_g"], mom["var_g"]) == pytest.approx(capped_normal_moments(f.gpa_mean, f.gpa_sd, 4.0),
                                                          rel=1e-13)
    for k, m in enumerate(f.method_multipliers):
        def cm(g):
            mu = (f.base_intercept + f.gpa_slope * g) * m
            return capped_normal_moments(mu, math.hypot(mu * f.instructor_sd, f.resid_sd), f.score_cap)

        mean = _gpa_expectation(lambda g: cm(g)[0], f.gpa_mean, f.gpa_sd)
        cov = _gpa_expectation(lambda g: (g - mom["mean_g"]) * (cm(g)[0] - mean), f.gpa_mean, f.gpa_sd)
        var = _gpa_expectation(lambda g: cm(g)[1] + (cm(g)[0] - mean) ** 2, f.gpa_mean, f.gpa_sd)
        assert abs(mom["mean"][k] - mean) < 1e-10
        assert abs(mom["cov"][k] - cov) < 1e-11
        assert abs(mom["var"][k] - var) < 1e-10
    fine = _multiplicative_moments(f.method_multipliers, f.base_intercept, f.gpa_slope, f.instructor_sd,
                                   f.resid_sd, f.score_cap, f.gpa_mean, f.gpa_sd, 4.0, order=32, panel=0.25)
    np.testing.assert_allclose(mom["between"], fine["between"], rtol=0, atol=1e-10)
    assert mom["between_err"] < 1e-10


@pytest.mark.parametrize("factors", [dict(), CAPPED])
def test_multiplicative_truth_matches_huge_monte_carlo(factors):
    # 3 million independent students (one per instructor): the mean differences and the projection slope
    # against the exact truths, within 4 Monte Carlo SEs; the cap binds for the share of students it should.
    f = MULT.factors(instructors_per_method=1_000_000, students_per_instructor=1, **factors)
    truth = MULT.truth(**factors)
    d = MULT.generate(np.random.default_rng(20240), **dataclasses.asdict(f))
    s, g, method = d["score"], d["hs_gpa"], d["method"]
    groups = [method == k for k in range(3)]
    means = np.array([s[i].mean() for i in groups])
    ses = np.array([s[i].std(ddof=1) / math.sqrt(i.sum()) for i in groups])
    for k in (1, 2):
        diff, mcse = means[k] - means[0], math.hypot(ses[k], ses[0])
        assert abs(diff - truth[f"C(method)[T.{k}]"]) < 4 * mcse, (k, diff, truth[f"C(method)[T.{k}]"], mcse)
    unadjusted = TeachingMethodsMultiplicative(adjust_gpa=False).truth(**factors)
    assert abs(means[0] - unadjusted["Intercept"]) < 4 * ses[0]
    # Projection slope: pooled within-method least squares; MCSE from its influence function.
    gc = g - np.array([g[i].mean() for i in groups])[method]
    sc = s - means[method]
    slope = (gc @ sc) / (gc @ gc)
    influence = gc * (sc - slope * gc) / np.mean(gc * gc)
    mcse = influence.std() / math.sqrt(s.size)
    assert abs(slope - truth["hs_gpa"]) < 4 * mcse, (slope, truth["hs_gpa"], mcse)
    # The cap is in the truth: it binds, and the uncapped truth is far off.
    uncapped = MULT.truth(score_cap=math.inf, **factors)
    assert abs(uncapped["C(method)[T.2]"] - truth["C(method)[T.2]"]) > 10 * math.hypot(ses[2], ses[0])
    for k, i in enumerate(groups):
        share, exact = np.mean(s[i] == 100.0), _capped_share(f, k)
        assert 0.01 < exact and abs(share - exact) < 4 * math.sqrt(exact * (1 - exact) / i.sum()), (k, share, exact)


@pytest.mark.parametrize("factors", [dict(), CAPPED])
def test_multiplicative_ols_and_anova_recover_the_projection(mc_check, ols, factors):
    # Clustered data: per-replicate OLS (lstsq) recovers the projection coefficients, and the one-way ANOVA of
    # the residuals around the projection recovers var(instructor) and var(residual), within 4 MCSE.
    f = dict(instructors_per_method=40, students_per_instructor=20, **factors)
    truth = MULT.truth(**f)
    unadjusted = TeachingMethodsMultiplicative(adjust_gpa=False)
    truth0 = unadjusted.truth(**f)
    rng = np.random.default_rng(31)
    coefs, coefs0, var_i, var_e = [], [], [], []
    for _ in range(300):
        d = MULT.generate(rng, **f)
        coefs.append(ols("score ~ hs_gpa + C(method)", d))
        coefs0.append(ols("score ~ C(method)", d))
        r = d["score"] - truth["Intercept"] - truth["hs_gpa"] * d["hs_gpa"]
        for k in (1, 2):
            r[d["method"] == k] -= truth[f"C(method)[T.{k}]"]
        vi, ve = instructor_anova(r, 120, 20)
        var_i.append(vi)
        var_e.append(ve)
    assert set(coefs[0]) | {"var(instructor)", "var(residual)"} == set(truth)
    for name in coefs[0]:
        mc_check([c[name] for c in coefs], truth[name], f"OLS {name}")
    for name in coefs0[0]:
        mc_check([c[name] for c in coefs0], truth0[name], f"OLS without hs_gpa {name}")
    mc_check(var_i, truth["var(instructor)"], "ANOVA var(instructor)")
    mc_check(var_e, truth["var(residual)"], "ANOVA var(residual)")
