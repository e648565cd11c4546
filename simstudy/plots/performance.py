"""Performance plot: one measure against one design factor, one line per method, MCSE error bars."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from simstudy.measures import MEASURES
from simstudy.plots import _common as c

#: What ``measure`` may be: any summary measure, or ``"se"`` for the empirical and model SE together.
CHOICES: tuple[str, ...] = (*MEASURES, "se")


def plot_performance(
    ds: xr.Dataset,
    *,
    measure: str = "coverage",
    x: str | None = None,
    param: str | None = None,
    row: str | None = None,
    col: str | None = None,
    methods: Sequence[str] | None = None,
    select: Mapping[str, Any] | None = None,
    mcse: bool = True,
    level: float | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Plot a performance measure against one design factor, one line per method.

    Each point carries an error bar of +-1.96 Monte Carlo standard errors. The other factors that vary
    become facets (rows and columns of panels); factors held at one level are named in the title.
    Coverage gets a dashed line at the nominal level and a grey band of +-1.96 ``sqrt(level (1 - level) /
    n_rep)``, the spread expected from Monte Carlo error alone if the true coverage were nominal; bias,
    relative bias, relative error and relative precision get a line at 0.

    Parameters
    ----------
    ds : xarray.Dataset
        A summary dataset (``summary.nc``: a dimension per design factor, ``method`` and ``param``).
    measure : str
        A summary measure (``bias``, ``coverage``, ``rmse``, ``power``, ...), or ``"se"`` to draw the
        empirical SE (solid) and the mean model SE (dashed) of each method in one panel.
    x : str, optional
        Factor on the x axis (its levels evenly spaced, in order); default ``n_groups`` if it varies,
        else the first factor that varies.
    param : str, optional
        Parameter to show; default the study's first featured parameter (attribute ``show``), else the
        first parameter.
    row, col : str, optional
        Factors for the rows and columns of panels; by default the other factors that vary (one: columns;
        two: rows and columns). More than two left over is an error: fix some with ``select``.
    methods : sequence of str, optional
        Methods to draw (default all). Methods without any finite value are left out.
    select : mapping, optional
        Factors to hold at one level, e.g. ``{"icc": 0.2}``.
    mcse : bool
        Draw the +-1.96 MCSE error bars.
    level : float, optional
        Nominal coverage; default the dataset's ``level`` attribute (0.95).
    figsize : (float, float), optional
        Figure size in inches; default from the number of panels.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        For an unknown measure, factor, parameter or method, or when nothing is left to draw.

    Examples
    --------
    >>> from pathlib import Path
    >>> from simstudy.store import read_netcdf
    >>> summary = read_netcdf(Path("results/cluster_trial/summary.nc"))   # doctest: +SKIP
    >>> fig = plot_performance(summary, measure="coverage", x="n_groups", param="treat",
    ...                        row="group_size", col="icc")                # doctest: +SKIP
    >>> fig.savefig("coverage.png", dpi=100)                               # doctest: +SKIP
    """
    c.require_summary(ds, "plot_performance")
    c.check_measure(ds, measure, CHOICES)
    ds = c.select(ds, select)
    param = c.resolve_param(ds, param)
    methods = c.resolve_methods(ds, methods)
    nominal = c.level(ds, level)
    if not c.factors(ds):
        raise ValueError("plot_performance needs at least one design factor for the x axis")
    if x is None:
        moving = c.varying(ds)
        x = "n_groups" if "n_groups" in moving else (moving or c.factors(ds))[0]
    c.check_factor(ds, x, "x")
    row, col = c.facets(ds, x, row, col)
    sub, fixed = c.fixed_levels(ds.sel({"param": param}), keep=[f for f in (x, row, col) if f])

    n_rows = sub.sizes[row] if row else 1
    n_cols = sub.sizes[col] if col else 1
    fig, axes = c.facet_figure(n_rows, n_cols, figsize)

    levels = sub.coords[x].values
    positions = np.arange(len(levels), dtype=float)
    edges = np.arange(len(levels) + 1, dtype=float) - 0.5
    dodge = 0.07 if len(methods) > 1 and len(levels) > 1 else 0.0
    drawn = 0
    for i, j, where, panel in c.panels(sub, row, col):
        ax = axes[i, j]
        if measure == "se":
            drawn += c.draw_methods(ax, ds, panel, "emp_se", x, positions, methods, mcse=mcse, dodge=dodge)
            c.draw_methods(ax, ds, panel, "model_se", x, positions, methods, mcse=mcse, dodge=dodge,
                           ls="--", mfc="white", label="_nolegend_")
        else:
            drawn += c.draw_methods(ax, ds, panel, measure, x, positions, methods, mcse=mcse, dodge=dodge)
            c.draw_reference(ax, ds, measure, edges, c.cell_reps(panel, methods, [x]), nominal)
        ax.set_xticks(positions, [c.fmt(v) for v in levels])
        ax.set_xlim(edges[0], edges[-1])
        if where:
            ax.set_title(c.cell_label(where), fontsize=9)
        ax.grid(True, axis="y", color="0.9", lw=0.6)
        if i == n_rows - 1:
            ax.set_xlabel(x)
        if j == 0:
            ax.set_ylabel(_ylabel(ds, measure))
    if drawn == 0:
        raise ValueError(f"{measure} of {param!r} is missing (NaN) for every method and cell; "
                         "nothing to draw (a parameter without standard errors has no coverage or power)")
    c.legend(fig, axes.ravel(), first=methods)
    title = f"{measure} of {param}" if measure != "se" else f"empirical and model SE of {param}"
    c.suptitle(fig, title, fixed, mcse)
    return fig


def _ylabel(ds: xr.Dataset, measure: str) -> str:
    if measure == "se":
        return "emp_se (solid), model_se (dashed)"
    return c.axis_label(ds, measure)
