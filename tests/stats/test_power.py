"""Analytic power and type I error: checked against Monte Carlo of the tests they describe (numpy only)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from simstudy.stats.power import (
    clopper_pearson,
    cluster_trial_power,
    clusters_needed,
    effect_variance,
    naive_type1_error,
    relative_efficiency,
)


def _cluster_means_t_test(rng, K, m, icc, effect, reps, alpha=0.05):
    """Rejections of the t test on cluster means (2K - 2 df), simulated."""
    sd_u, sd_e = math.sqrt(icc), math.sqrt(1 - icc)
    means = rng.normal(0, sd_u, (reps, 2, K)) + rng.normal(0, sd_e / math.sqrt(m), (reps, 2, K))
    means[:, 1] += effect
    diff = means[:, 1].mean(-1) - means[:, 0].mean(-1)
    pooled = (means[:, 0].var(-1, ddof=1) + means[:, 1].var(-1, ddof=1)) / 2
    t = diff / np.sqrt(pooled * 2 / K)
    return np.abs(t) > stats.t.ppf(1 - alpha / 2, 2 * K - 2)


@pytest.mark.parametrize("K, m, icc, effect", [(3, 5, 0.05, 0.5), (5, 20, 0.1, 0.3), (10, 10, 0.2, 0.4),
                                               (4, 30, 0.02, 0.0)])
def test_t_power_matches_the_cluster_means_t_test(K, m, icc, effect):
    reps = 40_000
    hits = _cluster_means_t_test(np.random.default_rng(K * 100 + m), K, m, icc, effect, reps)
    p = hits.mean()
    expected = cluster_trial_power(effect, K, m, icc, test="t")
    assert abs(p - expected) < 4 * math.sqrt(expected * (1 - expected) / reps)


def test_z_power_closed_form():
    se = math.sqrt(2 * (1 + 19 * 0.05) / (20 * 20))
    z = stats.norm.ppf(0.975)
    expected = stats.norm.cdf(0.3 / se - z) + stats.norm.cdf(-0.3 / se - z)
    assert cluster_trial_power(0.3, 20, 20, 0.05, test="z") == pytest.approx(expected, rel=1e-12)
    assert cluster_trial_power(0.0, 20, 20, 0.05, test="z") == pytest.approx(0.05, rel=1e-12)


@pytest.mark.parametrize("K, m, icc", [(10, 20, 0.05), (5, 10, 0.2), (15, 5, 0.1)])
def test_naive_type1_error_matches_hedges_by_simulation(K, m, icc):
    rng = np.random.default_rng(K * m)
    reps = 20_000
    u = rng.normal(0, math.sqrt(icc), (reps, 2, K, 1))
    y = (u + rng.normal(0, math.sqrt(1 - icc), (reps, 2, K, m))).reshape(reps, 2, K * m)
    t = stats.ttest_ind(y[:, 1], y[:, 0], axis=-1).statistic
    p = np.mean(np.abs(t) > stats.t.ppf(0.975, 2 * K * m - 2))
    expected = naive_type1_error(K, m, icc)
    assert abs(p - expected) < 4 * math.sqrt(expected * (1 - expected) / reps)
    assert expected > 0.05  # ignoring positive clustering inflates the type I error


def test_unequal_sizes_relative_efficiency_against_the_exact_gls_variance():
    rng = np.random.default_rng(1)
    K, m, icc, cv = 30, 20, 0.1, 0.6
    shape = 1 / cv**2
    exact = []
    for _ in range(4000):  # gamma cluster sizes with mean m and CV cv; GLS variance with known components
        n = np.maximum(1, np.round(rng.gamma(shape, m / shape, (2, K))))
        w = n / ((1 - icc) + n * icc)
        exact.append((1 / w.sum(1)).sum())
    approx = effect_variance(K, m, icc, size_cv=cv)
    assert abs(approx / np.mean(exact) - 1) < 0.03
    assert relative_efficiency(m, icc, 0.0) == 1.0 and relative_efficiency(m, icc, cv) < 1


def test_clusters_needed_is_the_smallest_reaching_the_target():
    K = clusters_needed(0.3, 20, 0.05, target=0.8, test="t")
    assert cluster_trial_power(0.3, K, 20, 0.05) >= 0.8 > cluster_trial_power(0.3, K - 1, 20, 0.05)
    with pytest.raises(ValueError, match="do not reach power"):
        clusters_needed(0.0, 20, 0.05)


def test_clopper_pearson():
    lo, hi = clopper_pearson(np.array([0, 5, 10]), np.array([10, 10, 10]), 0.95)
    assert lo[0] == 0 and hi[2] == 1
    assert lo[1] == pytest.approx(stats.beta.ppf(0.025, 5, 6)) and hi[1] == pytest.approx(stats.beta.ppf(0.975, 6, 5))
    assert np.isnan(clopper_pearson(0, 0)[0])


@pytest.mark.parametrize("kwargs, message", [({"K": 0}, "clusters per arm"), ({"icc": 1.0}, "icc"),
                                             ({"alpha": 0}, "alpha")])
def test_bad_arguments(kwargs, message):
    args = {"effect": 0.3, "K": 10, "m": 20, "icc": 0.1} | kwargs
    with pytest.raises(ValueError, match=message):
        cluster_trial_power(**args)
