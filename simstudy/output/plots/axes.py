"""The x axis of a design factor: its scale (linear, log or categories), positions, dodging, limits, and
ticks whose labels never overlap."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, Locator, LogLocator, MaxNLocator, NullFormatter, NullLocator

from simstudy.output.display import fmt
from simstudy.output.plots.checks import check_choice, is_numeric
from simstudy.output.plots.labels import points, text_width, wrap


def x_scale(ds: xr.Dataset, factor: str, xscale: str) -> str:
    """``"linear"``, ``"log"`` or ``"category"`` for factor ``factor`` on the x axis.

    ``"auto"`` puts numeric factors to scale, on a log axis when the levels are positive and closer to a
    geometric than an arithmetic sequence over at least a fourfold range (6, 12, 24, 48); other factors
    are categories, evenly spaced in the design's order.
    """
    check_choice(xscale, "xscale", ("auto", "linear", "log", "category"))
    if not is_numeric(ds, factor):
        if xscale in ("linear", "log"):
            raise ValueError(f"factor {factor!r} is not numeric; xscale={xscale!r} needs numbers")
        return "category"
    values = np.asarray(ds.coords[factor].values, dtype=float)
    if xscale == "log" and np.any(values <= 0):
        raise ValueError(f"xscale='log' needs positive levels; {factor} has {', '.join(fmt(v) for v in values)}")
    if xscale != "auto":
        return xscale
    values = np.sort(values)
    if values.size >= 3 and values[0] > 0 and values[-1] / values[0] >= 4:
        lin, log = np.diff(values), np.diff(np.log(values))
        if np.std(log) / np.mean(log) < np.std(lin) / np.mean(lin):
            return "log"
    return "linear"


def positions(ds: xr.Dataset, factor: str, scale: str) -> np.ndarray:
    """Where the levels of ``factor`` sit on the x axis: their values, or 0, 1, 2, ... for categories."""
    if scale == "category":
        return np.arange(ds.sizes[factor], dtype=float)
    return np.asarray(ds.coords[factor].values, dtype=float)


def dodge(pos: np.ndarray, n: int, scale: str, spread: float = 0.24) -> list[np.ndarray]:
    """``pos`` shifted for each of ``n`` estimators so that their error bars stand apart.

    Neighbouring estimators are 1.5% of the axis's range apart (in log units on a log axis; one unit when
    there is a single level), all of them within ``spread`` of the smallest gap between levels.
    """
    if n < 2:
        return [pos] * n
    on = np.log(pos) if scale == "log" else np.asarray(pos, dtype=float)
    gaps = np.diff(np.sort(on))
    gap = float(gaps.min()) if gaps.size and gaps.min() > 0 else 1.0
    span = float(on.max() - on.min()) or 1.0
    half = min(spread * gap, 0.015 * span * (n - 1)) / 2
    return [np.exp(on + d) if scale == "log" else on + d for d in np.linspace(-half, half, n)]


def limits(pos: np.ndarray, scale: str, pad: float = 0.08) -> tuple[float, float]:
    """The x limits for levels at ``pos``: their range widened by ``pad`` of it on each side."""
    on = np.log(pos) if scale == "log" else pos
    lo, hi = float(on.min()), float(on.max())
    span = hi - lo if hi > lo else (0.5 if scale != "category" else 1.0)
    if scale == "category":
        lo, hi = lo - 0.5, hi + 0.5
    elif hi > lo:
        lo, hi = lo - pad * span, hi + pad * span
    else:
        width = abs(lo) * 0.25 if scale == "linear" and lo != 0 else 0.5
        lo, hi = lo - width, hi + width
    return (math.exp(lo), math.exp(hi)) if scale == "log" else (lo, hi)


def edges(pos: np.ndarray, scale: str, xlim: tuple[float, float]) -> np.ndarray:
    """Boundaries of each level's stretch of the x axis: midpoints between levels, the limits at the ends."""
    order = np.asarray(pos, dtype=float)
    inner = np.sqrt(order[:-1] * order[1:]) if scale == "log" else (order[:-1] + order[1:]) / 2
    return np.concatenate([[xlim[0]], inner, [xlim[1]]])


def _tick_text(value: float, pos: Any = None) -> str:
    """A tick label: the number as short as it goes (``6``, ``0.05``), with a true minus sign."""
    text = fmt(float(f"{value:.6g}"))
    if text == "-0":
        text = "0"
    return text.replace("-", "\u2212", 1) if text.startswith("-") and mpl.rcParams["axes.unicode_minus"] else text


class LevelLocator(Locator):
    """Ticks at the design's levels when their labels fit side by side; else round numbers that fit.

    The check runs when the figure is drawn, with the axis's real length and the tick labels' font, so
    tick labels never overlap whatever the figure size (the levels 6, 10, 14, ... of a narrow panel give
    way to 10, 20, ...).
    """

    def __init__(self, levels: Sequence[float], scale: str = "linear", integer: bool = False, max_levels: int = 8,
                 max_bins: int = 9) -> None:
        self.levels = np.sort(np.asarray(levels, dtype=float))
        self.scale = scale
        self.integer = integer
        self.max_levels = max_levels
        self.max_bins = max_bins

    def __call__(self) -> Sequence[float]:
        vmin, vmax = sorted(self.axis.get_view_interval())
        return self.tick_values(vmin, vmax)

    def tick_values(self, vmin: float, vmax: float) -> Sequence[float]:
        inside = [v for v in self.levels if vmin <= v <= vmax]
        if 0 < len(inside) <= self.max_levels and self._fits(inside):
            return inside
        if self.scale == "log":
            candidates = [LogLocator(base=10, subs=(1.0, 2.0, 5.0)), LogLocator(base=10, subs=(1.0,)),
                          LogLocator(base=10, subs=(1.0,), numticks=3)]
        else:
            candidates = [MaxNLocator(nbins=n, steps=[1, 2, 2.5, 5, 10], integer=self.integer)
                          for n in range(self.max_bins, 0, -1)]
        ticks: Sequence[float] = inside[:1]
        for loc in candidates:
            ticks = [t for t in loc.tick_values(vmin, vmax) if vmin <= t <= vmax]
            if len(ticks) >= 2 and self._fits(ticks):
                return ticks
        return ticks[:1] if len(ticks) else inside[:1]

    def _fits(self, ticks: Sequence[float]) -> bool:
        axis = self.axis
        if axis is None or axis.axes is None or axis.axis_name != "x" or len(ticks) < 2:
            return True
        ax = axis.axes
        px = ax.transData.transform(np.column_stack([ticks, np.zeros(len(ticks))]))[:, 0]
        size = axis.majorTicks[0].label1.get_fontsize()
        dpi = ax.figure.dpi
        widths = np.array([text_width(_tick_text(t), size) * dpi for t in ticks])
        need = (widths[:-1] + widths[1:]) / 2 + 0.8 * size * dpi / 72
        return bool(np.all(np.abs(np.diff(px)) >= need))


def level_axis(ax: Axes, ds: xr.Dataset, factor: str, scale: str, pos: np.ndarray) -> None:
    """Put factor ``factor`` on the x axis of ``ax``: scale, limits, ticks and labels that never overlap."""
    lim = limits(pos, scale)
    if scale == "category":
        ax.set_xticks(pos, [fmt(v) for v in ds.coords[factor].values])
        ax.set_xlim(*lim)
        return
    ax.set_xscale(scale)
    ax.set_xlim(*lim)
    values = np.asarray(ds.coords[factor].values, dtype=float)
    integer = bool(np.all(np.isclose(values, np.round(values))))
    ax.xaxis.set_major_locator(LevelLocator(values, scale, integer))
    ax.xaxis.set_major_formatter(FuncFormatter(_tick_text))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def round_ticks(ax: Axes, max_bins: int = 6) -> None:
    """Round-number ticks on the x axis of ``ax`` (at most ``max_bins`` intervals), as many as fit side by
    side when the figure is drawn."""
    ax.xaxis.set_major_locator(LevelLocator([], "linear", max_bins=max_bins))
    ax.xaxis.set_major_formatter(FuncFormatter(_tick_text))


def fit_ticklabels(ax: Axes, texts: Sequence[str], room: float, axis: str = "x") -> None:
    """Label the ticks of ``ax`` with ``texts`` so that they never overlap: each wrapped to ``room`` inches
    (the space between two ticks) when that is enough, else turned upright (for x) and wrapped to 1.5 in."""
    size = points(mpl.rcParams[f"{axis}tick.labelsize"])
    setter = ax.set_xticklabels if axis == "x" else ax.set_yticklabels
    wrapped = [wrap(t, room - 0.08, size) for t in texts]
    line = size * 1.25 / 72
    if axis == "x" and max(text_width(w, size) for w in wrapped) <= room - 0.05:
        setter(wrapped)
    elif axis == "y" and max(w.count("\n") + 1 for w in wrapped) * line <= room:
        setter(wrapped)
    elif axis == "x":
        setter([wrap(t, 1.5, size) for t in texts], rotation=90, ha="center", va="top")
    else:
        setter(list(texts))
