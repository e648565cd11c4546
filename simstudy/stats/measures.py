"""Performance measures with Monte Carlo standard errors (MCSE).

Formulas of Morris, White & Crowther (2019, Statistics in Medicine 38:2074-2102, Table 6), as implemented by
R's rsimsum and Stata's simsum. Every function is pure numpy: replicates lie along the last axis, any other
axes are kept, a replicate that is missing is NaN, and each function returns ``(value, mcse)``. Apply
:func:`complete_pairs` first so that an estimate without its SE (or the reverse) drops out of every measure.
With fewer than 2 valid replicates the value and MCSE are NaN; nothing here raises for lack of data.

The xarray layer (:func:`summarize`) reduces a replicate-level Dataset over ``rep``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Literal

import numpy as np
import xarray as xr
from scipy import special  # scipy.stats would add ~0.4 s to every start

import simstudy.lazy_dask  # noqa: F401 - before the first Dataset: xarray then imports dask only when used
from simstudy.stats.power import clopper_pearson

Pair = tuple[np.ndarray, np.ndarray]

#: Every measure :func:`summarize` reports, in display order.
MEASURES: tuple[str, ...] = (
    "bias",
    "rel_bias",
    "emp_se",
    "model_se",
    "rel_error",
    "mse",
    "rmse",
    "coverage",
    "be_coverage",
    "power",
    "rel_precision",
)


# --- helpers ------------------------------------------------------------------------------------------


def complete_pairs(estimate: np.ndarray, se: np.ndarray) -> Pair:
    """Apply the complete-pair rule: where the estimate or the SE is missing, both become NaN."""
    est = np.asarray(estimate, dtype=float)
    s = np.asarray(se, dtype=float)
    ok = np.isfinite(est) & np.isfinite(s)
    return np.where(ok, est, np.nan), np.where(ok, s, np.nan)


def count(x: np.ndarray) -> np.ndarray:
    """Number of non-missing replicates along the last axis."""
    return np.sum(~np.isnan(x), axis=-1)


def _mean(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.nansum(x, axis=-1) / n, np.nan)


def _var(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Sample variance (n - 1 in the denominator) along the last axis; NaN with fewer than 2 values."""
    m = _mean(x, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        ss = np.nansum((x - m[..., None]) ** 2, axis=-1)
        return np.where(n > 1, ss / (n - 1), np.nan)


def _need_two(value: np.ndarray, mcse: np.ndarray, n: np.ndarray) -> Pair:
    return np.where(n > 1, value, np.nan), np.where(n > 1, mcse, np.nan)


def _proportion(hit: np.ndarray, valid: np.ndarray) -> Pair:
    """Share of ``hit`` among ``valid`` replicates along the last axis, with its binomial MCSE."""
    n = np.sum(valid, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.sum(hit & valid, axis=-1) / n
        return _need_two(p, np.sqrt(p * (1 - p) / n), n)


def critical_value(level: float, df: np.ndarray | float | None = None) -> np.ndarray:
    """Two-sided critical value of a ``level`` interval.

    ``df=None``: the normal quantile. Otherwise per element: the t quantile where ``df`` is finite and
    positive, the normal quantile where ``df`` is ``+inf``, and NaN (no interval) where ``df`` is NaN or
    not positive: a missing df never silently becomes a z interval.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie between 0 and 1, got {level!r}")
    q = 1 - (1 - level) / 2
    z = special.ndtri(q)
    if df is None:
        return np.asarray(z)
    d = np.asarray(df, dtype=float)
    finite = np.isfinite(d) & (d > 0)
    with np.errstate(invalid="ignore"):
        t = special.stdtrit(np.where(finite, d, 1.0), q)
    return np.where(finite, t, np.where(d == np.inf, z, np.nan))


def intervals(
    estimate: np.ndarray, se: np.ndarray, level: float = 0.95, df: np.ndarray | None = None
) -> Pair:
    """Wald intervals ``estimate +- crit * se``: t quantiles with per-replicate ``df``, z where ``df`` is
    None or ``+inf``, NaN limits where ``df`` is NaN (see :func:`critical_value`)."""
    crit = critical_value(level, df)
    return estimate - crit * se, estimate + crit * se


# --- measures -----------------------------------------------------------------------------------------


def bias(estimate: np.ndarray, true: np.ndarray | float) -> Pair:
    """Bias ``mean(est - true)``; MCSE ``sd(est) / sqrt(n)``. NaN where the true value is missing."""
    diff = estimate - true
    n = count(diff)
    value = _mean(diff, n)
    return _need_two(value, np.sqrt(_var(np.where(np.isnan(diff), np.nan, estimate), n) / n), n)


def rel_bias(estimate: np.ndarray, true: np.ndarray | float) -> Pair:
    """Relative bias ``mean((est - true) / true)`` (a fraction); MCSE ``sd((est - true) / true) / sqrt(n)``.

    NaN where the true value is 0.
    """
    t = np.asarray(true, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(t != 0, (estimate - t) / np.where(t != 0, t, 1.0), np.nan)
    r = np.where(np.isnan(estimate), np.nan, r)
    n = count(r)
    return _need_two(_mean(r, n), np.sqrt(_var(r, n) / n), n)


def emp_se(estimate: np.ndarray) -> Pair:
    """Empirical SE ``sd(est)``; MCSE ``emp_se / sqrt(2 (n - 1))``."""
    n = count(estimate)
    value = np.sqrt(_var(estimate, n))
    with np.errstate(invalid="ignore", divide="ignore"):
        return _need_two(value, value / np.sqrt(2 * (n - 1)), n)


def model_se(se: np.ndarray) -> Pair:
    """Average model SE ``sqrt(mean(se^2))``; MCSE ``sqrt(var(se^2) / (4 n model_se^2))``."""
    n = count(se)
    se2 = se**2
    value = np.sqrt(_mean(se2, n))
    with np.errstate(invalid="ignore", divide="ignore"):
        return _need_two(value, np.sqrt(_var(se2, n) / (4 * n * value**2)), n)


def rel_error(estimate: np.ndarray, se: np.ndarray) -> Pair:
    """Relative error of the model SE in percent, ``100 (model_se / emp_se - 1)``.

    MCSE ``100 (model_se / emp_se) sqrt(var(se^2) / (4 n model_se^4) + 1 / (2 (n - 1)))``.
    """
    n = count(estimate)
    m_se = model_se(se)[0]
    ese = emp_se(estimate)[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = m_se / ese
        var_se2 = _var(se**2, n)
        mcse = 100 * ratio * np.sqrt(var_se2 / (4 * n * m_se**4) + 1 / (2 * (n - 1)))
    return _need_two(100 * (ratio - 1), mcse, n)


def mse(estimate: np.ndarray, true: np.ndarray | float) -> Pair:
    """Mean squared error ``mean((est - true)^2)``; MCSE ``sd((est - true)^2) / sqrt(n)``."""
    sq = (estimate - true) ** 2
    n = count(sq)
    return _need_two(_mean(sq, n), np.sqrt(_var(sq, n) / n), n)


def rmse(estimate: np.ndarray, true: np.ndarray | float) -> Pair:
    """Root mean squared error ``sqrt(mse)``; MCSE ``mse_mcse / (2 rmse)`` (delta method)."""
    value, mcse = mse(estimate, true)
    root = np.sqrt(value)
    with np.errstate(invalid="ignore", divide="ignore"):
        return root, mcse / (2 * root)


def coverage(lower: np.ndarray, upper: np.ndarray, true: np.ndarray | float) -> Pair:
    """Share of intervals ``[lower, upper]`` that contain ``true``; MCSE ``sqrt(p (1 - p) / n)``."""
    t = np.asarray(true, dtype=float)
    valid = np.isfinite(lower) & np.isfinite(upper) & np.isfinite(t)  # no true value: no coverage
    return _proportion((lower <= t) & (t <= upper), valid)


def be_coverage(estimate: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> Pair:
    """Bias-eliminated coverage: share of intervals that contain ``mean(est)``; MCSE as coverage."""
    centre = _mean(estimate, count(estimate))[..., None]
    return coverage(lower, upper, centre)


def wald_pvalue(estimate: np.ndarray, se: np.ndarray, df: np.ndarray | None = None, null: np.ndarray | float = 0.0,
                z: np.ndarray | bool = False) -> np.ndarray:
    """Two-sided p-value of ``(estimate - null) / se`` from the fit's own reference distribution.

    t with ``df`` where ``df`` is finite and positive; normal where ``df`` is ``+inf`` or where ``z`` is
    True (a fit that used a z interval reports df NaN); NaN otherwise (a fit whose df could not be
    computed has no test, never a silent z test).
    """
    est, s = np.asarray(estimate, dtype=float), np.asarray(se, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        stat = np.abs(est - np.asarray(null, dtype=float)) / s
        if df is None:
            return 2 * special.ndtr(-stat)
        d = np.asarray(df, dtype=float)
        finite = np.isfinite(d) & (d > 0)
        p_t = 2 * special.stdtr(np.where(finite, d, 1.0), -stat)
        p_z = 2 * special.ndtr(-stat)
    use_z = (d == np.inf) | (np.isnan(d) & np.asarray(z, dtype=bool))
    return np.where(finite, p_t, np.where(use_z, p_z, np.nan))


def rejections(pvalue: np.ndarray, alpha: float = 0.05) -> Pair:
    """Share of replicates with a p-value below ``alpha`` (among those with a p-value); binomial MCSE."""
    p = np.asarray(pvalue, dtype=float)
    return _proportion(p < alpha, ~np.isnan(p))


def power(lower: np.ndarray, upper: np.ndarray, null: float = 0.0) -> Pair:
    """Share of intervals that exclude ``null`` (rejections at the interval's level); binomial MCSE."""
    valid = np.isfinite(lower) & np.isfinite(upper)
    return _proportion((null < lower) | (null > upper), valid)


def rel_precision(estimate: np.ndarray, reference: np.ndarray) -> Pair:
    """Precision relative to a reference method, in percent: ``100 ((emp_se_ref / emp_se)^2 - 1)``.

    ``estimate`` and ``reference`` are the two methods' estimates on the same replicates (paired along
    the last axis by replicate id). Only replicates valid for both count. MCSE
    ``200 (emp_se_ref / emp_se)^2 sqrt((1 - rho^2) / (n - 1))``, rho the correlation of the two methods'
    estimates.
    """
    both = ~np.isnan(estimate) & ~np.isnan(reference)
    a = np.where(both, estimate, np.nan)
    b = np.where(both, reference, np.nan)
    n = np.sum(both, axis=-1)
    va, vb = _var(a, n), _var(b, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = np.nansum((a - _mean(a, n)[..., None]) * (b - _mean(b, n)[..., None]), axis=-1) / (n - 1)
        rho = np.clip(cov / np.sqrt(va * vb), -1.0, 1.0)
        ratio = vb / va
        mcse = 200 * ratio * np.sqrt((1 - rho**2) / (n - 1))
    return _need_two(100 * (ratio - 1), mcse, n)


def reps_needed(
    target_mcse: float,
    *,
    measure: Literal["coverage", "power", "bias"] = "coverage",
    p: float = 0.95,
    sd: float | None = None,
) -> int:
    """Replicates needed for a target MCSE.

    Coverage and power: ``p (1 - p) / mcse^2`` (``p = 0.5`` is the worst case). Bias: ``(sd / mcse)^2``
    where ``sd`` is the estimator's empirical SE (from a pilot run or a guess).

    Examples
    --------
    >>> reps_needed(0.005, measure="coverage", p=0.95)
    1900
    >>> reps_needed(0.01, measure="bias", sd=0.2)
    400
    """
    if not target_mcse > 0:
        raise ValueError(f"target MCSE must be positive, got {target_mcse!r}")
    if measure in ("coverage", "power"):
        if not 0 <= p <= 1:
            raise ValueError(f"p must lie in [0, 1], got {p!r}")
        need = p * (1 - p) / target_mcse**2
    elif measure == "bias":
        if sd is None or not sd > 0:
            raise ValueError("bias needs sd, the estimator's empirical SE (a positive number)")
        need = (sd / target_mcse) ** 2
    else:
        raise ValueError(f"measure must be coverage, power or bias, got {measure!r}")
    return max(2, math.ceil(round(need, 9)))


# --- xarray layer -------------------------------------------------------------------------------------


def summarize(
    estimates: xr.Dataset,
    *,
    level: float = 0.95,
    ref: Hashable | None = None,
    null: float = 0.0,
    use_limits: bool = False,
    alpha: float | None = None,
) -> xr.Dataset:
    """Reduce a replicate-level Dataset over ``rep`` to performance measures with MCSE.

    Parameters
    ----------
    estimates : xarray.Dataset
        Variables ``estimate``, ``se`` and ``true`` (broadcastable: it may lack ``rep``, ``estimator`` or
        design dimensions; where a method gives no SE at all for a parameter, the measures that need no SE
        are still computed from its estimates), optionally ``df`` (per-replicate degrees of freedom for t
        intervals; ``inf`` means z, NaN means no interval), ``ci_lower``/``ci_upper`` and ``present`` (False
        for a replicate that does not exist, so that it is not counted in ``n_rep``). Dimension ``rep``; every
        other dimension is kept.
    level : float
        Confidence level of the intervals for coverage and power.
    ref : hashable, optional
        Reference estimator (a coordinate of ``estimator``) for ``rel_precision``; without one it is NaN.
    null : float
        Null value for power (when ``power`` comes from the intervals).
    use_limits : bool
        Take the intervals from ``ci_lower``/``ci_upper`` instead of ``estimate +- crit * se``.
    alpha : float, optional
        With a ``pvalue`` variable, ``power`` is the share of replicates with ``pvalue < alpha`` (default
        ``1 - level``); without one, the share of intervals that exclude ``null``.

    Returns
    -------
    xarray.Dataset
        One variable per measure in :data:`MEASURES` and its ``<name>_mcse``; ``n_rep``, ``n_valid``,
        ``n_failed``, ``mean_estimate``, ``median_estimate``, ``true`` and ``note`` (why a measure is
        NaN, or empty).
    """
    if "rep" not in estimates.dims:
        raise ValueError("the estimates have no 'rep' dimension")
    for var in ("estimate", "se", "true"):
        if var not in estimates:
            raise ValueError(f"the estimates have no {var!r} variable")
    est_da, se_da = xr.broadcast(estimates["estimate"], estimates["se"])
    dims = [d for d in est_da.dims if d != "rep"] + ["rep"]
    est_da, se_da = est_da.transpose(*dims), se_da.transpose(*dims)
    keep = dims[:-1]
    coords = {d: est_da.coords[d] for d in keep if d in est_da.coords}

    def arr(name: str) -> np.ndarray:
        da = estimates[name].broadcast_like(est_da).transpose(*dims)
        return np.asarray(da.values, dtype=float)

    raw_est, raw_se = est_da.values.astype(float), se_da.values.astype(float)
    # a method that gives no SE at all for a parameter (a variance component, say) still has a bias,
    # an empirical SE and an MSE: the complete-pair rule applies where SEs exist
    no_se = np.all(np.isnan(raw_se) | np.isnan(raw_est), axis=-1, keepdims=True) & np.any(
        ~np.isnan(raw_est), axis=-1, keepdims=True)
    est, se = complete_pairs(raw_est, np.where(no_se, 0.0, raw_se))
    se = np.where(no_se, np.nan, se)
    true = arr("true")
    if use_limits:
        for var in ("ci_lower", "ci_upper"):
            if var not in estimates:
                raise ValueError(f"use_limits needs a {var!r} variable")
        ok = ~np.isnan(est)
        lower = np.where(ok, arr("ci_lower"), np.nan)
        upper = np.where(ok, arr("ci_upper"), np.nan)
    else:
        df = arr("df") if "df" in estimates else None
        lower, upper = intervals(est, se, level, df)

    n_valid = count(est)
    if "present" in estimates:
        n_rep = np.sum(arr("present") > 0, axis=-1)
    else:
        n_rep = np.full(n_valid.shape, est.shape[-1])

    results: dict[str, Pair] = {
        "bias": bias(est, true),
        "rel_bias": rel_bias(est, true),
        "emp_se": emp_se(est),
        "model_se": model_se(se),
        "rel_error": rel_error(est, se),
        "mse": mse(est, true),
        "rmse": rmse(est, true),
        "coverage": coverage(lower, upper, true),
        "be_coverage": be_coverage(est, lower, upper),
        "power": power(lower, upper, null),
    }
    if "pvalue" in estimates:
        pvalue = np.where(np.isnan(est), np.nan, arr("pvalue"))
        results["power"] = rejections(pvalue, 1 - level if alpha is None else alpha)
        n_tested = count(pvalue)
    else:
        n_tested = np.sum(np.isfinite(lower) & np.isfinite(upper), axis=-1)
    no_interval = np.sum(~np.isnan(est) & ~np.isnan(se) & ~(np.isfinite(lower) & np.isfinite(upper)), axis=-1)
    enough = n_valid >= 2
    conditions = [  # every reason that applies is kept, in this order, separated by "; "
        (n_valid < 2, lambda idx: "fewer than 2 valid replicates"),
        (no_se[..., 0] & enough, lambda idx: "no standard errors: estimate-only measures"),
        ((count(true) == 0) & enough, lambda idx: "no true value: bias, coverage and MSE not computed"),
        (np.any(true == 0, axis=-1) & enough, lambda idx: "rel_bias undefined: true value is 0"),
        ((no_interval > 0) & enough & ~no_se[..., 0],
         lambda idx: f"{no_interval[idx]} replicate(s) with an estimate and SE but no interval: not in coverage or "
                     "power"),
    ]
    note = np.full(n_valid.shape, "", dtype=object)
    for mask, text in conditions:
        mask = np.broadcast_to(mask, note.shape)
        for idx in zip(*np.nonzero(mask)) if mask.ndim else ([()] if mask else []):
            note[idx] = f"{note[idx]}; {text(idx)}" if note[idx] else text(idx)
    if ref is not None and "estimator" in keep:
        if ref not in est_da.coords["estimator"].values:
            raise ValueError(f"reference estimator {ref!r} is not among the estimators")
        axis = keep.index("estimator")
        ref_est = np.take(est, [list(est_da.coords["estimator"].values).index(ref)], axis=axis)
        results["rel_precision"] = rel_precision(est, np.broadcast_to(ref_est, est.shape))
    else:
        nan = np.full(n_valid.shape, np.nan)
        results["rel_precision"] = (nan, nan)

    data: dict[str, tuple] = {}
    for name in MEASURES:
        value, mcse = results[name]
        data[name] = (keep, np.asarray(value, dtype=float), {"units": _UNITS.get(name, "")})
        data[f"{name}_mcse"] = (keep, np.asarray(mcse, dtype=float), {"units": _UNITS.get(name, "")})
    power_hits = np.rint(np.nan_to_num(results["power"][0]) * n_tested)
    lower_cp, upper_cp = clopper_pearson(power_hits, n_tested)
    data["power_lower"] = (keep, lower_cp, {"description": "exact (Clopper-Pearson) 95% interval of power"})
    data["power_upper"] = (keep, upper_cp, {"description": "exact (Clopper-Pearson) 95% interval of power"})
    data["n_tested"] = (keep, np.asarray(n_tested).astype(np.int64))
    data["n_rep"] = (keep, n_rep.astype(np.int64))
    data["n_valid"] = (keep, n_valid.astype(np.int64))
    data["n_failed"] = (keep, (n_rep - n_valid).astype(np.int64))
    data["mean_estimate"] = (keep, _mean(est, n_valid))
    median = np.full(n_valid.shape, np.nan)
    has = n_valid > 0
    median[has] = np.nanmedian(est[has], axis=-1)
    data["median_estimate"] = (keep, median)
    has_true = count(true) > 0
    with np.errstate(invalid="ignore"):
        mean_true = np.nanmean(np.where(has_true[..., None], true, 0.0), axis=-1)
    data["true"] = (keep, np.where((n_rep > 0) & has_true, mean_true, np.nan))
    data["note"] = (keep, note.astype(str))
    out = xr.Dataset({k: v for k, v in data.items()}, coords=coords)
    out.attrs.update(level=level, null=null, ref="" if ref is None else str(ref),
                     intervals="limits" if use_limits else "wald",
                     power="pvalue < alpha" if "pvalue" in estimates else "interval excludes null",
                     alpha=1 - level if alpha is None else alpha)
    return out


_UNITS = {"coverage": "proportion", "be_coverage": "proportion", "power": "proportion",
          "rel_error": "percent", "rel_precision": "percent", "rel_bias": "fraction"}
