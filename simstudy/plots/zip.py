"""Zip plot of coverage (Morris, White & Crowther 2019): every replicate's interval, ranked by |z|.

For one design cell and one parameter, each valid replicate's confidence interval is a horizontal line at
the height of its fractional centile of ``|z| = |estimate - true| / se``. Intervals that contain the true
value (blue) sit at the bottom, those that miss it (red) at the top; the boundary between the colours is
the coverage, drawn with its Monte Carlo 95% interval beside the nominal level. Whether the misses lie to
the left or right of the truth shows bias; intervals that are too narrow show up as misses with small |z|.

Morris TP, White IR, Crowther MJ (2019). Using simulation studies to evaluate statistical methods.
Statistics in Medicine 38:2074-2102, section 5.3 and figure 4.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import xarray as xr
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from simstudy.measures import intervals as wald_intervals
from simstudy.plots import _common as c

COVERS = "#1f77b4"
MISSES = "#d62728"


def plot_zip(
    ds: xr.Dataset,
    *,
    cell: Mapping[str, Any] | None = None,
    param: str | None = None,
    methods: Sequence[str] | None = None,
    level: float = 0.95,
    intervals: Literal["wald", "limits"] = "limits",
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Zip plot of the confidence intervals of one cell and parameter, one panel per method.

    Parameters
    ----------
    ds : xarray.Dataset
        The replicate-level estimates (``estimates.nc``: ``estimate``, ``se``, ``true``, optionally ``df``,
        ``ci_lower`` and ``ci_upper``; dimensions per factor, ``rep``, ``method``, ``param``).
    cell : mapping, optional
        A level for every factor that varies, e.g. ``{"n_groups": 6, "icc": 0.2}``; factors with one level
        may be left out. Required when the design has more than one cell.
    param : str, optional
        The parameter; default the study's first featured parameter, else the first parameter.
    methods : sequence of str, optional
        Methods to show, one panel each (default all).
    level : float
        Confidence level of the intervals (the estimators' level, 0.95 by default).
    intervals : {"limits", "wald"}
        ``"limits"`` (default): the fits' own intervals ``ci_lower`` and ``ci_upper``, from which the
        summary computes coverage; ``"wald"``: ``estimate +- crit * se`` with t quantiles where ``df`` is
        finite (a replicate whose df is NaN has no interval).
    figsize : (float, float), optional
        Figure size in inches.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per method; in each, two line collections (gid ``covers`` and ``misses``) hold one
        segment per valid replicate (finite estimate and SE).

    Raises
    ------
    ValueError
        For a summary dataset, an unknown parameter or method, a missing or unknown cell, or a parameter
        without standard errors.

    Examples
    --------
    >>> estimates = read_netcdf(Path("results/cluster_trial/estimates.nc"))        # doctest: +SKIP
    >>> fig = plot_zip(estimates, cell={"n_groups": 6, "group_size": 20, "icc": 0.2},
    ...                param="treat")                                            # doctest: +SKIP
    """
    if not isinstance(ds, xr.Dataset) or "rep" not in ds.dims or "estimate" not in ds:
        raise ValueError("plot_zip needs the replicate-level estimates (estimates.nc) with a 'rep' dimension")
    if intervals not in ("wald", "limits"):
        raise ValueError(f"intervals must be 'wald' or 'limits', got {intervals!r}")
    if intervals == "limits" and not {"ci_lower", "ci_upper"} <= set(ds.data_vars):
        raise ValueError("intervals='limits' needs the variables ci_lower and ci_upper")
    nominal = c.level(ds, level)
    param = c.resolve_param(ds, param)
    methods = c.resolve_methods(ds, methods)
    cell = dict(cell or {})
    for f in cell:
        c.check_factor(ds, f, "cell")
    missing = [f for f in c.varying(ds) if f not in cell]
    if missing:
        levels = "; ".join(f"{f}: {', '.join(c.fmt(v) for v in ds.coords[f].values)}" for f in missing)
        raise ValueError(f"choose a cell: give cell= a level of {', '.join(missing)} ({levels})")
    where = {f: cell.get(f, ds.coords[f].values[0]) for f in c.factors(ds)}
    one = ds.isel({f: c.level_index(ds, f, v) for f, v in where.items()}).sel({"param": param})
    true = float(np.asarray(one["true"].values, dtype=float).ravel()[0])

    n_cols = min(len(methods), 4)
    n_rows = -(-len(methods) // n_cols)
    if figsize is None:
        figsize = (3.1 * n_cols + 0.6, 3.3 * n_rows + 0.7)
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False, sharey=True)
    any_se = False
    for k, m in enumerate(methods):
        ax = axes.ravel()[k]
        r = one.sel({"method": m})
        est = np.asarray(r["estimate"].values, dtype=float)
        se = np.asarray(r["se"].values, dtype=float)
        if intervals == "limits":
            lower = np.asarray(r["ci_lower"].values, dtype=float)
            upper = np.asarray(r["ci_upper"].values, dtype=float)
        else:
            df = np.asarray(r["df"].values, dtype=float) if "df" in r else None
            lower, upper = wald_intervals(est, se, nominal, df)
        ok = np.isfinite(est) & np.isfinite(se) & np.isfinite(lower) & np.isfinite(upper)
        any_se = any_se or bool(np.any(np.isfinite(se)))
        _panel(ax, est[ok], se[ok], lower[ok], upper[ok], true, nominal)
        ax.set_title(f"{m}\n{_coverage_text(lower[ok], upper[ok], true)}", fontsize=9)
        if k % n_cols == 0:
            ax.set_ylabel("fractional centile of |z| (%)")
        ax.set_xlabel(f"{nominal:.0%} interval for {param}")
    if not any_se:
        raise ValueError(f"{param!r} has no standard errors in this cell, so no intervals to plot")
    for ax in axes.ravel()[len(methods):]:
        ax.set_visible(False)
    handles = [
        LineCollection([], color=COVERS, label="covers the true value"),
        LineCollection([], color=MISSES, label="misses the true value"),
    ]
    extra, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles + extra, [h.get_label() for h in handles] + labels, loc="outside lower center",
               ncol=5, frameon=False, fontsize=8)
    fig.suptitle(f"zip plot of {param} at {c.cell_label(where)}", fontsize=10)
    return fig


def _panel(ax: Any, est: np.ndarray, se: np.ndarray, lower: np.ndarray, upper: np.ndarray, true: float,
           nominal: float) -> None:
    """Draw one method's intervals ranked by |z|, with the truth, the nominal level and the coverage CI."""
    n = est.size
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.abs(est - true) / se
    z = np.where(np.isfinite(z), z, np.inf)  # se = 0 and est != true: ranks at the top
    rank = np.argsort(z, kind="stable")
    centile = 100.0 * (np.arange(1, n + 1)) / max(n, 1)
    lo, hi = lower[rank], upper[rank]
    covers = (lo <= true) & (true <= hi)
    for mask, colour, gid in ((covers, COVERS, "covers"), (~covers, MISSES, "misses")):
        segs = np.stack([np.column_stack([lo[mask], centile[mask]]),
                         np.column_stack([hi[mask], centile[mask]])], axis=1) if mask.any() else []
        coll = LineCollection(segs, colors=colour, linewidths=0.6, alpha=0.8)
        coll.set_gid(gid)
        ax.add_collection(coll)
    if n:
        cov = float(covers.mean())
        half = c.Z95 * np.sqrt(cov * (1 - cov) / n)
        ax.axhspan(100 * (cov - half), 100 * (cov + half), color="#ffbf00", alpha=0.35, lw=0,
                   label="coverage \u00b11.96 MCSE").set_gid("coverage_band")
        spread = np.nanpercentile(np.concatenate([lo, hi]), [0.5, 99.5])
        pad = 0.05 * (spread[1] - spread[0] or 1.0)
        ax.set_xlim(min(spread[0], true) - pad, max(spread[1], true) + pad)
    else:
        ax.text(0.5, 0.5, "no valid replicates", ha="center", va="center", transform=ax.transAxes)
    ax.axhline(100 * nominal, color="0.2", ls="--", lw=1, label=f"nominal {nominal:.0%}").set_gid("nominal")
    ax.axvline(true, color="0.2", lw=1, label=f"true value {true:g}").set_gid("true")
    ax.set_ylim(0, 100)


def _coverage_text(lower: np.ndarray, upper: np.ndarray, true: float) -> str:
    n = lower.size
    if n == 0:
        return "no valid replicates"
    cov = float(np.mean((lower <= true) & (true <= upper)))
    return f"coverage {cov:.3f} ({np.sqrt(cov * (1 - cov) / n):.3f}), n = {n}"
