"""Nested loop plot (Ruecker & Schwarzer 2014): every cell of a many-factor grid on one axis.

The cells are ordered by nesting the factors like loops (the first factor is the outermost loop and
changes slowest), so the whole grid lies along one x axis. Each method's results are a step line; below
them, one step "leg" per factor shows which level each stretch of the x axis belongs to.

Ruecker G, Schwarzer G (2014). Presenting simulation results in a nested loop plot. BMC Medical Research
Methodology 14:129.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from simstudy.measures import MEASURES
from simstudy.plots import _common as c


def plot_nested_loop(
    ds: xr.Dataset,
    *,
    measure: str = "coverage",
    param: str | None = None,
    order: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    select: Mapping[str, Any] | None = None,
    mcse: bool = True,
    level: float | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Plot a measure for every design cell on one axis, the factors nested like loops.

    Parameters
    ----------
    ds : xarray.Dataset
        A summary dataset (``summary.nc``).
    measure : str
        A summary measure (``coverage``, ``bias``, ``rmse``, ...).
    param : str, optional
        Parameter to show; default the study's first featured parameter, else the first parameter.
    order : sequence of str, optional
        The factors that vary, outermost loop first (default: the design's order). Ruecker and Schwarzer
        advise putting the factor with the largest effect outermost.
    methods : sequence of str, optional
        Methods to draw (default all with a finite value somewhere).
    select : mapping, optional
        Factors to hold at one level, e.g. ``{"icc": 0.2}``.
    mcse : bool
        Draw +-1.96 MCSE error bars at the middle of each cell's step.
    level : float, optional
        Nominal coverage for the reference line and its Monte Carlo band (default: the dataset's level).
    figsize : (float, float), optional
        Figure size in inches; default from the number of cells and factors.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes sharing x: the results (one step line per method) on top, the factor legs below.

    Raises
    ------
    ValueError
        For an unknown measure, parameter, method or factor, an ``order`` that leaves out a varying
        factor, or a design in which no factor varies.

    Examples
    --------
    >>> fig = plot_nested_loop(summary, measure="coverage", param="treat",
    ...                        order=["icc", "group_size", "n_groups"])   # doctest: +SKIP
    """
    c.require_summary(ds, "plot_nested_loop")
    c.check_measure(ds, measure, MEASURES)
    ds = c.select(ds, select)
    param = c.resolve_param(ds, param)
    methods = c.resolve_methods(ds, methods)
    nominal = c.level(ds, level)
    moving = c.varying(ds)
    if order is None:
        order = moving
    else:
        order = [order] if isinstance(order, str) else list(order)
        for f in order:
            c.check_factor(ds, f, "order")
        left = [f for f in moving if f not in order]
        if left:
            raise ValueError(f"order leaves out factor(s) that vary: {', '.join(left)}; add them to order "
                             "or fix them with select")
        order = [f for f in order if f in moving]
    if not order:
        raise ValueError("plot_nested_loop needs at least one factor with two or more levels")
    sub, fixed = c.fixed_levels(ds.sel({"param": param}), keep=order)

    cells = list(itertools.product(*(range(sub.sizes[f]) for f in order)))
    n = len(cells)
    edges = np.arange(n + 1, dtype=float)
    centres = edges[:-1] + 0.5
    if figsize is None:
        figsize = (min(max(8.0, 0.22 * n + 4.5), 18.0), 4.4 + 0.45 * len(order))
    fig = Figure(figsize=figsize, layout="constrained")
    top, legs = fig.subplots(2, 1, sharex=True, height_ratios=[3.2, 0.5 * len(order) + 0.2])

    values = sub[measure].transpose(*order, "method")
    errors = sub[f"{measure}_mcse"].transpose(*order, "method")
    shift = (np.arange(len(methods)) - (len(methods) - 1) / 2) * min(0.12, 0.6 / max(len(methods), 1))
    drawn = 0
    for k, m in enumerate(methods):
        y = np.asarray(values.sel({"method": m}).values, dtype=float).ravel()
        if not np.any(np.isfinite(y)):
            continue
        st = c.style(sub, m)
        top.step(edges, np.append(y, y[-1]), where="post", color=st["color"], lw=1.6, label=m)
        if mcse:
            e = c.Z95 * np.asarray(errors.sel({"method": m}).values, dtype=float).ravel()
            top.errorbar(centres + shift[k], y, yerr=e, fmt="none", ecolor=st["color"], elinewidth=0.9,
                         capsize=0, label="_nolegend_")
        drawn += 1
    if drawn == 0:
        raise ValueError(f"{measure} of {param!r} is missing (NaN) for every method and cell; nothing to draw")
    c.draw_reference(top, sub, measure, edges, c.cell_reps(sub, methods, order), nominal)
    # separators between the levels of the outermost factor
    block = n // sub.sizes[order[0]]
    for b in range(block, n, block):
        top.axvline(b, color="0.75", lw=0.8, zorder=0).set_gid("separator")
    top.set_ylabel(c.axis_label(sub, measure))
    top.grid(True, axis="y", color="0.9", lw=0.6)
    top.set_xlim(0, n)

    _draw_legs(legs, sub, order, cells, edges)
    legs.set_xlabel("cells, factors nested (outermost first):\n" + " > ".join(order))
    c.legend(fig, [top], first=methods, loc="outside lower center", ncol=min(len(methods) + 2, 6))
    title = f"{measure} of {param}, nested loop over {n} cells"
    c.suptitle(fig, title, fixed, mcse)
    return fig


def _draw_legs(ax: Any, sub: xr.Dataset, order: Sequence[str], cells: list[tuple[int, ...]],
               edges: np.ndarray) -> None:
    """One step line per factor: its level (scaled to a band of height 0.7) along the cells."""
    ticks, labels = [], []
    for depth, f in enumerate(order):
        base = len(order) - 1 - depth
        n_levels = sub.sizes[f]
        idx = np.array([cell[depth] for cell in cells], dtype=float)
        y = base + 0.7 * idx / max(n_levels - 1, 1)
        line, = ax.step(edges, np.append(y, y[-1]), where="post", color="0.2", lw=1.1)
        line.set_gid(f"leg:{f}")
        ticks.append(base + 0.35)
        labels.append(f"{f}: " + ", ".join(c.fmt(v) for v in sub.coords[f].values))
    ax.set_yticks(ticks, labels, fontsize=8)
    ax.set_ylim(-0.25, len(order) - 0.1)
    ax.tick_params(axis="x", bottom=False, labelbottom=False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
