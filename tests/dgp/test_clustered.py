import math

import numpy as np
import pytest

from simstudy.dgp import DGP, RandomIntercept, design_effect
from simstudy.dgp.clustered import max_size_spread

DGP_ = RandomIntercept()


def one_way_anova(r: np.ndarray, n_groups: int, size: int) -> tuple[float, float]:
    """Unbiased ANOVA estimates (between-group variance, within-group variance) on balanced data."""
    R = r.reshape(n_groups, size)
    means = R.mean(axis=1)
    msw = ((R - means[:, None]) ** 2).sum() / (n_groups * (size - 1))
    msb = size * ((means - means.mean()) ** 2).sum() / (n_groups - 1)
    return (msb - msw) / size, msw


def test_contract_and_columns(declared_factors):
    assert isinstance(DGP_, DGP)
    declared_factors(DGP_)
    d = DGP_.generate(np.random.default_rng(0), n_groups=7, group_size=5)
    assert set(d) == {"y", "x", "treat", "group"}
    assert all(v.shape == (35,) for v in d.values())
    assert d["y"].dtype == d["x"].dtype == np.float64
    np.testing.assert_array_equal(d["group"], np.repeat(np.arange(7), 5))
    treat_by_group = d["treat"].reshape(7, 5)
    assert (treat_by_group == treat_by_group[:, :1]).all()  # constant within group
    assert treat_by_group[:, 0].sum() == 3  # floor(7 / 2) treated
    assert set(np.unique(d["treat"])) == {0, 1}


def test_deterministic_given_seed():
    for factors in ({}, {"size_spread": 0.4}):
        a = DGP_.generate(np.random.default_rng(5), **factors)
        b = DGP_.generate(np.random.default_rng(5), **factors)
        c = DGP_.generate(np.random.default_rng(6), **factors)
        for col in a:
            np.testing.assert_array_equal(a[col], b[col])
        assert not np.array_equal(a["y"], c["y"])


def test_treatment_assignment_is_random():
    treated = [DGP_.generate(np.random.default_rng(s), n_groups=10)["treat"][::20] for s in range(200)]
    share = np.mean(treated, axis=0)  # each group treated about half the time
    assert np.all(np.abs(share - 0.5) < 0.15)


@pytest.mark.parametrize(
    "factor, value",
    [
        ("n_groups", 1),
        ("n_groups", 2.5),
        ("group_size", 0),
        ("group_size", 1.5),
        ("size_spread", -0.1),
        ("size_spread", 6.0),  # above the largest CV possible, 5.12
        ("resid_var", -1.0),
        ("resid_var", 0.0),
        ("group_var", -0.1),
        ("icc", 1.0),
        ("icc", -0.1),
        ("beta_x", math.nan),
        ("treatment_effect", "big"),
        ("intercept", math.inf),
    ],
)
def test_validate_rejects(factor, value):
    with pytest.raises(ValueError, match=f"'{factor}'") as err:
        DGP_.validate(**{factor: value})
    assert "\n" not in str(err.value)


def test_validate_rejects_combinations():
    with pytest.raises(ValueError, match="'group_var' and 'icc'"):
        DGP_.validate(icc=0.1, group_var=0.5)
    with pytest.raises(ValueError, match="'size_spread'"):
        DGP_.validate(group_size=1, size_spread=0.1)  # equal sizes are the only option at mean size 1
    DGP_.validate(n_groups=2, group_size=1, icc=0.0, group_var=None)
    DGP_.validate(size_spread=0.99 * max_size_spread(30, 20))


def test_truth():
    assert DGP_.truth() == pytest.approx(
        {"Intercept": 0.0, "x": 0.5, "treat": 0.0, "var(group)": 0.1 / 0.9, "var(residual)": 1.0}
    )
    t = DGP_.truth(icc=0.2, resid_var=2.0, beta_x=-1.0, treatment_effect=0.3, intercept=4.0)
    assert t == pytest.approx({"Intercept": 4.0, "x": -1.0, "treat": 0.3, "var(group)": 0.5, "var(residual)": 2.0})
    assert DGP_.truth(group_var=0.7)["var(group)"] == 0.7


def test_design_effect():
    assert design_effect(20, 0.1) == pytest.approx(2.9)
    assert design_effect(1, 0.3) == 1.0
    assert design_effect(20, 0.1, size_cv=0.5) == pytest.approx(1 + (1.25 * 20 - 1) * 0.1)


def test_moments_match_truth(mc_check, ols):
    f = dict(n_groups=20, group_size=10, icc=0.2, resid_var=2.0, beta_x=0.8, treatment_effect=0.7, intercept=1.5)
    truth = DGP_.truth(**f)
    rng = np.random.default_rng(11)
    diff, var_u, var_e, coefs = [], [], [], []
    for _ in range(1000):
        d = DGP_.generate(rng, **f)
        t = d["treat"] == 1
        diff.append(d["y"][t].mean() - d["y"][~t].mean())
        r = d["y"] - truth["Intercept"] - truth["x"] * d["x"] - truth["treat"] * d["treat"]
        vu, ve = one_way_anova(r, 20, 10)
        var_u.append(vu)
        var_e.append(ve)
        coefs.append(ols("y ~ x + treat", d))
    mc_check(diff, truth["treat"], "mean difference treated - control")
    mc_check(var_u, truth["var(group)"], "ANOVA var(group)")
    mc_check(var_e, truth["var(residual)"], "ANOVA var(residual)")
    for name in ("Intercept", "x", "treat"):
        mc_check([c[name] for c in coefs], truth[name], f"OLS {name}")


@pytest.mark.parametrize("size_spread", [0.0, 0.6])
def test_variance_of_mean_follows_design_effect(size_spread):
    # Var(mean of y) = (var(group) + var(residual)) / N * design effect; with unequal sizes, given the sizes,
    # exactly 1 + ((cv^2 + 1) m - 1) icc, whose expectation over the sizes is design_effect(m, icc, s).
    f = dict(n_groups=15, group_size=12, size_spread=size_spread, icc=0.3, beta_x=0.0)
    rng = np.random.default_rng(3)
    means = np.array([DGP_.generate(rng, **f)["y"].mean() for _ in range(2000)])
    naive = (0.3 / 0.7 + 1.0) / (15 * 12)
    ratio = means.var(ddof=1) / (naive * design_effect(12, 0.3, size_cv=size_spread))
    assert abs(ratio - 1) <= 4 * math.sqrt(2 / (means.size - 1))
    assert means.var(ddof=1) / naive > 3.5  # far from the naive variance (design effect 4.3 or 5.2)


@pytest.mark.parametrize("n_groups, group_size, spread", [(30, 20, 0.5), (40, 8, 0.15), (30, 20, 0.03), (10, 5, 2.3)])
def test_unequal_sizes_have_the_stated_spread(mc_check, n_groups, group_size, spread):
    rng = np.random.default_rng(8)
    cv2 = []
    for _ in range(1500):
        group = DGP_.generate(rng, n_groups=n_groups, group_size=group_size, size_spread=spread)["group"]
        sizes = np.bincount(group, minlength=n_groups)
        assert sizes.min() >= 1
        assert sizes.sum() == n_groups * group_size  # mean size exactly group_size
        assert np.all(np.diff(group) >= 0)
        cv2.append(sizes.var() / group_size**2)
    mc_check(cv2, spread**2, f"squared CV of sizes, spread {spread}")  # E[CV^2] = spread^2, rounding included
    assert abs(np.sqrt(np.mean(cv2)) - spread) < 0.03 * spread
