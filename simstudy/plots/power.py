"""Power curves: the share of intervals that exclude the null against the number of groups."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from simstudy.plots import _common as c


def plot_power(
    ds: xr.Dataset,
    *,
    x: str | None = None,
    param: str | None = None,
    target: float | None = 0.8,
    row: str | None = None,
    col: str | None = None,
    methods: Sequence[str] | None = None,
    select: Mapping[str, Any] | None = None,
    mcse: bool = True,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Plot power against a numeric design factor (the number of groups), one curve per method.

    Power is the share of valid replicates whose interval excludes the null value (attribute ``null``,
    0 by default), so where the true effect is the null it is the type I error rate. The x axis is to
    scale, so the curves can be read between the design points; a dashed line marks the target power.
    Other varying factors become facets as in :func:`~simstudy.plots.plot_performance`.

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
    methods : sequence of str, optional
        Methods to draw (default all with a finite power somewhere).
    select : mapping, optional
        Factors to hold at one level, e.g. ``{"treatment_effect": 0.3}``.
    mcse : bool
        Draw +-1.96 MCSE error bars.
    figsize : (float, float), optional
        Figure size in inches.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        For an unknown or non-numeric factor, an unknown parameter or method, a target outside (0, 1), or
        a parameter without any power (no standard errors).

    Examples
    --------
    >>> fig = plot_power(summary, param="treat", target=0.8)   # doctest: +SKIP
    """
    c.require_summary(ds, "plot_power")
    c.check_measure(ds, "power")
    if target is not None and not 0 < target < 1:
        raise ValueError(f"target power must lie between 0 and 1, got {target!r}")
    ds = c.select(ds, select)
    param = c.resolve_param(ds, param)
    methods = c.resolve_methods(ds, methods)
    numeric = [f for f in c.factors(ds) if np.issubdtype(ds.coords[f].dtype, np.number)]
    if x is None:
        moving = [f for f in c.varying(ds) if f in numeric]
        if "n_groups" in numeric:
            x = "n_groups"
        elif moving or numeric:
            x = (moving or numeric)[0]
        else:
            raise ValueError("plot_power needs a numeric design factor for the x axis; the design has none")
    c.check_factor(ds, x, "x")
    if x not in numeric:
        raise ValueError(f"factor {x!r} is not numeric; power curves need a numeric x such as n_groups")
    row, col = c.facets(ds, x, row, col)
    sub, fixed = c.fixed_levels(ds.sel({"param": param}), keep=[f for f in (x, row, col) if f])

    n_rows = sub.sizes[row] if row else 1
    n_cols = sub.sizes[col] if col else 1
    fig, axes = c.facet_figure(n_rows, n_cols, figsize)
    levels = np.asarray(sub.coords[x].values, dtype=float)
    span = float(levels.max() - levels.min()) if levels.size > 1 else 1.0
    drawn = 0
    for i, j, where, panel in c.panels(sub, row, col):
        ax = axes[i, j]
        drawn += c.draw_methods(ax, ds, panel, "power", x, levels, methods, mcse=mcse,
                                dodge=0.006 * span if len(methods) > 1 else 0.0)
        if target is not None:
            ax.axhline(target, color="0.3", ls="--", lw=1, label=f"target power {target:g}").set_gid("target")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xticks(levels, [c.fmt(v) for v in sub.coords[x].values])
        ax.grid(True, color="0.9", lw=0.6)
        if where:
            ax.set_title(c.cell_label(where), fontsize=9)
        if i == n_rows - 1:
            ax.set_xlabel(x)
        if j == 0:
            ax.set_ylabel(c.axis_label(ds, "power"))
    if drawn == 0:
        raise ValueError(f"power of {param!r} is missing (NaN) for every method and cell; nothing to draw "
                         "(a parameter without standard errors has no intervals)")
    c.legend(fig, axes.ravel(), first=methods)
    null = ds.attrs.get("null", 0.0)
    title = f"power of {param} (H0: {param} = {c.fmt(null)}, two-sided \u03b1 = {1 - c.level(ds):.3g})"
    c.suptitle(fig, title, fixed, mcse, fixed_format="; {}")
    return fig
