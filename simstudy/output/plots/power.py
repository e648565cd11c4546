"""Power curves: the share of intervals that exclude the null against the number of groups."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import xarray as xr
from matplotlib.figure import Figure

from simstudy.output.display import fmt
from simstudy.output.plots.axes import dodge, level_axis, positions, x_scale
from simstudy.output.plots.checks import (
    check_choice,
    check_factor,
    check_measure,
    choose,
    factors,
    fixed_levels,
    is_numeric,
    nominal_level,
    require_summary,
    varying,
)
from simstudy.output.plots.draw import REFERENCE, draw_estimators, proxy
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


@styled
def plot_power(
    ds: xr.Dataset,
    *,
    x: str | None = None,
    param: str | None = None,
    target: float | None = 0.8,
    row: str | None = None,
    col: str | None = None,
    estimators: Sequence[str] | None = None,
    select: Mapping[str, Any] | None = None,
    mcse: bool = True,
    interval: str = "exact",
    xscale: str = "auto",
    title: str | bool | None = None,
    style: Any = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Plot power against a numeric design factor (the number of groups), one curve per estimator.

    Power is the share of valid replicates whose interval excludes the null value (attribute ``null``,
    0 by default), so where the true effect is the null it is the type I error rate. The x axis is to
    scale (a log axis for geometric levels), so the curves can be read between the design points; a dashed
    line marks the target power. Other varying factors become facets as in
    :func:`~simstudy.output.plots.plot_performance`.

    Parameters
    ----------
    ds : xarray.Dataset
        A summary dataset (``summary.nc``).
    x : str, optional
        A numeric factor for the x axis; default ``n_groups`` if present, else the first numeric factor
        that varies.
    param : str, optional
        The parameter tested; default the study's first featured parameter, else the first parameter.
    target : float or None
        Target power drawn as a horizontal line (default 0.8); None for no line.
    row, col : str, optional
        Factors for rows and columns of panels (default: the other factors that vary).
    estimators : sequence of str, optional
        Estimators to draw (default all with a finite power somewhere).
    select : mapping, optional
        Factors to hold at one level, e.g. ``{"treatment_effect": 0.3}``.
    mcse : bool
        Draw error bars.
    interval : {"exact", "mcse"}
        The error bars: the exact (Clopper-Pearson) 95% interval of each power (``power_lower``,
        ``power_upper``; the default where the summary has them), or +-1.96 MCSE.
    xscale : {"auto", "linear", "log"}
        Scale of the x axis; ``"auto"`` uses a log axis when the levels are geometric.
    title : str or bool, optional
        No title by default; ``True`` for a description (with the null hypothesis), or the text.
    style : dict, str or list, optional
        Matplotlib rcParams (or a ``.mplstyle`` file or style name) merged on top of
        :data:`simstudy.output.plots.STYLE`.
    figsize : (float, float), optional
        Figure size in inches.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        For an unknown or non-numeric factor, an unknown parameter or estimator, a target outside (0, 1),
        or a parameter without any power (no standard errors).

    Examples
    --------
    >>> fig = plot_power(summary, param="treat", target=0.8)   # doctest: +SKIP
    """
    require_summary(ds, "plot_power")
    check_measure(ds, "power")
    if target is not None and not 0 < target < 1:
        raise ValueError(f"target power must lie between 0 and 1, got {target!r}")
    check_choice(xscale, "xscale", ("auto", "linear", "log"))
    check_choice(interval, "interval", ("exact", "mcse"))
    bounds = ("power_lower", "power_upper") if interval == "exact" and "power_lower" in ds else None
    ds, param, estimators = choose(ds, select, param, estimators)
    numeric = [f for f in factors(ds) if is_numeric(ds, f)]
    if x is None:
        moving = [f for f in varying(ds) if f in numeric]
        if "n_groups" in numeric:
            x = "n_groups"
        elif moving or numeric:
            x = (moving or numeric)[0]
        else:
            raise ValueError("plot_power needs a numeric design factor for the x axis; the design has none")
    check_factor(ds, x, "x")
    if x not in numeric:
        raise ValueError(f"factor {x!r} is not numeric; power curves need a numeric x such as n_groups")
    row, col = facets(ds, x, row, col)
    sub, fixed = fixed_levels(ds.sel({"param": param}), keep=[f for f in (x, row, col) if f])
    sub = sub.sortby(x)
    scale = x_scale(sub, x, xscale)
    pos = positions(sub, x, scale)
    shifted = dodge(pos, len(estimators), scale)

    names = estimator_labels(ds, estimators)
    entries = names + ([f"Target power {target:g}"] if target is not None else [])
    n_rows = sub.sizes[row] if row else 1
    n_cols = sub.sizes[col] if col else 1
    where = place_legend(entries, n_cols)
    extra = where.width + strip_width(sub, row)
    fig, axes = facet_figure(n_rows, n_cols, figsize, extra_width=extra, extra_height=where.height,
                             min_width=where.min_width)
    room = panel_size(fig, n_rows, n_cols, extra, where.height)
    drawn = 0
    for i, j, _, panel in panels(sub, row, col):
        ax = axes[i, j]
        drawn += draw_estimators(ax, ds, panel, "power", x, shifted, estimators, mcse=mcse, bounds=bounds)
        if target is not None:
            ax.axhline(target, color=REFERENCE, ls=(0, (3, 2)), lw=0.8, zorder=1,
                       label=f"Target power {target:g}").set_gid("target")
        ax.set_ylim(-0.02, 1.02)
        level_axis(ax, sub, x, scale, pos)
        ax.grid(True, axis="y")
    if drawn == 0:
        raise ValueError(f"power of {param!r} is missing (NaN) for every estimator and cell; nothing to draw "
                         "(a parameter without standard errors has no intervals)")
    strips(axes, sub, row, col, room)
    axis_labels(fig, axes, factor_label(ds, x), label(ds, "power"), shared_x=not where.below)
    handles = {name: proxy(color=st["color"], marker=st["marker"], ls=st["ls"])
               for name, st in zip(names, (estimator_style(ds, m) for m in estimators))}
    legend(fig, axes.ravel(), first=names, loc=where.loc, handles=handles)
    null = ds.attrs.get("null", 0.0)
    p = label(ds, param)
    what = f"Power for {p} (H0: {p} = {fmt(null)}, two-sided \u03b1 = {1 - nominal_level(ds):.3g})"
    set_title(fig, title, lambda: describe(what, fixed, ds, mcse))
    return fig
