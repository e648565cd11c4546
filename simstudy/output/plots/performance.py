"""Performance plot: one measure against one design factor, one line per estimator, MCSE error bars."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from simstudy.output.display import fmt
from simstudy.output.plots.axes import dodge, edges, fit_ticklabels, level_axis, limits, positions, x_scale
from simstudy.output.plots.checks import (
    check_factor,
    check_measure,
    choose,
    factors,
    fixed_levels,
    nominal_level,
    require_summary,
    varying,
)
from simstudy.output.plots.draw import cell_reps, draw_estimators, draw_reference, proxy
from simstudy.output.plots.labels import describe, estimator_labels, factor_label, label, set_title
from simstudy.output.plots.layout import (
    axis_labels,
    facet_figure,
    facets,
    legend,
    panel_size,
    panels,
    place_legend,
    strip_width,
    strips,
)
from simstudy.output.plots.style import estimator_style, styled
from simstudy.stats.measures import MEASURES

#: What ``measure`` may be: any summary measure, or ``"se"`` for the empirical and model SE together.
CHOICES: tuple[str, ...] = (*MEASURES, "se")

#: How the two SEs of ``measure="se"`` are drawn. The empirical SE is a broad pale line with large filled
#: markers, the model SE a thin dashed line with small open markers drawn on top of it (higher zorder),
#: so that where the two coincide the dashes still show on the pale line, in colour and in greyscale.
EMPIRICAL_SE: dict[str, Any] = {"ls": "-", "lw": 2.6, "alpha": 0.45, "ms": 6.0, "zorder": 2}
MODEL_SE: dict[str, Any] = {"ls": (0, (3.0, 1.6)), "lw": 1.1, "ms": 3.4, "mfc": "white", "mew": 1.0, "zorder": 3}


@styled
def plot_performance(
    ds: xr.Dataset,
    *,
    measure: str = "coverage",
    x: str | None = None,
    param: str | None = None,
    row: str | None = None,
    col: str | None = None,
    estimators: Sequence[str] | None = None,
    select: Mapping[str, Any] | None = None,
    mcse: bool = True,
    level: float | None = None,
    xscale: str = "auto",
    title: str | bool | None = None,
    style: Any = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Plot a performance measure against one design factor, one line per estimator.

    Each point carries an error bar of +-1.96 Monte Carlo standard errors. The other factors that vary
    become facets (rows and columns of panels, labelled like ``ICC = 0.2``). Coverage gets a dashed line
    at the nominal level and a grey band of +-1.96 ``sqrt(level (1 - level) / n_rep)``, the spread
    expected from Monte Carlo error alone if the true coverage were nominal; bias, relative bias, relative
    error and relative precision get a dashed line at 0. Each estimator has its own colour, marker and
    dash pattern; names on the figure come from the study's ``labels``.

    Parameters
    ----------
    ds : xarray.Dataset
        A summary dataset (``summary.nc``: a dimension per design factor, ``estimator`` and ``param``).
    measure : str
        A summary measure (``bias``, ``coverage``, ``rmse``, ``power``, ...), or ``"se"`` to draw the
        empirical SE (broad pale line, filled markers) and the mean model SE (thin dashed line, open
        markers, on top) of each estimator in one panel.
    x : str, optional
        Factor on the x axis; default ``n_groups`` if it varies, else the first factor that varies.
    param : str, optional
        Parameter to show; default the study's first featured parameter (attribute ``show``), else the
        first parameter.
    row, col : str, optional
        Factors for the rows and columns of panels; by default the other factors that vary (one: columns;
        two: rows and columns). More than two left over is an error: fix some with ``select``.
    estimators : sequence of str, optional
        Estimators to draw (default all). Estimators without any finite value are left out.
    select : mapping, optional
        Factors to hold at one level, e.g. ``{"icc": 0.2}``.
    mcse : bool
        Draw the +-1.96 MCSE error bars.
    level : float, optional
        Nominal coverage; default the dataset's ``level`` attribute (0.95).
    xscale : {"auto", "linear", "log", "category"}
        A numeric factor is drawn to scale (``"auto"``: on a log axis when its levels are geometric, such
        as 5, 10, 20, 40); ``"category"`` spaces the levels evenly. Ticks sit at the levels when their
        labels fit, else at round numbers.
    title : str or bool, optional
        No title by default (the caption belongs to the paper); ``True`` for a title that describes the
        figure, or the title's text.
    style : dict, str or list, optional
        Matplotlib rcParams (or a ``.mplstyle`` file or style name) merged on top of
        :data:`simstudy.output.plots.STYLE`.
    figsize : (float, float), optional
        Figure size in inches; default from the number of panels.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        For an unknown measure, factor, parameter or estimator, or when nothing is left to draw.

    Examples
    --------
    >>> from pathlib import Path
    >>> from simstudy.engine.store import read_netcdf
    >>> summary = read_netcdf(Path("results/cluster_trial/summary.nc"))   # doctest: +SKIP
    >>> fig = plot_performance(summary, measure="coverage", x="n_groups", param="treat",
    ...                        row="group_size", col="icc")                # doctest: +SKIP
    >>> save_figure(fig, "figures/coverage")                             # doctest: +SKIP
    """
    require_summary(ds, "plot_performance")
    check_measure(ds, measure, CHOICES)
    ds, param, estimators = choose(ds, select, param, estimators)
    nominal = nominal_level(ds, level)
    if not factors(ds):
        raise ValueError("plot_performance needs at least one design factor for the x axis")
    if x is None:
        moving = varying(ds)
        x = "n_groups" if "n_groups" in moving else (moving or factors(ds))[0]
    check_factor(ds, x, "x")
    row, col = facets(ds, x, row, col)
    sub, fixed = fixed_levels(ds.sel({"param": param}), keep=[f for f in (x, row, col) if f])
    scale = x_scale(sub, x, xscale)
    if scale != "category":
        sub = sub.sortby(x)
    pos = positions(sub, x, scale)
    shifted = dodge(pos, len(estimators), scale)

    names = estimator_labels(ds, estimators)
    entries = names + (["Empirical SE", "Model SE"] if measure == "se" else ["Monte Carlo band", "Nominal 0.95"])
    n_rows = sub.sizes[row] if row else 1
    n_cols = sub.sizes[col] if col else 1
    where = place_legend(entries, n_cols)
    extra = where.width + strip_width(sub, row)
    fig, axes = facet_figure(n_rows, n_cols, figsize, extra_width=extra, extra_height=where.height,
                             min_width=where.min_width)
    room = panel_size(fig, n_rows, n_cols, extra, where.height)
    xlim = limits(pos, scale)
    bounds = edges(pos, scale, xlim) if scale != "category" else np.arange(len(pos) + 1) - 0.5
    drawn = 0
    for i, j, _, panel in panels(sub, row, col):
        ax = axes[i, j]
        if measure == "se":
            drawn += draw_estimators(ax, ds, panel, "emp_se", x, shifted, estimators, mcse=mcse,
                                     gid="emp_se", **EMPIRICAL_SE)
            draw_estimators(ax, ds, panel, "model_se", x, shifted, estimators, mcse=mcse, gid="model_se",
                            label="_nolegend_", **MODEL_SE)
        else:
            drawn += draw_estimators(ax, ds, panel, measure, x, shifted, estimators, mcse=mcse)
            draw_reference(ax, ds, measure, bounds, cell_reps(panel, estimators, [x]), nominal)
        level_axis(ax, sub, x, scale, pos)
        ax.grid(True, axis="y")
    if drawn == 0:
        raise ValueError(f"{measure} of {param!r} is missing (NaN) for every estimator and cell; "
                         "nothing to draw (a parameter without standard errors has no coverage or power)")
    if scale == "category":
        step = room[0] / max(len(pos), 1)
        for ax in axes[-1, :]:
            fit_ticklabels(ax, [fmt(v) for v in sub.coords[x].values], step)
    strips(axes, sub, row, col, room)
    axis_labels(fig, axes, factor_label(ds, x), label(ds, measure), shared_x=not where.below)
    handles = {name: proxy(**_plain(estimator_style(ds, m), solid=measure == "se"))
               for m, name in zip(estimators, names)}
    if measure == "se":
        handles |= {"Empirical SE": proxy(marker="o", **{k: v for k, v in EMPIRICAL_SE.items() if k != "zorder"}),
                    "Model SE": proxy(marker="o", **{k: v for k, v in MODEL_SE.items() if k != "zorder"})}
    legend(fig, axes.ravel(), first=names, loc=where.loc, handles=handles)
    what = f"{label(ds, measure)} of {label(ds, param)}" if measure != "se" else \
        f"Empirical and model SE of {label(ds, param)}"
    set_title(fig, title, lambda: describe(what, fixed, ds, mcse))
    return fig


def _plain(st: dict[str, Any], solid: bool = False) -> dict[str, Any]:
    """An estimator's style as a legend line (no error bar)."""
    return {"color": st["color"], "marker": st["marker"], "ls": "-" if solid else st["ls"]}
