import hashlib
import math

import numpy as np
import pytest
from scipy import integrate, stats

from simstudy.dgp import DGP, TeachingMethods
from simstudy.dgp.teaching import capped_normal_moments
from support import instructor_anova

DGP_ = TeachingMethods()
SMALL = dict(n_methods=4, instructors_per_method=3, students_per_instructor=5, method_effects_pct=(0, 1, 2, 3))


def test_contract_and_columns(declared_factors):
    assert isinstance(DGP_, DGP)
    declared_factors(DGP_)
    declared_factors(TeachingMethods(adjust_gpa=False))
    d = DGP_.generate(np.random.default_rng(0), **SMALL)
    assert set(d) == {"score", "hs_gpa", "instructor", "method"}
    assert all(v.shape == (60,) for v in d.values())
    np.testing.assert_array_equal(d["instructor"], np.repeat(np.arange(12), 5))  # unique across methods
    np.testing.assert_array_equal(d["method"], np.repeat(np.arange(4), 15))  # instructors nested in methods
    assert d["score"].dtype == d["hs_gpa"].dtype == np.float64


def test_deterministic_given_seed():
    a = DGP_.generate(np.random.default_rng(5))
    b = DGP_.generate(np.random.default_rng(5))
    c = DGP_.generate(np.random.default_rng(6))
    for col in a:
        np.testing.assert_array_equal(a[col], b[col])
    assert not np.array_equal(a["score"], c["score"])
    assert not np.array_equal(a["hs_gpa"], c["hs_gpa"])


@pytest.mark.parametrize(
    "factor, value",
    [
        ("n_methods", 1),
        ("instructors_per_method", 0),
        ("students_per_instructor", 2.5),
        ("instructor_sd", -1.0),
        ("resid_sd", 0.0),
        ("method_effects_pct", (0, 5)),  # n_methods is 3
        ("method_effects_pct", (0, 5, math.nan)),
        ("method_effects_pct", "0,5,10"),
        ("method_effects_pct", 5.0),
        ("base_score", math.nan),
        ("gpa_slope", math.inf),
        ("gpa_mean", None),
        ("gpa_sd", -0.1),
    ],
)
def test_validate_rejects(factor, value):
    with pytest.raises(ValueError, match=f"'{factor}'") as err:
        DGP_.validate(**{factor: value})
    assert "\n" not in str(err.value)


def test_validate_accepts():
    DGP_.validate(**SMALL)
    DGP_.validate(n_methods=2, method_effects_pct=[0.0, -3.0], instructor_sd=0.0, gpa_sd=0.0)
    DGP_.validate(method_effects_pct=np.array([0.0, 1.0, 2.0]))


def test_truth_is_on_the_score_scale():
    t = DGP_.truth(method_effects_pct=(0, 5, 10), base_score=70, gpa_slope=10, instructor_sd=3, resid_sd=10)
    assert t == pytest.approx(
        {
            "Intercept": 70 - 30,
            "hs_gpa": 10,
            "C(method)[T.1]": 3.5,  # score points (5% of 70), not 5
            "C(method)[T.2]": 7.0,
            "var(instructor)": 9,
            "var(residual)": 100,
        }
    )
    # The reference need not have effect 0: differences are relative to method 0.
    t = DGP_.truth(method_effects_pct=(10, 0, 20), base_score=50)
    assert t["C(method)[T.1]"] == pytest.approx(-5.0) and t["C(method)[T.2]"] == pytest.approx(5.0)
    u = TeachingMethods(adjust_gpa=False).truth(gpa_mean=3.0, gpa_sd=0.25, gpa_slope=10, base_score=70)
    mean_g, var_g = capped_normal_moments(3.0, 0.25, 4.0)
    assert set(u) == {"Intercept", "C(method)[T.1]", "C(method)[T.2]", "var(instructor)", "var(residual)"}
    assert u["Intercept"] == pytest.approx(70 + 10 * (mean_g - 3))
    assert u["Intercept"] < 70  # the cap lowers the mean GPA, a little
    assert u["var(residual)"] == pytest.approx(100 + 100 * var_g)


@pytest.mark.parametrize("mean, sd, cap", [(3.0, 0.25, 4.0), (3.9, 0.25, 4.0), (4.5, 0.5, 4.0), (0.0, 2.0, -1.0)])
def test_capped_normal_moments(mean, sd, cap):
    dist = stats.norm(mean, sd)
    m1 = integrate.quad(lambda x: x * dist.pdf(x), -np.inf, cap)[0] + cap * dist.sf(cap)
    m2 = integrate.quad(lambda x: x * x * dist.pdf(x), -np.inf, cap)[0] + cap**2 * dist.sf(cap)
    got_mean, got_var = capped_normal_moments(mean, sd, cap)
    assert got_mean == pytest.approx(m1, rel=1e-9, abs=1e-12)
    assert got_var == pytest.approx(m2 - m1**2, rel=1e-7, abs=1e-12)
    assert capped_normal_moments(3.0, 0.0, 4.0) == (3.0, 0.0)
    assert capped_normal_moments(5.0, 0.0, 4.0) == (4.0, 0.0)


def test_gpa_cap_binds(mc_check):
    rng = np.random.default_rng(2)
    gpa_mean, gpa_sd = 3.9, 0.25
    mean_g, var_g = capped_normal_moments(gpa_mean, gpa_sd, 4.0)
    share, means, variances = [], [], []
    for _ in range(400):
        g = DGP_.generate(rng, gpa_mean=gpa_mean, gpa_sd=gpa_sd)["hs_gpa"]
        assert g.max() <= 4.0
        share.append(np.mean(g == 4.0))
        means.append(g.mean())
        variances.append(g.var(ddof=1))
    mc_check(share, stats.norm.sf(0.4), "share of GPAs at the cap")  # about 34%
    mc_check(means, mean_g, "mean capped GPA")
    mc_check(variances, var_g, "variance of capped GPA")
    assert abs(np.mean(means) - gpa_mean) > 20 * np.std(means) / np.sqrt(len(means))  # the cap moved the mean
    assert DGP_.generate(rng)["hs_gpa"].max() <= 4.0


def test_moments_match_truth_with_gpa(mc_check, ols):
    # gpa_mean 3.9: the cap binds for a third of the students, the slope on the capped GPA is still gpa_slope.
    f = dict(instructors_per_method=8, students_per_instructor=15, gpa_mean=3.9, gpa_sd=0.4, gpa_slope=12.0)
    truth = DGP_.truth(**f)
    rng = np.random.default_rng(21)
    diffs, var_i, var_e, coefs = [], [], [], []
    for _ in range(800):
        d = DGP_.generate(rng, **f)
        m = d["method"]
        diffs.append([d["score"][m == k].mean() - d["score"][m == 0].mean() for k in (1, 2)])
        fixed = ols("score ~ hs_gpa + C(method)", d)
        coefs.append(fixed)
        r = d["score"] - truth["Intercept"] - truth["hs_gpa"] * d["hs_gpa"]
        for k in (1, 2):
            r[m == k] -= truth[f"C(method)[T.{k}]"]
        vi, ve = instructor_anova(r, 24, 15)
        var_i.append(vi)
        var_e.append(ve)
    assert set(fixed) | {"var(instructor)", "var(residual)"} == set(truth)
    diffs = np.array(diffs)
    for k in (1, 2):
        mc_check(diffs[:, k - 1], truth[f"C(method)[T.{k}]"], f"mean score difference method {k} - method 0")
    for name in fixed:
        mc_check([c[name] for c in coefs], truth[name], f"OLS {name}")
    mc_check(var_i, truth["var(instructor)"], "ANOVA var(instructor)")
    mc_check(var_e, truth["var(residual)"], "ANOVA var(residual)")


def test_moments_match_truth_without_gpa(mc_check, ols):
    # Unadjusted model: the Intercept is the mean score under method 0, which involves the capped GPA's mean;
    # the residual variance takes in gpa_slope^2 Var(capped GPA).
    dgp = TeachingMethods(adjust_gpa=False)
    f = dict(instructors_per_method=8, students_per_instructor=15, gpa_mean=3.9, gpa_sd=0.4, gpa_slope=20.0)
    truth = dgp.truth(**f)
    rng = np.random.default_rng(22)
    coefs, msw = [], []
    for _ in range(800):
        d = dgp.generate(rng, **f)
        coefs.append(ols("score ~ C(method)", d))
        msw.append(instructor_anova(d["score"], 24, 15)[1])
    assert set(coefs[0]) | {"var(instructor)", "var(residual)"} == set(truth)
    for name in coefs[0]:
        mc_check([c[name] for c in coefs], truth[name], f"OLS {name}")
    mc_check(msw, truth["var(residual)"], "within-instructor variance")
    uncapped_intercept = f["gpa_slope"] * (f["gpa_mean"] - 3) + 70
    intercepts = np.array([c["Intercept"] for c in coefs])
    assert abs(intercepts.mean() - uncapped_intercept) > 10 * intercepts.std() / np.sqrt(intercepts.size)


# ---------------------------------------------------------------------------------------------------------------
# The additive model is unchanged by the multiplicative one (reference values computed with the code before
# TeachingMethodsMultiplicative was added).
# ---------------------------------------------------------------------------------------------------------------

ADDITIVE_SMALL = dict(n_methods=2, method_effects_pct=(0.0, 5.0), instructors_per_method=2, students_per_instructor=3,
                      gpa_mean=3.8, gpa_sd=0.3)
ADDITIVE_SCORE = [63.14394193297941, 76.9244523286608, 70.17565428837577, 76.69653367611261, 93.95639089944973,
                  70.11994687180993, 81.51850895343841, 84.3840767471119, 74.93230443425287, 78.05756385711274,
                  76.50858325401877, 84.76184715077332]
ADDITIVE_GPA = [3.3821599710869394, 3.820158906521329, 4.0, 3.952756039653706, 4.0, 4.0, 3.9919278661794384,
                3.5806032436312254, 3.4676848894618195, 4.0, 3.81467372092086, 4.0]
#: sha256 of the columns (sorted by name, name bytes then array bytes) of generate(default_rng(7)) at defaults.
ADDITIVE_DEFAULT_SHA256 = "28ad9a2dbbf652d13a504eac6172c0bb2c9f98c817a62acb0173120558122bab"


def _sha256(data: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(data):
        h.update(k.encode())
        h.update(np.ascontiguousarray(data[k]).tobytes())
    return h.hexdigest()


def test_additive_model_unchanged():
    d = TeachingMethods().generate(np.random.default_rng(2024), **ADDITIVE_SMALL)
    assert d["score"].tolist() == ADDITIVE_SCORE  # bit for bit
    assert d["hs_gpa"].tolist() == ADDITIVE_GPA
    for adjust in (True, False):
        assert _sha256(TeachingMethods(adjust_gpa=adjust).generate(np.random.default_rng(7))) == ADDITIVE_DEFAULT_SHA256
    assert TeachingMethods().truth() == {"Intercept": 40.0, "hs_gpa": 10.0, "C(method)[T.1]": 3.5,
                                         "C(method)[T.2]": 7.0, "var(instructor)": 9.0, "var(residual)": 100.0}
    assert TeachingMethods(adjust_gpa=False).truth() == {
        "Intercept": 69.99998213685392, "C(method)[T.1]": 3.5, "C(method)[T.2]": 7.0, "var(instructor)": 9.0,
        "var(residual)": 106.24962342295863}


# ---------------------------------------------------------------------------------------------------------------
# The seed's multiplicative model
# ---------------------------------------------------------------------------------------------------------------
