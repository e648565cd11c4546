"""PilotModel: refits recover the pilot's values, resampling keeps the pilot's structure, the design changes
through factors, BLUPs for the pilot's clusters, treatments at every level, and the DGP contract."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simstudy.dgp import PilotModel
from simstudy.dgp.pilot import n_treated
from simstudy.engine.fingerprint import describe
from simstudy.estimators import FastMixedLM
from simstudy.estimators.pilot_fit import fit_pilot

PILOT = Path(__file__).resolve().parents[1] / "data" / "pilot"
DIETOX = PILOT / "dietox.csv"
CALLS = PILOT / "callcentre_pilot.csv"


@pytest.fixture(scope="module")
def nested():
    return fit_pilot(DIETOX, "Weight ~ Time", ["Litter", "Pig"])


@pytest.fixture(scope="module")
def pigs():
    return fit_pilot(DIETOX, "Weight ~ Time", "Pig")


@pytest.fixture(scope="module")
def slope():
    return fit_pilot(DIETOX, "Weight ~ Time", "Pig", slope="Time")


@pytest.fixture(scope="module")
def calls():
    return fit_pilot(CALLS, "call_CSAT ~ C(reason) + age", ["centre", "rep"], nested_ids="within")


def draws(model, reps, seed=1, **factors):
    rng = np.random.default_rng(seed)
    return [model.generate(rng, **factors) for _ in range(reps)]


def test_declares_its_factors(declared_factors, nested, calls):
    declared_factors(PilotModel(nested))
    declared_factors(PilotModel(calls, treatment_level="centre"))


RECOVERY = [  # pilot fixture, DGP options, factors, estimator groups and slope, replicates
    ("nested", {"treatment_level": "Litter"}, {"effect": 3.0}, ["Litter", "Pig"], None, 300),
    ("slope", {"treatment_level": "Pig", "treatment_by": "Time"}, {"effect": 0.5}, "Pig", "Time", 250),
    ("calls", {"treatment_level": "centre"}, {"effect": 0.5}, ["centre", "rep"], None, 300),
    # more clusters and other sizes at once
    ("calls", {"treatment_level": "rep"}, {"effect": 0.3, "n_clusters": 20, "cluster_size": 3, "subcluster_size": 12},
     ["centre", "rep"], None, 300),
    ("nested", {}, {"n_clusters": 42, "cluster_size": 2, "subcluster_size": 6}, ["Litter", "Pig"], None, 300),
]


@pytest.mark.parametrize(("pilot", "options", "factors", "groups", "slope_col", "reps"), RECOVERY)
def test_refits_recover_the_pilots_values_within_3_mcse(request, mc_check, pilot, options, factors, groups,
                                                         slope_col, reps):
    model = PilotModel(request.getfixturevalue(pilot), **options)
    fits = FastMixedLM(model.formula, groups=groups, slope=slope_col).fit_batch(draws(model, reps, **factors))
    assert {f.status for f in fits} <= {"ok", "boundary"}
    truth = model.truth(**factors)
    assert set(truth) == set(fits[0].params)  # named as the estimator names them
    for name, value in truth.items():
        mc_check([f.estimate[f.params.index(name)] for f in fits], value, name, k=3.0)


def test_whole_clusters_keep_the_sizes_and_covariate_means(mc_check, nested, calls):
    reps = draws(PilotModel(nested), 400)
    pilot_pigs = nested.inner_per_cluster()
    litters = [np.bincount(d["Litter"][np.r_[True, np.diff(d["Pig"]) != 0]]) for d in reps]
    for k in (2, 3, 4):  # pigs per litter: the pilot's distribution
        mc_check([np.mean(n == k) for n in litters], np.mean(pilot_pigs == k), f"share of litters with {k} pigs")
    mc_check([np.bincount(d["Pig"]).mean() for d in reps], nested.inner_sizes().mean(), "weighings per pig")
    total = np.bincount(nested.top, weights=nested.rows["Time"])  # Time per litter: the pilot's mean
    mc_check([np.bincount(d["Litter"], weights=d["Time"]).mean() for d in reps], total.mean(), "Time per litter")
    pilot_pigs_times = {tuple(nested.rows["Time"][nested.inner == p]) for p in range(72)}
    assert all(tuple(d["Time"][d["Pig"] == p]) in pilot_pigs_times for d in reps[:20] for p in range(d["Pig"][-1] + 1))
    for d in reps[:20]:  # grouping columns: clusters 0..n-1, pigs unique across litters
        assert d["Litter"].max() == 20 and np.all(np.diff(d["Litter"]) >= 0) and np.all(np.diff(d["Pig"]) >= 0)
    reps = draws(PilotModel(calls), 400)
    for reason in ("billing", "cancel", "technical"):
        mc_check([np.mean(d["reason"] == reason) for d in reps], np.mean(calls.rows["reason"] == reason), reason)
    mc_check([d["age"].mean() for d in reps], calls.rows["age"].mean(), "age")


def test_units_draw_every_row_from_all_rows(mc_check, pigs):
    reps = draws(PilotModel(pigs, resample="units"), 300)
    mc_check([d["Time"].mean() for d in reps], pigs.rows["Time"].mean(), "Time")
    mc_check([np.bincount(d["Pig"]).mean() for d in reps], pigs.cluster_sizes().mean(), "rows per pig")
    scrambled = [len(set(d["Time"][d["Pig"] == 0])) < np.sum(d["Pig"] == 0) for d in reps]
    assert np.mean(scrambled) > 0.9  # times repeat within a pig: rows no longer come as whole pigs


def test_other_sizes_subsample_or_add_copies_within_the_cluster(pigs, nested):
    d = draws(PilotModel(pigs), 1, n_clusters=30, cluster_size=5)[0]
    assert d["Pig"].size == 150 and np.bincount(d["Pig"]).tolist() == [5] * 30
    for p in range(30):  # five distinct weeks of one pilot pig, in order
        t = d["Time"][d["Pig"] == p]
        assert len(set(t)) == 5 and np.all(np.diff(t) > 0)
    d = draws(PilotModel(pigs), 1, cluster_size=20)[0]
    for p in range(72):  # the pig's own 11 or 12 weeks, then copies of them
        t = d["Time"][d["Pig"] == p]
        assert t.size == 20 and set(t) == set(t[:12]) and set(t[:11]) <= set(range(1, 13))
    d = draws(PilotModel(nested), 1, n_clusters=50, cluster_size=6, subcluster_size=3)[0]
    assert np.bincount(d["Litter"]).tolist() == [18] * 50 and np.bincount(d["Pig"]).tolist() == [3] * 300
    assert d["Weight"].size == 900 and set(d) == {"Weight", "Time", "Litter", "Pig"}


def test_pilot_random_effects_for_the_pilots_own_clusters(mc_check, pigs, nested):
    model = PilotModel(pigs, random_effects="pilot")
    assert model.keep_pilot
    blup = pigs.random_effects()["Pig"]
    X, names = pigs.design_matrix()
    eta = X @ np.array([pigs.fixed[n] for n in names])
    reps = draws(model, 200)
    for d in reps[:3]:  # the pilot's rows as they are
        np.testing.assert_array_equal(d["Time"], pigs.rows["Time"])
    means = np.mean([np.bincount(d["Pig"], weights=d["Weight"] - eta) / np.bincount(d["Pig"]) for d in reps], axis=0)
    se = np.sqrt(pigs.variances["var(residual)"] / pigs.cluster_sizes() / 200)
    assert np.max(np.abs((means - blup) / se)) < 4.5  # each pig's mean: its BLUP, only residual noise
    more = draws(model, 300, n_clusters=100)  # the 72 pilot pigs, then 28 new ones
    new = np.array([np.mean((d["Weight"] - d["Time"] * pigs.fixed["Time"])[d["Pig"] >= 72]) for d in more])
    old = np.array([np.mean((d["Weight"] - d["Time"] * pigs.fixed["Time"])[d["Pig"] < 72]) for d in more])
    assert new.std() > 3 * old.std()  # new pigs' random effects vary between data sets, the pilot's do not
    fewer = draws(model, 1, n_clusters=10)[0]
    assert np.bincount(fewer["Pig"]).size == 10
    # nested: every litter's own pigs keep their BLUPs; copies made to reach 6 pigs per litter get new ones
    blups = nested.random_effects()
    own = nested.inner_per_cluster()
    first = np.r_[0, np.cumsum(own)[:-1]]
    is_own = np.concatenate([np.arange(6) < k for k in own])
    pilot_pig = np.concatenate([f + np.minimum(np.arange(6), k - 1) for f, k in zip(first, own)])
    pig_means = []
    for d in draws(PilotModel(nested, random_effects="pilot"), 200, cluster_size=6):
        r = d["Weight"] - nested.fixed["Intercept"] - nested.fixed["Time"] * d["Time"] - blups["Litter"][d["Litter"]]
        pig_means.append(np.bincount(d["Pig"], weights=r) / np.bincount(d["Pig"]))
    pig_means = np.array(pig_means)
    se = np.sqrt(nested.variances["var(residual)"] / 11 / 200)
    assert np.max(np.abs(pig_means.mean(0)[is_own] - blups["Pig"][pilot_pig[is_own]])) < 4.5 * se
    spread = pig_means[:, ~is_own].std(0).mean() ** 2
    assert spread == pytest.approx(nested.variances["var(Pig)"] + nested.variances["var(residual)"] / 12, rel=0.1)


def test_treatment_randomised_at_each_level(calls):
    for level, column in (("centre", "centre"), ("rep", "rep"), ("unit", None)):
        model = PilotModel(calls, treatment_level=level)
        d = model.generate(np.random.default_rng(2), n_clusters=15, p_treated=0.3)
        if column is None:
            assert d["treat"].sum() == n_treated(0.3, d["treat"].size) == 180  # 15 centres x 5 reps x 8 calls
        else:
            per = pd.Series(d["treat"]).groupby(d[column]).agg(["min", "max"])
            assert (per["min"] == per["max"]).all()  # constant within the level randomised
            assert per["max"].sum() == n_treated(0.3, len(per))
    assert n_treated(0.5, 21) == 10 and n_treated(0.01, 10) == 1 and n_treated(0.99, 10) == 9


def test_truths_overrides_and_effect_of(pigs, slope):
    model = PilotModel(pigs, fixed={"Time": 7.5}, variances={"var(Pig)": 20.0})
    assert model.truth() == {"Intercept": pigs.fixed["Intercept"], "Time": 7.5, "var(Pig)": 20.0,
                             "var(residual)": pigs.variances["var(residual)"]}
    via_effect = PilotModel(pigs, variances={"var(Pig)": 20.0}, effect_of="Time")
    assert via_effect.truth(effect=7.5) == model.truth() and via_effect.truth()["Time"] == pigs.fixed["Time"]
    a, b = model.generate(np.random.default_rng(4)), via_effect.generate(np.random.default_rng(4), effect=7.5)
    np.testing.assert_allclose(a["Weight"], b["Weight"], rtol=1e-12)
    by = PilotModel(slope, treatment_level="Pig", treatment_by="Time")
    assert by.formula == "Weight ~ Time + treat + treat:Time"
    t = by.truth(effect=0.4)
    assert t["treat"] == 0.0 and t["treat:Time"] == 0.4 and t["cov(Pig:Time)"] == slope.variances["cov(Pig:Time)"]


BAD_OPTIONS = [
    ({"resample": "rows"}, "factor 'resample' must be one of clusters, units"),
    ({"random_effects": "pilot", "keep_pilot": False}, "cannot go with keep_pilot=False"),
    ({"treatment_level": "Pen"}, "treatment_level must be one of Litter, Pig, unit"),
    ({"treatment_level": "Litter", "treatment": "Time"}, "must be a new column name"),
    ({"treatment_by": "Time"}, "treatment_by needs a treatment_level"),
    ({"treatment_level": "Pig", "treatment_by": "Feed"}, "treatment_by must be a numeric covariate"),
    ({"effect_of": "Tme"}, "effect_of must be a fixed effect of the pilot"),
    ({"fixed": {"time": 1.0}}, "fixed: 'time' is not a parameter of the pilot model"),
    ({"variances": {"var(Pig)": -1.0}}, "'var(Pig)' must not be negative"),
    ({"variances": {"var(residual)": 0.0}}, "'var(residual)' must be positive"),
]


@pytest.mark.parametrize(("options", "fragment"), BAD_OPTIONS)
def test_bad_options_are_one_line(nested, options, fragment):
    with pytest.raises(ValueError, match=None) as info:
        PilotModel(nested, **options)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_covariance_override_must_stay_a_covariance(slope):
    with pytest.raises(ValueError, match="do not form a covariance matrix"):
        PilotModel(slope, variances={"cov(Pig:Time)": 10.0})


BAD_FACTORS = [
    ({}, {"n_clusters": 1}, "factor 'n_clusters' must be at least 2"),
    ({}, {"n_clusters": 2.5}, "factor 'n_clusters' must be a whole number"),
    ({}, {"cluster_size": 0}, "factor 'cluster_size' must be at least 1"),
    ({}, {"effect": 1.0}, "factor 'effect' has nothing to act on"),
    ({}, {"p_treated": 0.3}, "factor 'p_treated' needs a treatment"),
    ({"treatment_level": "Litter"}, {"p_treated": 1.0}, "factor 'p_treated' must lie in (0, 1)"),
    ({"treatment_level": "Litter"}, {"effect": float("nan")}, "factor 'effect' must be a finite number"),
]


@pytest.mark.parametrize(("options", "factors", "fragment"), BAD_FACTORS)
def test_bad_factor_values_are_one_line(nested, options, factors, fragment):
    with pytest.raises(ValueError) as info:
        PilotModel(nested, **options).validate(**factors)
    assert fragment in str(info.value)


def test_subcluster_size_needs_a_nested_pilot(pigs):
    with pytest.raises(ValueError, match="'subcluster_size' needs a pilot with two nested grouping columns"):
        PilotModel(pigs).validate(subcluster_size=3)


def test_picklable_deterministic_and_described(nested, pigs):
    model = PilotModel(nested, treatment_level="Pig", random_effects="pilot")
    again = pickle.loads(pickle.dumps(model))
    factors = {"n_clusters": 30, "cluster_size": 5, "effect": 1.0}
    a = model.generate(np.random.default_rng(9), **factors)
    b = again.generate(np.random.default_rng(9), **factors)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    text = describe(model)
    assert text == describe(again) and " at 0x" not in text and "random_effects='pilot'" in text
    assert repr(nested.variances["var(Litter)"]) in text  # the pilot's numbers are part of the fingerprint
    assert describe(PilotModel(nested, treatment_level="Pig", random_effects="pilot",
                               variances={"var(Pig)": 30.0})) != text
    assert describe(PilotModel(pigs)) != describe(PilotModel(nested))


def test_row_order_of_the_pilot_file_does_not_change_the_simulations(tmp_path, calls):
    shuffled = tmp_path / "calls.csv"
    pd.read_csv(CALLS).sample(frac=1, random_state=5).to_csv(shuffled, index=False)
    other = fit_pilot(shuffled, "call_CSAT ~ C(reason) + age", ["centre", "rep"], nested_ids="within")
    for options in ({"treatment_level": "centre"}, {"random_effects": "pilot", "resample": "units"}):
        a = PilotModel(calls, **options).generate(np.random.default_rng(1), n_clusters=20, cluster_size=4)
        b = PilotModel(other, **options).generate(np.random.default_rng(1), n_clusters=20, cluster_size=4)
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
