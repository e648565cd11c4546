"""Analytic power and type I error for two-arm cluster-randomised trials with a continuous outcome.

First guesses for a sample-size search, and oracles for the tests of simulated power.

Design: ``K`` clusters per arm (``2K`` in all), ``m`` units per cluster (the mean size when sizes vary),
intraclass correlation ``icc``, total outcome variance ``var`` (default 1), treatment effect ``effect``,
two-sided level ``alpha``. The treatment effect estimated from cluster means (equivalently, REML with a
random intercept on balanced data) has variance::

    V = 2 var (1 + (m - 1) icc) / (K m)                                 (equal cluster sizes)

and ``V / RE`` with unequal sizes of coefficient of variation ``size_cv``, where ``RE`` is van Breukelen,
Candel & Berger's (2007, Statistics in Medicine 26:2589) relative efficiency of unequal versus equal
cluster sizes for the mixed-model (GLS) estimator, ``RE = 1 - size_cv^2 lam (1 - lam)`` with
``lam = m icc / (m icc + 1 - icc)`` (their second-order approximation). For analyses that weight every
unit equally, the design effect of Eldridge, Ashby & Kerry (2006), ``1 + ((size_cv^2 + 1) m - 1) icc``,
applies instead (``weighting="unit"``).

- :func:`cluster_trial_power`: power with a z test or a t test on ``2K - 2`` df (noncentral t, exact
  given ``V``).
- :func:`clusters_needed`: the smallest ``K`` whose power reaches a target.
- :func:`naive_type1_error`: the actual type I error of the two-sample t test that ignores clustering
  (Hedges 2007, Journal of Educational and Behavioral Statistics 32:151, equal cluster sizes).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from scipy import special

Test = Literal["z", "t"]


def _check(K: float, m: float, icc: float, alpha: float, size_cv: float = 0.0) -> None:
    if not K >= 1:
        raise ValueError(f"clusters per arm must be at least 1, got {K!r}")
    if not m >= 1:
        raise ValueError(f"cluster size must be at least 1, got {m!r}")
    if not 0 <= icc < 1:
        raise ValueError(f"icc must lie in [0, 1), got {icc!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    if not size_cv >= 0:
        raise ValueError(f"size_cv must not be negative, got {size_cv!r}")


def relative_efficiency(m: float, icc: float, size_cv: float) -> float:
    """van Breukelen et al.'s (2007) efficiency of unequal relative to equal cluster sizes (GLS estimator):
    ``1 - size_cv^2 lam (1 - lam)``, ``lam = m icc / (m icc + 1 - icc)``."""
    lam = m * icc / (m * icc + 1.0 - icc)
    return 1.0 - size_cv**2 * lam * (1.0 - lam)


def effect_variance(K: float, m: float, icc: float, var: float = 1.0, size_cv: float = 0.0,
                    weighting: Literal["cluster", "unit"] = "cluster") -> float:
    """Variance of the estimated treatment effect (see the module docstring)."""
    if weighting == "unit":
        design_effect = 1.0 + ((size_cv**2 + 1.0) * m - 1.0) * icc
        return 2.0 * var * design_effect / (K * m)
    if weighting != "cluster":
        raise ValueError(f"weighting must be 'cluster' or 'unit', got {weighting!r}")
    return 2.0 * var * (1.0 + (m - 1.0) * icc) / (K * m) / relative_efficiency(m, icc, size_cv)


def cluster_trial_power(effect: float, K: float, m: float, icc: float, *, var: float = 1.0, alpha: float = 0.05,
                        test: Test = "t", size_cv: float = 0.0,
                        weighting: Literal["cluster", "unit"] = "cluster") -> float:
    """Power of the two-sided test of no treatment effect in a two-arm cluster-randomised trial.

    Parameters
    ----------
    effect : float
        Treatment effect (difference in means).
    K : float
        Clusters per arm.
    m : float
        Units per cluster (mean size with ``size_cv > 0``).
    icc : float
        Intraclass correlation in [0, 1).
    var : float
        Total variance of the outcome (between- plus within-cluster).
    alpha : float
        Two-sided level.
    test : {"t", "z"}
        ``"t"``: t test on ``2K - 2`` df (the between-within df of the mixed model, the cluster-means t
        test), power from the noncentral t; ``"z"``: normal approximation.
    size_cv, weighting
        Unequal cluster sizes (see the module docstring).

    Returns
    -------
    float
        The probability of rejecting at level ``alpha``.

    Examples
    --------
    >>> round(cluster_trial_power(0.3, 20, 20, 0.05, test="z"), 4)
    0.8595
    """
    from scipy import stats  # here, not at the top: the run engine imports this module for clopper_pearson

    _check(K, m, icc, alpha, size_cv)
    se = math.sqrt(effect_variance(K, m, icc, var, size_cv, weighting))
    ncp = abs(effect) / se
    if test == "z":
        z = stats.norm.ppf(1 - alpha / 2)
        return float(stats.norm.sf(z - ncp) + stats.norm.cdf(-z - ncp))
    if test != "t":
        raise ValueError(f"test must be 't' or 'z', got {test!r}")
    df = 2 * K - 2
    if df < 1:
        raise ValueError(f"a t test needs at least 2 clusters per arm, got {K!r}")
    crit = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp))


def clusters_needed(effect: float, m: float, icc: float, *, target: float = 0.8, var: float = 1.0,
                    alpha: float = 0.05, test: Test = "t", size_cv: float = 0.0, max_clusters: int = 100_000) -> int:
    """The smallest number of clusters per arm whose :func:`cluster_trial_power` reaches ``target``.

    >>> clusters_needed(0.3, 20, 0.05, test="z")
    18
    """
    if not 0 < target < 1:
        raise ValueError(f"target power must lie in (0, 1), got {target!r}")
    lo = 2 if test == "t" else 1
    if cluster_trial_power(effect, max_clusters, m, icc, var=var, alpha=alpha, test=test, size_cv=size_cv) < target:
        raise ValueError(f"{max_clusters} clusters per arm do not reach power {target}")
    hi = lo
    while cluster_trial_power(effect, hi, m, icc, var=var, alpha=alpha, test=test, size_cv=size_cv) < target:
        hi *= 2
    while lo < hi:  # power increases with K: bisect on integers
        mid = (lo + hi) // 2
        if cluster_trial_power(effect, mid, m, icc, var=var, alpha=alpha, test=test, size_cv=size_cv) >= target:
            hi = mid
        else:
            lo = mid + 1
    return int(lo)


def naive_type1_error(K: int, m: int, icc: float, *, alpha: float = 0.05) -> float:
    """Actual type I error of the two-sample t test on ``N = 2 K m`` units that ignores clustering.

    Hedges (2007): under the null, the naive statistic times
    ``c = sqrt(((N - 2) - 2 (m - 1) icc) / ((N - 2) (1 + (m - 1) icc)))`` is approximately t with
    ``h = ((N - 2) - 2 (m - 1) icc)^2 / ((N - 2)(1 - icc)^2 + m (N - 2m) icc^2 + 2 (N - 2m) icc (1 - icc))``
    df, so the naive test rejects with probability ``2 P(T_h > c t_{1 - alpha/2, N - 2})``.

    >>> round(naive_type1_error(10, 20, 0.0), 10)
    0.05
    """
    from scipy import stats

    _check(K, m, icc, alpha)
    N = 2 * K * m
    c = math.sqrt(((N - 2) - 2 * (m - 1) * icc) / ((N - 2) * (1 + (m - 1) * icc)))
    h = ((N - 2) - 2 * (m - 1) * icc) ** 2 / (
        (N - 2) * (1 - icc) ** 2 + m * (N - 2 * m) * icc**2 + 2 * (N - 2 * m) * icc * (1 - icc))
    crit = stats.t.ppf(1 - alpha / 2, N - 2)
    return float(2 * stats.t.sf(c * crit, h))


def clopper_pearson(successes: np.ndarray | int, n: np.ndarray | int, confidence: float = 0.95
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Clopper-Pearson) confidence limits of a binomial proportion, elementwise (NaN where n = 0)."""
    x = np.asarray(successes, dtype=float)
    n = np.asarray(n, dtype=float)
    a = (1 - confidence) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = np.where(x > 0, special.betaincinv(np.maximum(x, 1e-300), n - x + 1, a), 0.0)
        upper = np.where(x < n, special.betaincinv(x + 1, np.maximum(n - x, 1e-300), 1 - a), 1.0)
    bad = ~(n > 0)
    return np.where(bad, np.nan, lower), np.where(bad, np.nan, upper)
