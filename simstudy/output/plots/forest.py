"""Forest (and lolly) plot: a measure with its Monte Carlo interval for every design cell and estimator.

One row per design cell; in each row one point per estimator at the value of the measure, with a
horizontal line for ``value +- 1.96 MCSE``, and a vertical reference line at the measure's target (0 for
bias, the nominal level for coverage). The lolly variant adds a stem from the target to each point, as
the lolly plots of rsimsum (Gasparini 2018) do.

Gasparini A (2018). rsimsum: Summarise results from Monte Carlo simulation studies. Journal of Open
Source Software 3(26):739.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
import xarray as xr
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from simstudy.output.plots.axes import round_ticks
from simstudy.output.plots.checks import (
    cell_table,
    check_choice,
    check_measure,
    choose,
    fixed_levels,
    nominal_level,
    require_summary,
    varying,
)
from simstudy.output.plots.draw import LEVEL_TARGET, REFERENCE, Z95, target
from simstudy.output.plots.labels import (
    cell_text,
    describe,
    estimator_labels,
    label,
    points,
    set_title,
    text_width,
    wrap,
)
from simstudy.output.plots.layout import legend, legend_width
from simstudy.output.plots.style import estimator_style, styled
from simstudy.stats.measures import MEASURES


@styled
def plot_forest(
    ds: xr.Dataset,
    *,
    measure: str = "bias",
    param: str | None = None,
    estimators: Sequence[str] | None = None,
    select: Mapping[str, Any] | None = None,
    layout: str = "dodge",
    lolly: bool = False,
    reference: float | str | None = "auto",
    level: float | None = None,
    title: str | bool | None = None,
    style: Any = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Plot a measure with its +-1.96 MCSE interval, one row per design cell, for every estimator.

    Parameters
    ----------
    ds : xarray.Dataset
        A summary dataset (``summary.nc``).
    measure : str
        A summary measure (``bias``, ``coverage``, ``rel_error``, ``rmse``, ...).
    param : str, optional
        Parameter to show; default the study's first featured parameter, else the first parameter.
    estimators : sequence of str, optional
        Estimators to draw (default all); estimators without a finite value anywhere are left out.
    select : mapping, optional
        Factors to hold at one level, e.g. ``{"icc": 0.2}``.
    layout : {"dodge", "facet"}
        ``"dodge"``: the estimators side by side within each row of one panel (colour, marker and a legend
        tell them apart); ``"facet"``: one panel per estimator, the rows shared.
    lolly : bool
        Draw a stem from the reference value (0 when the measure has none) to each point.
    reference : float, "auto" or None
        Where the vertical reference line goes: ``"auto"`` is 0 for bias, relative bias, relative error and
        relative precision, the nominal level for coverage, and no line for other measures.
    level : float, optional
        Nominal coverage; default the dataset's ``level`` attribute (0.95).
    title : str or bool, optional
        No title by default; ``True`` for a description of the figure, or the text.
    style : dict, str or list, optional
        Matplotlib rcParams (or a ``.mplstyle`` file or style name) merged on top of
        :data:`simstudy.output.plots.STYLE`.
    figsize : (float, float), optional
        Figure size in inches; default from the number of cells and estimators.

    Returns
    -------
    matplotlib.figure.Figure
        Per estimator a line of points (gid ``value:<estimator>``, x the values, y the rows) and a line
        collection of intervals (gid ``mcse:<estimator>``, one segment per finite value); the reference
        line has gid ``reference``. Rows are labelled with their cells (``n groups = 6, ICC = 0.2``), the
        first cell at the top.

    Raises
    ------
    ValueError
        For an unknown measure, parameter, estimator, factor or layout, or when nothing is left to draw.

    Examples
    --------
    >>> fig = plot_forest(summary, measure="coverage", param="treat")              # doctest: +SKIP
    >>> fig = plot_forest(summary, measure="bias", layout="facet", lolly=True)     # doctest: +SKIP
    """
    require_summary(ds, "plot_forest")
    check_measure(ds, measure, MEASURES)
    check_choice(layout, "layout", ("dodge", "facet"))
    ds, param, estimators = choose(ds, select, param, estimators)
    nominal = nominal_level(ds, level)
    if isinstance(reference, str):
        check_choice(reference, "reference", ("auto",))
        ref = target(measure, nominal)
    else:
        ref = None if reference is None else float(reference)
    order = varying(ds)
    sub, fixed = fixed_levels(ds.sel({"param": param}), keep=order)
    cells = cell_table(sub, order)
    values = sub[measure].transpose(*order, "estimator")
    errors = sub[f"{measure}_mcse"].transpose(*order, "estimator")
    data = {m: (np.asarray(values.sel({"estimator": m}).values, dtype=float).ravel(),
                Z95 * np.asarray(errors.sel({"estimator": m}).values, dtype=float).ravel()) for m in estimators}
    estimators = [m for m in estimators if np.any(np.isfinite(data[m][0]))]
    if not estimators:
        raise ValueError(f"{measure} of {param!r} is missing (NaN) for every estimator and cell; nothing to draw")
    names = estimator_labels(ds, estimators)
    rows = [cell_text(sub, cell) for cell in cells] if order else [cell_text(ds, fixed) or "All"]
    n = len(rows)
    y0 = np.arange(n, dtype=float)[::-1]  # the first cell at the top

    tick = points(mpl.rcParams["ytick.labelsize"])
    label_w = max(text_width(t, tick) for t in rows) + 0.5
    k = len(estimators)
    if figsize is None:
        if layout == "dodge":
            width = label_w + 2.6 + legend_width(names)
            height = 0.75 + n * max(0.24, 0.09 * k)
        else:
            width = label_w + k * 1.45 + 0.2
            height = 0.95 + n * 0.24
        figsize = (min(width, 12.0), min(height, 22.0))
    fig = Figure(figsize=figsize, layout="constrained")
    n_panels = 1 if layout == "dodge" else k
    axes = fig.subplots(1, n_panels, squeeze=False, sharey=True, sharex=True)[0]
    step = min(0.8 / k, 0.2) if layout == "dodge" and k > 1 else 0.0
    panel_w = max((fig.get_figwidth() - label_w) / n_panels, 0.8)
    for j, m in enumerate(estimators):
        ax = axes[j if layout == "facet" else 0]
        st = estimator_style(ds, m)
        x, half = data[m]
        y = y0 - (j - (k - 1) / 2) * step
        ok = np.isfinite(x)
        if lolly:
            base = ref if ref is not None else 0.0
            stems = LineCollection([[(base, yy), (xx, yy)] for xx, yy in zip(x[ok], y[ok])], colors=st["color"],
                                   linewidths=0.8, alpha=0.6, zorder=1)
            stems.set_gid(f"stem:{m}")
            ax.add_collection(stems)
        good = ok & np.isfinite(half)
        bars = LineCollection([[(xx - h, yy), (xx + h, yy)] for xx, h, yy in zip(x[good], half[good], y[good])],
                              colors=st["color"], linewidths=1.1, zorder=2)
        bars.set_gid(f"mcse:{m}")
        ax.add_collection(bars)
        ax.plot(x[ok], y[ok], ls="none", marker=st["marker"], color=st["color"], ms=4.2, zorder=3,
                label=names[j], gid=f"value:{m}")
        if layout == "facet":
            ax.set_title(wrap(names[j], panel_w, mpl.rcParams["axes.titlesize"]))
    for ax in axes:
        if ref is not None:
            ax.axvline(ref, color=REFERENCE, ls=(0, (3, 2)), lw=0.8, zorder=0,
                       label=_ref_label(measure, ref)).set_gid("reference")
        for b in y0[:-1] - 0.5:
            ax.axhline(b, color="0.92", lw=0.6, zorder=0)
        ax.autoscale_view()
        ax.margins(x=0.08)
        ax.set_ylim(-0.6, n - 0.4)
        ax.tick_params(axis="y", length=0)
        round_ticks(ax, 4 if layout == "facet" else 6)
    axes[0].set_yticks(y0, rows)
    if layout == "dodge" or k == 1:
        axes[0].set_xlabel(label(ds, measure))
    else:
        fig.supxlabel(label(ds, measure), fontsize=mpl.rcParams["axes.labelsize"])
    if layout == "dodge":
        legend(fig, [axes[0]], first=names)
    what = f"{label(ds, measure)} of {label(ds, param)} with \u00b11.96 MCSE intervals"
    set_title(fig, title, lambda: describe(what, fixed, ds, False))
    return fig


def _ref_label(measure: str, ref: float) -> str:
    if measure in LEVEL_TARGET:
        return f"Nominal {ref:g}"
    return f"Target {ref:g}"
