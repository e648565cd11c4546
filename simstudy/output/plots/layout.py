"""The layout of a figure: grids of panels (facets) with their strip labels, axis labels, legends and
single-axes figures, sized to hold their text."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib as mpl
import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from simstudy.output.plots.checks import check_factor, varying
from simstudy.output.plots.labels import level_text, points, text_width, wrap


def facet_figure(n_rows: int, n_cols: int, figsize: tuple[float, float] | None, *, sharex: Any = True,
                 sharey: Any = True, extra_width: float = 0.0, extra_height: float = 0.0,
                 panel: tuple[float, float] = (2.2, 1.8), min_width: float = 0.0) -> tuple[Figure, np.ndarray]:
    """A constrained-layout Figure with a grid of axes; by default a size that grows with the grid.

    ``extra_width`` is room for a legend or strip labels beside the panels. Panels shrink to keep a
    grid of up to four columns within a page's width (7.5 in), but never below 1.4 inches; the figure is
    at least ``min_width`` wide (e.g. for a legend below the panels).
    """
    if figsize is None:
        fixed_w = 0.75 + extra_width
        width = panel[0] * n_cols
        if fixed_w + width > 7.5:
            width = max(7.5 - fixed_w, 1.4 * n_cols)
        panel_w = width / n_cols
        panel_h = panel[1] if panel_w >= panel[0] else max(1.35, panel_w * 0.82)
        figsize = (max(fixed_w + width, min_width), 0.65 + extra_height + panel_h * n_rows)
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots(n_rows, n_cols, squeeze=False, sharex=sharex, sharey=sharey)


def facets(ds: xr.Dataset, x: str, row: str | None, col: str | None) -> tuple[str | None, str | None]:
    """Rows and columns of panels for the factors that vary besides ``x``.

    Unset facets are filled with the remaining varying factors (one -> columns; two -> rows, columns).
    More than two factors left over is an error that says how to fix some of them.
    """
    for name, role in ((row, "row"), (col, "col")):
        if name is not None:
            check_factor(ds, name, role)
            if name == x:
                raise ValueError(f"{name!r} is already on the x axis; choose another factor for {role}")
    if row is not None and row == col:
        raise ValueError(f"row and col are both {row!r}; choose two different factors")
    left = [f for f in varying(ds) if f not in (x, row, col)]
    if col is None and left:
        col = left.pop(-1 if row is None and len(left) == 2 else 0)
    if row is None and left:
        row = left.pop(0)
    if left:
        raise ValueError(f"too many factors vary besides {x!r}: {', '.join(left)} are left after rows and "
                         f"columns; fix them with select={{...}} or use plot_nested_loop")
    return row, col


def panels(ds: xr.Dataset, row: str | None, col: str | None
           ) -> Iterator[tuple[int, int, dict[str, Any], xr.Dataset]]:
    """``(i, j, levels, sub-dataset)`` for every panel of a grid of ``row`` x ``col`` levels."""
    rows = list(ds.coords[row].values) if row else [None]
    cols = list(ds.coords[col].values) if col else [None]
    for i, rv in enumerate(rows):
        for j, cv in enumerate(cols):
            where: dict[str, Any] = {}
            index: dict[str, int] = {}
            if row:
                where[row], index[row] = rv, i
            if col:
                where[col], index[col] = cv, j
            yield i, j, where, ds.isel(index)


def strip_width(ds: xr.Dataset, row: str | None) -> float:
    """Room in inches for the row labels at the right of the grid (two lines of text, rotated)."""
    return 0.4 if row else 0.0


def panel_size(fig: Figure, n_rows: int, n_cols: int, extra_width: float = 0.0,
               extra_height: float = 0.0) -> tuple[float, float]:
    """About how wide and high one panel of a grid is, in inches (for wrapping its labels)."""
    return (max((fig.get_figwidth() - 0.75 - extra_width) / n_cols, 0.6),
            max((fig.get_figheight() - 0.65 - extra_height) / n_rows, 0.6))


def strips(axes: np.ndarray, ds: xr.Dataset, row: str | None, col: str | None,
           panel: tuple[float, float] | None = None) -> None:
    """Label a grid of panels as a table: the column factor's level above the top row, the row factor's
    level at the right of the last column (``ICC = 0.2``); long labels are wrapped to the panel (``panel``:
    its width and height in inches)."""
    n_rows, n_cols = axes.shape
    fig = axes[0, 0].figure
    panel_w, panel_h = panel or panel_size(fig, n_rows, n_cols)
    panel_w -= 0.1
    size = mpl.rcParams["axes.titlesize"]
    if col:
        for j, value in enumerate(ds.coords[col].values):
            axes[0, j].set_title(wrap(level_text(ds, col, value), panel_w, size), fontsize=size)
    if row:
        for i, value in enumerate(ds.coords[row].values):
            axes[i, -1].annotate(wrap(level_text(ds, row, value), 0.8 * panel_h, size), xy=(1, 0.5),
                                 xycoords="axes fraction", xytext=(5, 0), textcoords="offset points",
                                 rotation=270, ha="left", va="center", fontsize=size, gid="row_label")


@dataclass(frozen=True)
class Placement:
    """Where a figure legend goes (``loc``) and the room it takes beside (``width``) or below (``height``)
    the panels, in inches."""

    loc: str
    width: float
    height: float
    min_width: float = 0.0

    @property
    def below(self) -> bool:
        return self.loc.endswith("lower center")


def place_legend(entries: Sequence[str], n_cols: int, panel: float = 2.2) -> Placement:
    """On the right of the panels when the legend is narrow next to them, else below them in columns."""
    width = legend_width(entries)
    natural = 0.75 + n_cols * panel
    if not entries or width <= max(2.0, 0.4 * natural):
        return Placement("outside right center", width, 0.0)
    size = points(mpl.rcParams["legend.fontsize"])
    rows = -(-len(entries) // columns(entries, min(natural + width, 7.5)))
    return Placement("outside lower center", 0.0, rows * size * 1.55 / 72 + 0.1, width + 0.2)


def legend_width(entries: Sequence[str]) -> float:
    """Width in inches of a one-column figure legend of ``entries`` (handles and padding included)."""
    if not entries:
        return 0.0
    size = points(mpl.rcParams["legend.fontsize"])
    pads = mpl.rcParams["legend.handlelength"] + mpl.rcParams["legend.handletextpad"] + 2.5
    return max(text_width(e, size) for e in entries) + pads * size / 72.0


def columns(entries: Sequence[str], width: float) -> int:
    """How many legend columns of ``entries`` fit in ``width`` inches (rows balanced)."""
    size = points(mpl.rcParams["legend.fontsize"])
    pads = (mpl.rcParams["legend.handlelength"] + mpl.rcParams["legend.handletextpad"]
            + mpl.rcParams["legend.columnspacing"]) * size / 72.0
    entry = max(text_width(e, size) for e in entries) + pads
    ncol = max(1, min(len(entries), int((width - 0.3) / entry)))
    rows = -(-len(entries) // ncol)
    return -(-len(entries) // rows)


def legend(fig: Figure, axes: Sequence[Axes], first: Sequence[str] = (), loc: str = "outside right center", *,
           handles: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
    """One legend for the figure, each label once (those in ``first`` first, e.g. the estimators), outside the
    panels (on the right by default). Below or above the panels, it gets as many columns as fit the width.
    ``handles`` adds entries or replaces the handle of a label (e.g. a plain line for an estimator)."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for handle, text in zip(*ax.get_legend_handles_labels()):
            if not text.startswith("_") and text not in seen:
                seen[text] = handle
    seen.update(handles or {})
    entries = [t for t in first if t in seen] + [t for t in seen if t not in first]
    if not entries:
        return None
    if loc.endswith(("lower center", "upper center")) and "ncol" not in kwargs:
        kwargs["ncol"] = columns(entries, fig.get_figwidth())
    return fig.legend([seen[t] for t in entries], entries, loc=loc, **kwargs)


def axis_labels(fig: Figure, axes: np.ndarray, xlabel: str, ylabel: str, *, shared_x: bool = True) -> None:
    """Name the axes: on the axes of a single row or column, else once for the whole grid (below and at
    the left); wrapped to the room there is. ``shared_x=False`` names x under each bottom panel instead
    (when a legend is below the grid)."""
    n_rows, n_cols = axes.shape
    size = mpl.rcParams["axes.labelsize"]
    width, height = fig.get_figwidth(), fig.get_figheight()
    if n_cols == 1 or not shared_x:
        for ax in axes[-1, :]:
            ax.set_xlabel(wrap(xlabel, (width - 1.0) / n_cols, size))
    else:
        fig.supxlabel(wrap(xlabel, width - 1.0, size), fontsize=size)
    if n_rows == 1:
        axes[0, 0].set_ylabel(wrap(ylabel, height - 0.8, size))
    else:
        fig.supylabel(wrap(ylabel, height - 0.6, size), fontsize=size)


def one_axes(xlabel: str, ylabel: str, figsize: tuple[float, float] | None,
             axes: tuple[float, float]) -> tuple[Figure, Axes]:
    """A figure of one axes about ``axes`` inches large, grown to hold its labels (wrapped to its sides);
    with ``figsize`` given, the labels are wrapped to fit that instead."""
    size = points(mpl.rcParams["axes.labelsize"])
    line = size * 1.25 / 72
    if figsize is None:
        y = wrap(ylabel, axes[1], size)
        x = wrap(xlabel, axes[0] + 0.3, size)
        figsize = (axes[0] + 0.55 + line * (y.count("\n") + 1) + 0.2,
                   axes[1] + 0.35 + line * (x.count("\n") + 1) + 0.2)
    else:
        y = wrap(ylabel, max(figsize[1] - 0.9, 0.8), size)
        x = wrap(xlabel, max(figsize[0] - 0.75 - line * (y.count("\n") + 1), 0.8), size)
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.subplots()
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    return fig, ax
