"""Heat map of a measure over two design factors, one panel per estimator (rsimsum's ``heat`` plot).

Each square is one design cell, coloured by the value of the measure and optionally annotated with it
(and its Monte Carlo SE). For a measure with a target (bias, relative errors: 0; coverage: the nominal
level) the colour map diverges from the target, with equal reach on both sides, so that the colour alone
says how far from the target and in which direction; other measures get a sequential map.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
import xarray as xr
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from simstudy.output.display import fmt
from simstudy.output.plots.axes import fit_ticklabels
from simstudy.output.plots.checks import (
    check_choice,
    check_factor,
    check_measure,
    choose,
    fixed_levels,
    nominal_level,
    require_summary,
    varying,
)
from simstudy.output.plots.draw import contrast, target
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
from simstudy.output.plots.layout import axis_labels
from simstudy.output.plots.style import styled
from simstudy.stats.measures import MEASURES

#: Colour maps: diverging (centred on the target) and sequential. Both are readable with the common
#: colour-vision deficiencies; the annotations carry the values for greyscale prints.
DIVERGING = "RdBu_r"
SEQUENTIAL = "viridis"


@styled
def plot_heatmap(
    ds: xr.Dataset,
    *,
    measure: str = "bias",
    x: str | None = None,
    y: str | None = None,
    param: str | None = None,
    estimators: Sequence[str] | None = None,
    select: Mapping[str, Any] | None = None,
    annotate: bool = True,
    mcse: bool = False,
    digits: int | None = None,
    center: float | str | None = "auto",
    cmap: str | None = None,
    level: float | None = None,
    title: str | bool | None = None,
    style: Any = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Heat map of a measure over two design factors, one panel per estimator, one colour scale for all.

    Parameters
    ----------
    ds : xarray.Dataset
        A summary dataset (``summary.nc``).
    measure : str
        A summary measure (``bias``, ``coverage``, ``rmse``, ...).
    x, y : str, optional
        The factors across (columns of squares) and up (rows); default ``n_groups`` (if it varies) across
        and the other varying factor up. Every other factor must have one level (use ``select``).
    param : str, optional
        Parameter to show; default the study's first featured parameter, else the first parameter.
    estimators : sequence of str, optional
        Estimators to show, one panel each (default all with a finite value somewhere), four to a row.
    select : mapping, optional
        Factors to hold at one level, e.g. ``{"group_size": 20}``.
    annotate : bool
        Write each cell's value in its square (left out when the squares are too small for the values at
        the given ``figsize``).
    mcse : bool
        Write the Monte Carlo SE under each value, in brackets.
    digits : int, optional
        Decimals of the annotations; default enough for the largest value to show three significant digits.
    center : float, "auto" or None
        Value at the middle of a diverging colour map: ``"auto"`` is the measure's target (0 for bias and
        relative errors, the nominal level for coverage) and a sequential map for other measures; None for
        a sequential map always.
    cmap : str, optional
        A matplotlib colour map name instead of the default (``RdBu_r`` diverging, ``viridis`` sequential).
    level : float, optional
        Nominal coverage; default the dataset's ``level`` attribute (0.95).
    title : str or bool, optional
        No title by default; ``True`` for a description of the figure, or the text.
    style : dict, str or list, optional
        Matplotlib rcParams (or a ``.mplstyle`` file or style name) merged on top of
        :data:`simstudy.output.plots.STYLE`.
    figsize : (float, float), optional
        Figure size in inches; default from the number of levels and estimators.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per estimator, each with one image (gid: the estimator) whose array has shape
        ``(levels of y, levels of x)``, the first level of ``y`` at the bottom; and a colour bar.

    Raises
    ------
    ValueError
        For an unknown measure, factor, parameter or estimator, fewer than two factors to show, a third
        factor that varies, or a measure that is missing everywhere.

    Examples
    --------
    >>> fig = plot_heatmap(summary, measure="bias", x="n_groups", y="icc",
    ...                    select={"group_size": 5}, mcse=True)                 # doctest: +SKIP
    """
    require_summary(ds, "plot_heatmap")
    check_measure(ds, measure, MEASURES)
    ds, param, estimators = choose(ds, select, param, estimators)
    nominal = nominal_level(ds, level)
    x, y = _axes_factors(ds, x, y)
    sub, fixed = fixed_levels(ds.sel({"param": param}), keep=[x, y])
    grid = {m: np.asarray(sub[measure].sel({"estimator": m}).transpose(y, x).values, dtype=float)
            for m in estimators}
    errs = {m: np.asarray(sub[f"{measure}_mcse"].sel({"estimator": m}).transpose(y, x).values, dtype=float)
            for m in estimators}
    estimators = [m for m in estimators if np.any(np.isfinite(grid[m]))]
    if not estimators:
        raise ValueError(f"{measure} of {param!r} is missing (NaN) for every estimator and cell; nothing to draw")
    every = np.concatenate([grid[m].ravel() for m in estimators])
    every = every[np.isfinite(every)]
    if isinstance(center, str):
        check_choice(center, "center", ("auto",))
        middle = target(measure, nominal)
    else:
        middle = None if center is None else float(center)
    if middle is not None:
        reach = float(np.max(np.abs(every - middle))) or 1e-12
        norm = Normalize(middle - reach, middle + reach)
        colours = mpl.colormaps[cmap or DIVERGING]
    else:
        lo, hi = float(every.min()), float(every.max())
        norm = Normalize(lo, hi if hi > lo else lo + 1e-12)
        colours = mpl.colormaps[cmap or SEQUENTIAL]
    proportion = sub[measure].attrs.get("units") == "proportion"
    if digits is None and proportion:
        digits = 3
    elif digits is None:
        top = float(np.max(np.abs(every))) if every.size else 1.0
        digits = int(min(max(2 - math.floor(math.log10(top)) if top > 0 else 2, 0), 5))

    k = len(estimators)
    names = estimator_labels(ds, estimators)
    nx, ny = sub.sizes[x], sub.sizes[y]
    tick = points(mpl.rcParams["xtick.labelsize"])
    text_size = max(tick - 0.5, 5.0)
    sample = [f"{v:.{digits}f}" for v in every] or ["0"]
    widest = max(text_width(t, text_size) for t in sample)
    cell_w = max(0.3, widest + 0.1 if annotate else 0.0,
                 max(text_width(fmt(v), tick) for v in sub.coords[x].values) + 0.12)
    cell_h = (0.36 if mcse else 0.24) if annotate else 0.2
    ylab = max(text_width(fmt(v), tick) for v in sub.coords[y].values)
    n_cols = max(1, min(k, 4, int(9.0 // max(nx * cell_w + 0.25, 1.2))))
    n_rows = -(-k // n_cols)
    if figsize is None:
        panel_w = max(nx * cell_w, 1.2)
        width = min(n_cols * panel_w + 0.25 * (n_cols - 1) + ylab + 1.6, 12.0)
        height = min(n_rows * (max(ny * cell_h, 0.9) + 0.45) + 0.55, 20.0)
        figsize = (width, height)
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False, sharex=True, sharey=True)
    panel_w = max((fig.get_figwidth() - 1.6 - ylab) / n_cols - 0.25, 0.8)
    panel_h = max((fig.get_figheight() - 0.55) / n_rows - 0.45, 0.5)
    size = mpl.rcParams["axes.titlesize"]
    lines = 2 if mcse else 1
    if annotate and (panel_w / nx < widest + 0.04 or panel_h / ny < lines * text_size * 1.25 / 72):
        annotate = False  # the squares are too small for their values: a larger figsize brings them back
    image = None
    for j, m in enumerate(estimators):
        ax = axes.ravel()[j]
        image = ax.imshow(grid[m], cmap=colours, norm=norm, origin="lower", aspect="auto",
                          interpolation="nearest")
        image.set_gid(m)
        if annotate:
            for (r, q), value in np.ndenumerate(grid[m]):
                if not np.isfinite(value):
                    continue
                text = f"{value:.{digits}f}"
                if mcse and np.isfinite(errs[m][r, q]):
                    text += f"\n({errs[m][r, q]:.{digits}f})"
                ax.text(q, r, text, ha="center", va="center", fontsize=text_size,
                        color=contrast(colours(norm(value))), gid="value")
        ax.set_title(wrap(names[j], panel_w, size), fontsize=size)
        ax.set_xticks(range(nx))
        fit_ticklabels(ax, [fmt(v) for v in sub.coords[x].values], panel_w / nx)
        ax.set_yticks(range(ny), [fmt(v) for v in sub.coords[y].values])
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
    for ax in axes.ravel()[k:]:
        ax.set_visible(False)
    for j in range(n_cols):  # the lowest visible panel of each column shows the levels of x
        visible = [ax for ax in axes[:, j] if ax.get_visible()]
        visible[-1].tick_params(axis="x", labelbottom=True)
    axis_labels(fig, axes, factor_label(ds, x), factor_label(ds, y))
    bar = fig.colorbar(image, ax=[ax for ax in axes.ravel() if ax.get_visible()], shrink=0.85, pad=0.02,
                       aspect=max(10, 12 * n_rows))
    bar.set_label(label(ds, measure))
    if proportion:  # the colours stay symmetric about the target; the bar shows only what a share can be
        bar.ax.set_ylim(max(norm.vmin, 0.0), min(norm.vmax, 1.0))
    bar.ax.set_gid("colorbar")
    what = f"{label(ds, measure)} of {label(ds, param)}"
    set_title(fig, title, lambda: describe(what, fixed, ds, False))
    return fig


def _axes_factors(ds: xr.Dataset, x: str | None, y: str | None) -> tuple[str, str]:
    """The factors across and up: given, or the two that vary (``n_groups`` across when it is one)."""
    for name, role in ((x, "x"), (y, "y")):
        if name is not None:
            check_factor(ds, name, role)
    if x is not None and x == y:
        raise ValueError(f"x and y are both {x!r}; choose two different factors")
    moving = varying(ds)
    free = [f for f in moving if f not in (x, y)]
    if x is None and free:
        x = "n_groups" if "n_groups" in free else free[0]
        free.remove(x)
    if y is None and free:
        y = free.pop(0)
    if x is None or y is None:
        raise ValueError("plot_heatmap needs two factors to show; the design varies only "
                         f"{', '.join(moving) or 'none'} (give x= and y=, or use plot_performance)")
    if free:
        raise ValueError(f"too many factors vary besides {x!r} and {y!r}: {', '.join(free)}; fix them with "
                         "select={...}")
    return x, y
