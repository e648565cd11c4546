"""Nested loop plot (Ruecker & Schwarzer 2014): every cell of a many-factor grid on one axis.

The cells are ordered by nesting the factors like loops (the first factor is the outermost loop and
changes slowest), so the whole grid lies along one x axis. Each estimator's results are a step line; below
them, one step "leg" per factor shows which level each stretch of the x axis belongs to.

Ruecker G, Schwarzer G (2014). Presenting simulation results in a nested loop plot. BMC Medical Research
Methodology 14:129.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from simstudy.output.display import fmt
from simstudy.output.plots.checks import (
    check_factor,
    check_measure,
    choose,
    fixed_levels,
    nominal_level,
    require_summary,
    varying,
)
from simstudy.output.plots.draw import Z95, cell_reps, draw_reference, proxy
from simstudy.output.plots.labels import (
    describe,
    estimator_labels,
    factor_label,
    label,
    points,
    set_title,
    text_width,
    wrap,
)
from simstudy.output.plots.layout import columns, legend
from simstudy.output.plots.style import estimator_style, styled
from simstudy.stats.measures import MEASURES


@styled
def plot_nested_loop(
    ds: xr.Dataset,
    *,
    measure: str = "coverage",
    param: str | None = None,
    order: Sequence[str] | None = None,
    estimators: Sequence[str] | None = None,
    select: Mapping[str, Any] | None = None,
    mcse: bool = True,
    level: float | None = None,
    title: str | bool | None = None,
    style: Any = None,
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
    estimators : sequence of str, optional
        Estimators to draw (default all with a finite value somewhere).
    select : mapping, optional
        Factors to hold at one level, e.g. ``{"icc": 0.2}``.
    mcse : bool
        Draw +-1.96 MCSE error bars at the middle of each cell's step.
    level : float, optional
        Nominal coverage for the reference line and its Monte Carlo band (default: the dataset's level).
    title : str or bool, optional
        No title by default; ``True`` for a description of the figure, or the text.
    style : dict, str or list, optional
        Matplotlib rcParams (or a ``.mplstyle`` file or style name) merged on top of
        :data:`simstudy.output.plots.STYLE`.
    figsize : (float, float), optional
        Figure size in inches; default from the number of cells and factors.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes sharing x: the results (one step line per estimator, markers at the cells) on top, the
        factor legs below.

    Raises
    ------
    ValueError
        For an unknown measure, parameter, estimator or factor, an ``order`` that leaves out a varying
        factor, or a design in which no factor varies.

    Examples
    --------
    >>> fig = plot_nested_loop(summary, measure="coverage", param="treat",
    ...                        order=["icc", "group_size", "n_groups"])   # doctest: +SKIP
    """
    require_summary(ds, "plot_nested_loop")
    check_measure(ds, measure, MEASURES)
    ds, param, estimators = choose(ds, select, param, estimators)
    nominal = nominal_level(ds, level)
    moving = varying(ds)
    if order is None:
        order = moving
    else:
        order = [order] if isinstance(order, str) else list(order)
        for f in order:
            check_factor(ds, f, "order")
        left = [f for f in moving if f not in order]
        if left:
            raise ValueError(f"order leaves out factor(s) that vary: {', '.join(left)}; add them to order "
                             "or fix them with select")
        order = [f for f in order if f in moving]
    if not order:
        raise ValueError("plot_nested_loop needs at least one factor with two or more levels")
    sub, fixed = fixed_levels(ds.sel({"param": param}), keep=order)

    cells = list(itertools.product(*(range(sub.sizes[f]) for f in order)))
    n = len(cells)
    edges = np.arange(n + 1, dtype=float)
    centres = edges[:-1] + 0.5
    names = estimator_labels(ds, estimators)
    leg_labels = [_leg_label(sub, f) for f in order]
    label_w = max(text_width(t, points(mpl.rcParams["ytick.labelsize"])) for t in leg_labels)
    if figsize is None:
        width = min(max(5.0, 0.12 * n + 2.6 + label_w), 10.0)
        rows = -(-(len(names) + 2) // columns([*names, "Monte Carlo band"], width))
        figsize = (width, 2.5 + 0.3 * len(order) + 0.16 * rows)
    fig = Figure(figsize=figsize, layout="constrained")
    top, legs = fig.subplots(2, 1, sharex=True, height_ratios=[3.2, 0.5 * len(order) + 0.2])

    values = sub[measure].transpose(*order, "estimator")
    errors = sub[f"{measure}_mcse"].transpose(*order, "estimator")
    shift = (np.arange(len(estimators)) - (len(estimators) - 1) / 2) * min(0.12, 0.6 / max(len(estimators), 1))
    handles = {}
    drawn = 0
    for k, m in enumerate(estimators):
        y = np.asarray(values.sel({"estimator": m}).values, dtype=float).ravel()
        if not np.any(np.isfinite(y)):
            continue
        st = estimator_style(sub, m)
        top.step(edges, np.append(y, y[-1]), where="post", color=st["color"], ls=st["ls"], lw=1.2,
                 label=names[k], zorder=2)
        e = Z95 * np.asarray(errors.sel({"estimator": m}).values, dtype=float).ravel() if mcse else None
        top.errorbar(centres + shift[k], y, yerr=e, fmt=st["marker"], color=st["color"], ms=3.2,
                     elinewidth=0.8, capsize=0, label="_nolegend_", zorder=3)
        handles[names[k]] = proxy(color=st["color"], marker=st["marker"], ls=st["ls"])
        drawn += 1
    if drawn == 0:
        raise ValueError(f"{measure} of {param!r} is missing (NaN) for every estimator and cell; nothing to draw")
    draw_reference(top, sub, measure, edges, cell_reps(sub, estimators, order), nominal)
    # separators between the levels of the outermost factor
    block = n // sub.sizes[order[0]]
    for b in range(block, n, block):
        top.axvline(b, color="0.75", lw=0.6, zorder=0).set_gid("separator")
    top.set_ylabel(label(sub, measure))
    top.grid(True, axis="y")
    top.set_xlim(0, n)
    top.tick_params(axis="x", bottom=False)

    _draw_legs(legs, sub, order, cells, edges, leg_labels)
    legs.set_xlabel(wrap("Cells, factors nested (outermost first): "
                         + " > ".join(factor_label(sub, f) for f in order),
                         fig.get_figwidth() - label_w - 0.4, mpl.rcParams["axes.labelsize"]))
    legend(fig, [top], first=names, loc="outside lower center", handles=handles)
    what = f"{label(sub, measure)} of {label(sub, param)}, nested loop over {n} cells"
    set_title(fig, title, lambda: describe(what, fixed, sub, mcse))
    return fig


def _leg_label(sub: xr.Dataset, factor: str) -> str:
    """``n groups: 6, 20``: a factor's label and its levels."""
    return f"{factor_label(sub, factor)}: " + ", ".join(fmt(v) for v in sub.coords[factor].values)


def _draw_legs(ax: Any, sub: xr.Dataset, order: Sequence[str], cells: list[tuple[int, ...]],
               edges: np.ndarray, texts: Sequence[str]) -> None:
    """One step line per factor: its level (scaled to a band of height 0.7) along the cells."""
    ticks = []
    for depth, f in enumerate(order):
        base = len(order) - 1 - depth
        n_levels = sub.sizes[f]
        idx = np.array([cell[depth] for cell in cells], dtype=float)
        y = base + 0.7 * idx / max(n_levels - 1, 1)
        line, = ax.step(edges, np.append(y, y[-1]), where="post", color="0.2", lw=1.0)
        line.set_gid(f"leg:{f}")
        ticks.append(base + 0.35)
    ax.set_yticks(ticks, list(texts))
    ax.set_ylim(-0.25, len(order) - 0.1)
    ax.tick_params(axis="x", bottom=False, labelbottom=False)
    ax.tick_params(axis="y", left=False)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
