"""Zip plot of coverage (Morris, White & Crowther 2019): every replicate's interval, ranked by |z|.

For one design cell and one parameter, each valid replicate's confidence interval is a horizontal line at
the height of its fractional centile of ``|z| = |estimate - true| / se``. Intervals that contain the true
value (light blue, thin) sit at the bottom, those that miss it (vermilion, thicker) at the top; the
boundary between the colours is the coverage, drawn with its Monte Carlo 95% interval (orange band) beside
the nominal level. Whether the misses lie to
the left or right of the truth shows bias; intervals that are too narrow show up as misses with small |z|.

Morris TP, White IR, Crowther MJ (2019). Using simulation studies to evaluate statistical estimators.
Statistics in Medicine 38:2074-2102, section 5.3 and figure 4.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import matplotlib as mpl
import numpy as np
import xarray as xr
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from simstudy.output.plots.axes import round_ticks
from simstudy.output.plots.checks import (
    check_choice,
    nominal_level,
    one_cell,
    require_estimates,
    resolve_estimators,
    resolve_param,
)
from simstudy.output.plots.draw import Z95
from simstudy.output.plots.labels import cell_text, estimator_labels, label, set_title, wrap
from simstudy.output.plots.layout import columns, legend
from simstudy.output.plots.style import styled
from simstudy.stats.measures import intervals as wald_intervals

#: Colours of the intervals that cover the true value and of those that miss it (Okabe-Ito sky blue and
#: vermilion: apart for colour-blind readers and, being light and dark, in greyscale).
COVERS = "#56B4E9"
MISSES = "#D55E00"

#: Colour of the Monte Carlo interval of the coverage.
BAND = "#E69F00"


@styled
def plot_zip(
    ds: xr.Dataset,
    *,
    cell: Mapping[str, Any] | None = None,
    param: str | None = None,
    estimators: Sequence[str] | None = None,
    level: float = 0.95,
    intervals: Literal["wald", "limits"] = "limits",
    title: str | bool | None = None,
    style: Any = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Zip plot of the confidence intervals of one cell and parameter, one panel per estimator.

    Parameters
    ----------
    ds : xarray.Dataset
        The replicate-level estimates (``estimates.nc``: ``estimate``, ``se``, ``true``, optionally ``df``,
        ``ci_lower`` and ``ci_upper``; dimensions per factor, ``rep``, ``estimator``, ``param``).
    cell : mapping, optional
        A level for every factor that varies, e.g. ``{"n_groups": 6, "icc": 0.2}``; factors with one level
        may be left out. Required when the design has more than one cell.
    param : str, optional
        The parameter; default the study's first featured parameter, else the first parameter.
    estimators : sequence of str, optional
        Estimators to show, one panel each (default all), four to a row.
    level : float
        Confidence level of the intervals (the estimators' level, 0.95 by default).
    intervals : {"limits", "wald"}
        ``"limits"`` (default): the fits' own intervals ``ci_lower`` and ``ci_upper``, from which the
        summary computes coverage; ``"wald"``: ``estimate +- crit * se`` with t quantiles where ``df`` is
        finite (a replicate whose df is NaN has no interval).
    title : str or bool, optional
        No title by default; ``True`` for a description (parameter and cell), or the text.
    style : dict, str or list, optional
        Matplotlib rcParams (or a ``.mplstyle`` file or style name) merged on top of
        :data:`simstudy.output.plots.STYLE`.
    figsize : (float, float), optional
        Figure size in inches.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per estimator (titled with its label and coverage); in each, two line collections (gid
        ``covers`` and ``misses``) hold one segment per valid replicate (finite estimate and SE).

    Raises
    ------
    ValueError
        For a summary dataset, an unknown parameter or estimator, a missing or unknown cell, or a parameter
        without standard errors.

    Examples
    --------
    >>> estimates = read_netcdf(Path("results/cluster_trial/estimates.nc"))        # doctest: +SKIP
    >>> fig = plot_zip(estimates, cell={"n_groups": 6, "group_size": 20, "icc": 0.2},
    ...                param="treat")                                            # doctest: +SKIP
    """
    require_estimates(ds, "plot_zip")
    check_choice(intervals, "intervals", ("limits", "wald"))
    if intervals == "limits" and not {"ci_lower", "ci_upper"} <= set(ds.data_vars):
        raise ValueError("intervals='limits' needs the variables ci_lower and ci_upper")
    nominal = nominal_level(ds, level)
    param = resolve_param(ds, param)
    estimators = resolve_estimators(ds, estimators)
    one, where = one_cell(ds, cell)
    one = one.sel({"param": param})
    true = float(np.asarray(one["true"].values, dtype=float).ravel()[0])

    n_cols = min(len(estimators), 4)
    n_rows = -(-len(estimators) // n_cols)
    names = estimator_labels(ds, estimators)
    handles = [
        LineCollection([], color=COVERS, lw=0.8, label="Covers the true value"),
        LineCollection([], color=MISSES, lw=1.0, label="Misses the true value"),
    ]
    if figsize is None:
        width = min(2.0 * n_cols + 0.8, 7.5)
        entries = [h.get_label() for h in handles] + ["Coverage \u00b11.96 MCSE", f"Nominal {nominal:.0%}",
                                                      f"True value {true:g}"]
        legend_rows = -(-len(entries) // columns(entries, width))
        figsize = (width, 2.35 * n_rows + 0.55 + 0.16 * legend_rows)
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False, sharey=True)
    panel_w = max((fig.get_figwidth() - 0.8) / n_cols, 0.8)
    any_se = False
    for k, m in enumerate(estimators):
        ax = axes.ravel()[k]
        r = one.sel({"estimator": m})
        true = float(np.asarray(r["true"].values, dtype=float).ravel()[0])  # each estimator's own estimand
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
        size = mpl.rcParams["axes.titlesize"]
        ax.set_title(wrap(names[k], panel_w, size) + "\n" + _coverage_text(lower[ok], upper[ok], true),
                     fontsize=size)
        round_ticks(ax, 4)
        if k % n_cols == 0:
            ax.set_ylabel("Centile of |z| (%)")
    if not any_se:
        raise ValueError(f"{param!r} has no standard errors in this cell, so no intervals to plot")
    for ax in axes.ravel()[len(estimators):]:
        ax.set_visible(False)
    xlabel = wrap(f"{nominal:.0%} interval for {label(ds, param)}", panel_w, mpl.rcParams["axes.labelsize"])
    for ax in axes.ravel()[:len(estimators)]:
        ax.set_xlabel(xlabel)
    legend(fig, [axes.ravel()[0]], first=[h.get_label() for h in handles], loc="outside lower center",
           handles={h.get_label(): h for h in handles})
    set_title(fig, title, lambda: f"Zip plot of {label(ds, param)} at {cell_text(ds, where)}")
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
        coll = LineCollection(segs, colors=colour, linewidths=0.6 if gid == "covers" else 0.8, alpha=0.9)
        coll.set_gid(gid)
        ax.add_collection(coll)
    if n:
        cov = float(covers.mean())
        half = Z95 * np.sqrt(cov * (1 - cov) / n)
        ax.axhspan(100 * (cov - half), 100 * (cov + half), color=BAND, alpha=0.35, lw=0,
                   label="Coverage \u00b11.96 MCSE").set_gid("coverage_band")
        spread = np.nanpercentile(np.concatenate([lo, hi]), [0.5, 99.5])
        pad = 0.05 * (spread[1] - spread[0] or 1.0)
        ax.set_xlim(min(spread[0], true) - pad, max(spread[1], true) + pad)
    else:
        ax.text(0.5, 0.5, "No valid replicates", ha="center", va="center", transform=ax.transAxes)
    ax.axhline(100 * nominal, color="0.2", ls=(0, (3, 2)), lw=0.8, label=f"Nominal {nominal:.0%}").set_gid("nominal")
    ax.axvline(true, color="0.2", lw=0.8, label=f"True value {true:g}").set_gid("true")
    ax.set_ylim(0, 100)


def _coverage_text(lower: np.ndarray, upper: np.ndarray, true: float) -> str:
    n = lower.size
    if n == 0:
        return "no valid replicates"
    cov = float(np.mean((lower <= true) & (true <= upper)))
    return f"coverage {cov:.3f} ({np.sqrt(cov * (1 - cov) / n):.3f})\nn = {n}"
