import math

import numpy as np
import pytest
from scipy import stats

from simstudy.dgp import DGP, CallCenter

DGP_ = CallCenter()


def nested_anova(r: np.ndarray, C: int, R: int, K: int) -> tuple[float, float, float]:
    """Unbiased ANOVA estimates (var(centre), var(rep), var(residual)) for balanced calls/reps/centres."""
    x = r.reshape(C, R, K)
    rep_means = x.mean(axis=2)
    centre_means = rep_means.mean(axis=1)
    ms_e = ((x - rep_means[..., None]) ** 2).sum() / (C * R * (K - 1))
    ms_rep = K * ((rep_means - centre_means[:, None]) ** 2).sum() / (C * (R - 1))
    ms_centre = R * K * ((centre_means - centre_means.mean()) ** 2).sum() / (C - 1)
    return (ms_centre - ms_rep) / (R * K), (ms_rep - ms_e) / K, ms_e


def test_contract_and_columns(declared_factors):
    assert isinstance(DGP_, DGP)
    declared_factors(DGP_)
    d = DGP_.generate(np.random.default_rng(0), n_centres=5, reps_per_centre=3, calls_per_rep=4)
    assert set(d) == {"call_CSAT", "age", "reason", "centre", "rep", "treat"}
    assert all(v.shape == (60,) for v in d.values())
    assert d["reason"].dtype.kind == "U" and set(d["reason"]) <= {"billing", "cancel", "technical"}
    np.testing.assert_array_equal(d["rep"], np.repeat(np.arange(15), 4))  # unique across centres
    np.testing.assert_array_equal(d["centre"], np.repeat(np.arange(5), 12))
    treat = d["treat"].reshape(5, 12)
    assert (treat == treat[:, :1]).all() and treat[:, 0].sum() == 2  # floor(5 / 2) centres treated
    assert d["age"].min() >= 18 and d["age"].max() <= 90


def test_deterministic_given_seed():
    a = DGP_.generate(np.random.default_rng(5))
    b = DGP_.generate(np.random.default_rng(5))
    c = DGP_.generate(np.random.default_rng(6))
    for col in a:
        np.testing.assert_array_equal(a[col], b[col])
    for col in ("call_CSAT", "age", "reason"):
        assert not np.array_equal(a[col], c[col])


@pytest.mark.parametrize(
    "factor, value",
    [
        ("n_centres", 1),
        ("reps_per_centre", 0),
        ("calls_per_rep", 1.5),
        ("centre_var", -1.0),
        ("rep_var", math.nan),
        ("resid_var", 0.0),
        ("reason_effects", (0.1,)),
        ("reason_effects", "ab"),
        ("reason_effects", (math.nan, 0.0)),
        ("age_effect", math.inf),
        ("treatment_effect", None),
        ("intercept", "7"),
    ],
)
def test_validate_rejects(factor, value):
    with pytest.raises(ValueError, match=f"'{factor}'") as err:
        DGP_.validate(**{factor: value})
    assert "\n" not in str(err.value)


def test_constructor_checks_reasons():
    with pytest.raises(ValueError, match="sorted"):
        CallCenter(reasons=("technical", "billing", "cancel"))
    with pytest.raises(ValueError, match="reason_probs"):
        CallCenter(reason_probs=(0.5, 0.5, 0.5))
    dgp = CallCenter(reasons=("a", "b"), reason_probs=(0.3, 0.7))
    assert set(dgp.truth(reason_effects=(1.0,))) >= {"C(reason)[T.b]"}
    dgp.validate(reason_effects=[1.0])
    with pytest.raises(ValueError, match="'reason_effects'"):
        dgp.validate()  # the default has two effects, this DGP one


def test_truth():
    t = DGP_.truth(intercept=6.0, reason_effects=(-1.0, 0.5), age_effect=0.02, treatment_effect=0.3)
    assert t == {
        "Intercept": 6.0,
        "C(reason)[T.cancel]": -1.0,
        "C(reason)[T.technical]": 0.5,
        "age": 0.02,
        "treat": 0.3,
        "var(centre)": 0.2,
        "var(rep)": 0.3,
        "var(residual)": 1.5,
    }


def test_age_and_reason_distributions(mc_check):
    rng = np.random.default_rng(4)
    at_18, billing, cancel = [], [], []
    for _ in range(400):
        d = DGP_.generate(rng)
        at_18.append(np.mean(d["age"] == 18.0))
        billing.append(np.mean(d["reason"] == "billing"))
        cancel.append(np.mean(d["reason"] == "cancel"))
        assert d["age"].min() >= 18 and d["age"].max() <= 90
    mc_check(at_18, stats.norm.cdf((18 - 45) / 15), "share of ages clipped at 18")  # 3.6%
    mc_check(billing, 0.5, "share of billing calls")
    mc_check(cancel, 0.2, "share of cancel calls")


def test_moments_match_truth(mc_check, ols):
    f = dict(n_centres=8, reps_per_centre=5, calls_per_rep=12, centre_var=0.4, rep_var=0.3, resid_var=1.2,
             age_effect=0.03, reason_effects=(-1.0, 0.5), treatment_effect=0.6, intercept=5.0)
    truth = DGP_.truth(**f)
    rng = np.random.default_rng(31)
    diff, comps, coefs = [], [], []
    for _ in range(1000):
        d = DGP_.generate(rng, **f)
        t = d["treat"] == 1
        diff.append(d["call_CSAT"][t].mean() - d["call_CSAT"][~t].mean())
        coefs.append(ols("call_CSAT ~ C(reason) + age + treat", d))
        r = d["call_CSAT"] - truth["Intercept"] - truth["age"] * d["age"] - truth["treat"] * d["treat"]
        for label in ("cancel", "technical"):
            r[d["reason"] == label] -= truth[f"C(reason)[T.{label}]"]
        comps.append(nested_anova(r, 8, 5, 12))
    assert set(coefs[0]) | {"var(centre)", "var(rep)", "var(residual)"} == set(truth)
    mc_check(diff, truth["treat"], "mean CSAT difference treated - control")
    for name in coefs[0]:
        mc_check([c[name] for c in coefs], truth[name], f"OLS {name}")
    comps = np.array(comps)
    for j, name in enumerate(("var(centre)", "var(rep)", "var(residual)")):
        mc_check(comps[:, j], truth[name], f"ANOVA {name}")
