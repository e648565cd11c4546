"""Helpers shared by the plot modules: checking arguments, readable labels, facets, axes, estimator styles.

Nothing here draws a whole figure. Every check raises ``ValueError`` with one line that names what was
asked for and what there is to choose from. The functions that size or wrap text read the rcParams in
force, so call them inside the plot function (which runs inside the figure's style).
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib as mpl
import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import TextToPath
from matplotlib.ticker import FuncFormatter, Locator, LogLocator, MaxNLocator, NullFormatter, NullLocator

from simstudy.engine.store import json_attr
from simstudy.output.display import fmt
from simstudy.output.plots.style import DASHES, MARKERS, PALETTE
from simstudy.stats.measures import MEASURES

#: Dimensions that are not design factors.
NOT_FACTORS: tuple[str, ...] = ("estimator", "param", "rep")

#: Two-sided multiplier of the MCSE for the error bars (a 95% Monte Carlo interval).
Z95 = 1.959963984540054

#: Measures whose target is 0: a grey reference line is drawn there.
ZERO_TARGET: frozenset[str] = frozenset({"bias", "rel_bias", "rel_error", "rel_precision"})

#: Measures compared with the nominal level of the intervals.
LEVEL_TARGET: frozenset[str] = frozenset({"coverage", "be_coverage"})

#: Readable names of the measures, used on axes unless the study's ``labels`` name them otherwise.
MEASURE_LABELS: dict[str, str] = {
    "bias": "Bias",
    "rel_bias": "Relative bias",
    "emp_se": "Empirical SE",
    "model_se": "Model SE",
    "rel_error": "Relative error of model SE (%)",
    "mse": "MSE",
    "rmse": "RMSE",
    "coverage": "Coverage",
    "be_coverage": "Bias-eliminated coverage",
    "power": "Power",
    "rel_precision": "Relative precision (%)",
    "se": "Standard error",
}

#: Colour of reference lines (targets, identity lines, limits of agreement).
REFERENCE = "0.35"


# --- checking arguments -------------------------------------------------------------------------------


def factors(ds: xr.Dataset) -> list[str]:
    """The design factors of a summary or estimates dataset, in the design's order."""
    for var in ("bias", "estimate", "n_rep"):
        if var in ds:
            return [str(d) for d in ds[var].dims if d not in NOT_FACTORS]
    return [str(d) for d in ds.dims if d not in NOT_FACTORS]


def varying(ds: xr.Dataset) -> list[str]:
    """Design factors with more than one level."""
    return [f for f in factors(ds) if ds.sizes[f] > 1]


def numeric(ds: xr.Dataset, factor: str) -> bool:
    """Whether the levels of ``factor`` are numbers (booleans are not)."""
    dtype = ds.coords[factor].dtype
    return bool(np.issubdtype(dtype, np.number)) and not np.issubdtype(dtype, np.bool_)


def require_summary(ds: Any, what: str) -> None:
    """``ValueError`` unless ``ds`` is a summary dataset (variables by estimator and param)."""
    if not isinstance(ds, xr.Dataset):
        raise ValueError(f"{what} needs an xarray Dataset (summary.nc), got {type(ds).__name__}")
    if "rep" in ds.dims:
        raise ValueError(f"{what} needs the summary dataset (summary.nc), not the replicate-level estimates")
    missing = [d for d in ("estimator", "param") if d not in ds.dims]
    if missing:
        raise ValueError(f"{what} needs a summary dataset with dimensions 'estimator' and 'param'; "
                         f"missing {', '.join(missing)}")


def require_estimates(ds: Any, what: str) -> None:
    """``ValueError`` unless ``ds`` is the replicate-level dataset (``estimates.nc``)."""
    if not isinstance(ds, xr.Dataset) or "rep" not in ds.dims or "estimate" not in ds:
        raise ValueError(f"{what} needs the replicate-level estimates (estimates.nc) with a 'rep' dimension")


def check_measure(ds: xr.Dataset, measure: str, allowed: Sequence[str] = MEASURES) -> None:
    """``ValueError`` for a measure that is not one of ``allowed`` or not in the dataset."""
    if measure not in allowed or (measure in MEASURES and measure not in ds):
        choices = [m for m in allowed if m not in MEASURES or m in ds]
        raise ValueError(f"unknown measure {measure!r}; choose one of: {', '.join(choices)}")


def check_factor(ds: xr.Dataset, factor: str, role: str) -> None:
    """``ValueError`` for a name that is not a design factor of ``ds``."""
    if factor not in factors(ds):
        raise ValueError(f"unknown factor {factor!r} for {role}; the design factors are: "
                         f"{', '.join(factors(ds)) or '(none)'}")


def check_choice(value: Any, name: str, choices: Sequence[Any]) -> None:
    """``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")


def params(ds: xr.Dataset) -> list[str]:
    """Parameter names of ``ds``."""
    return [str(p) for p in ds.coords["param"].values]


def featured(ds: xr.Dataset) -> list[str]:
    """The parameters the study asks to feature (its ``show`` attribute), in order; may be empty."""
    show = json_attr(ds, "show", []) or []
    if isinstance(show, str):
        show = [show]
    have = set(params(ds))
    return [str(p) for p in show if str(p) in have]


def resolve_param(ds: xr.Dataset, param: str | None) -> str:
    """``param``, checked; by default the first featured parameter, else the first parameter."""
    names = params(ds)
    if param is None:
        show = featured(ds)
        return show[0] if show else names[0]
    if param not in names:
        raise ValueError(f"unknown param {param!r}; choose one of: {', '.join(names)}")
    return param


def resolve_estimators(ds: xr.Dataset, estimators: Sequence[str] | None) -> list[str]:
    """``estimators``, checked against the dataset (default: all, in the dataset's order)."""
    names = [str(m) for m in ds.coords["estimator"].values]
    if estimators is None:
        return names
    if isinstance(estimators, str):
        estimators = [estimators]
    unknown = [m for m in estimators if m not in names]
    if unknown:
        raise ValueError(f"unknown estimator {unknown[0]!r}; choose from: {', '.join(names)}")
    if not estimators:
        raise ValueError("estimators is empty; choose from: " + ", ".join(names))
    return list(estimators)


def resolve_pair(ds: xr.Dataset, estimators: Sequence[str] | None) -> tuple[str, str]:
    """Two different estimators (default: the dataset's first two)."""
    names = [str(m) for m in ds.coords["estimator"].values]
    if estimators is None:
        if len(names) < 2:
            raise ValueError(f"comparing estimators needs two; the dataset has only {', '.join(names)}")
        return names[0], names[1]
    chosen = resolve_estimators(ds, estimators)
    if len(chosen) != 2 or chosen[0] == chosen[1]:
        raise ValueError(f"estimators must name two different estimators (x then y), got {list(chosen)!r}")
    return chosen[0], chosen[1]


def level_index(ds: xr.Dataset, factor: str, value: Any) -> int:
    """Position of ``value`` among the levels of ``factor`` (floats compared with a tolerance)."""
    levels = ds.coords[factor].values
    if np.issubdtype(levels.dtype, np.number):
        try:
            target = float(value)
        except (TypeError, ValueError):
            target = np.nan
        hits = np.flatnonzero(np.isclose(levels.astype(float), target, rtol=1e-9, atol=1e-12))
    else:
        hits = np.flatnonzero(levels.astype(str) == str(value))
    if hits.size == 0:
        raise ValueError(f"{factor}={fmt(value)} is not a level of {factor}; its levels are: "
                         f"{', '.join(fmt(v) for v in levels)}")
    return int(hits[0])


def select(ds: xr.Dataset, choice: Mapping[str, Any] | None) -> xr.Dataset:
    """Fix design factors at one level each (``{"icc": 0.2}``).

    The factors stay as dimensions of length one, so that figures name them with the other fixed factors.
    """
    if not choice:
        return ds
    for factor in choice:
        check_factor(ds, factor, "select")
    return ds.isel({f: [level_index(ds, f, v)] for f, v in choice.items()})


def fixed_levels(ds: xr.Dataset, keep: Sequence[str]) -> tuple[xr.Dataset, dict[str, Any]]:
    """Drop the factors with one level that are not in ``keep``; return the dataset and those levels."""
    fixed = {f: ds.coords[f].values[0] for f in factors(ds) if ds.sizes[f] == 1 and f not in keep}
    return ds.isel({f: 0 for f in fixed}), fixed


def one_cell(ds: xr.Dataset, cell: Mapping[str, Any] | None) -> tuple[xr.Dataset, dict[str, Any]]:
    """The replicates of one design cell: ``cell`` must give a level of every factor that varies."""
    cell = dict(cell or {})
    for f in cell:
        check_factor(ds, f, "cell")
    missing = [f for f in varying(ds) if f not in cell]
    if missing:
        levels = "; ".join(f"{f}: {', '.join(fmt(v) for v in ds.coords[f].values)}" for f in missing)
        raise ValueError(f"choose a cell: give cell= a level of {', '.join(missing)} ({levels})")
    where = {f: cell.get(f, ds.coords[f].values[0]) for f in factors(ds)}
    index = {f: level_index(ds, f, v) for f, v in where.items()}
    return ds.isel(index), {f: ds.coords[f].values[i] for f, i in index.items()}


# --- readable labels ----------------------------------------------------------------------------------


def labels(ds: xr.Dataset) -> dict[str, str]:
    """The study's ``labels`` attribute: names of factors, estimators, parameters (and measures) to labels."""
    found = json_attr(ds, "labels", {}) or {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, Mapping) else {}


def label(ds: xr.Dataset, name: Any) -> str:
    """The label of an estimator, parameter or measure: the study's label, else a default, else the name."""
    name = str(name)
    found = labels(ds)
    if name in found:
        return found[name]
    return MEASURE_LABELS.get(name, name)


def factor_label(ds: xr.Dataset, factor: str) -> str:
    """The label of a design factor: the study's label, else its name with spaces (``n groups``)."""
    return labels(ds).get(factor, factor.replace("_", " "))


def level_text(ds: xr.Dataset, factor: str, value: Any) -> str:
    """``ICC = 0.2``: a factor's label and one of its levels."""
    return f"{factor_label(ds, factor)} = {fmt(value)}"


def cell_text(ds: xr.Dataset, cell: Mapping[str, Any]) -> str:
    """``n groups = 6, ICC = 0.2``: the label of a design cell."""
    return ", ".join(level_text(ds, f, v) for f, v in cell.items())


def estimator_labels(ds: xr.Dataset, estimators: Sequence[str]) -> list[str]:
    """The estimators' labels, in order."""
    return [label(ds, m) for m in estimators]


# --- text sizes ---------------------------------------------------------------------------------------


def points(size: Any) -> float:
    """A font size (number or name such as ``"small"``) in points, under the rcParams in force."""
    return float(FontProperties(size=size).get_size_in_points())


@functools.lru_cache(maxsize=4096)
def _width_pt(text: str, size: float, family: tuple[str, ...]) -> float:
    prop = FontProperties(size=size, family=list(family))
    return max(TextToPath().get_text_width_height_descent(line or " ", prop, ismath=False)[0]
               for line in text.split("\n"))


def text_width(text: str, size: Any) -> float:
    """Width in inches of ``text`` (its longest line) at font size ``size``, in the current font family."""
    family = mpl.rcParams["font.family"]
    return _width_pt(str(text), points(size), tuple(family if isinstance(family, list) else [family])) / 72.0


def wrap(text: str, width: float, size: Any) -> str:
    """``text`` broken at spaces into lines no wider than ``width`` inches (a word longer stays whole, and
    so does a factor's last word with its level, ``cluster = 5``)."""
    out = []
    for line in str(text).split("\n"):
        if text_width(line, size) <= width:
            out.append(line)
            continue
        current = ""
        for token in re.findall(r"[^ ]+(?: = [^ ]+)? *", line):  # "ICC = 0.2" stays on one line
            if current and text_width((current + token).rstrip(), size) > width:
                out.append(current.rstrip())
                current = token
            else:
                current += token
        out.append(current.rstrip())
    return "\n".join(out)


def legend_width(entries: Sequence[str]) -> float:
    """Width in inches of a one-column figure legend of ``entries`` (handles and padding included)."""
    if not entries:
        return 0.0
    size = points(mpl.rcParams["legend.fontsize"])
    pads = mpl.rcParams["legend.handlelength"] + mpl.rcParams["legend.handletextpad"] + 2.5
    return max(text_width(e, size) for e in entries) + pads * size / 72.0


def set_title(fig: Figure, title: str | bool | None, auto: Callable[[], str]) -> None:
    """A title above the figure when asked for: ``True`` for a description of the figure, or the text."""
    if title is None or title is False:
        return
    text = auto() if title is True else str(title)
    size = mpl.rcParams["figure.titlesize"]
    fig.suptitle(wrap(text, fig.get_figwidth() - 0.15, size), fontsize=size)


def describe(text: str, fixed: Mapping[str, Any], ds: xr.Dataset, mcse: bool) -> str:
    """The automatic title: ``text``, the factors held at one level, and what the error bars are."""
    if fixed:
        text += f" ({cell_text(ds, fixed)})"
    if mcse:
        text += "; bars: \u00b11.96 MCSE"
    return text


# --- estimator styles ---------------------------------------------------------------------------------


def style(ds: xr.Dataset, estimator: str) -> dict[str, Any]:
    """Colour, marker and dash pattern of an estimator, fixed by its position among the dataset's estimators.

    Colour-blind safe colours (Okabe-Ito); the marker and dash tell estimators apart in greyscale too.
    """
    names = [str(m) for m in ds.coords["estimator"].values]
    k = names.index(estimator) if estimator in names else 0
    return {"color": PALETTE[k % len(PALETTE)], "marker": MARKERS[k % len(MARKERS)],
            "ls": DASHES[k % len(DASHES)]}


# --- facets -------------------------------------------------------------------------------------------


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


# --- the x axis of a design factor --------------------------------------------------------------------


def x_scale(ds: xr.Dataset, factor: str, xscale: str) -> str:
    """``"linear"``, ``"log"`` or ``"category"`` for factor ``factor`` on the x axis.

    ``"auto"`` puts numeric factors to scale, on a log axis when the levels are positive and closer to a
    geometric than an arithmetic sequence over at least a fourfold range (6, 12, 24, 48); other factors
    are categories, evenly spaced in the design's order.
    """
    check_choice(xscale, "xscale", ("auto", "linear", "log", "category"))
    if not numeric(ds, factor):
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


# --- drawing ------------------------------------------------------------------------------------------


def level(ds: xr.Dataset, given: float | None = None) -> float:
    """Confidence level of the intervals: ``given``, else the dataset's ``level`` attribute, else 0.95."""
    value = float(given if given is not None else ds.attrs.get("level", 0.95))
    if not 0 < value < 1:
        raise ValueError(f"level must lie between 0 and 1, got {value!r}")
    return value


def target(measure: str, nominal: float) -> float | None:
    """What ``measure`` should be: 0 for bias and relative errors, the nominal level for coverage."""
    if measure in ZERO_TARGET:
        return 0.0
    if measure in LEVEL_TARGET:
        return nominal
    return None


def mc_halfwidth(nominal: float, n_rep: np.ndarray) -> np.ndarray:
    """Half-width of the 95% Monte Carlo band around a nominal coverage: ``1.96 sqrt(l (1 - l) / n)``."""
    n = np.asarray(n_rep, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, Z95 * np.sqrt(nominal * (1 - nominal) / n), np.nan)


def draw_reference(ax: Axes, ds: xr.Dataset, measure: str, edges: np.ndarray, n_rep: np.ndarray,
                   nominal: float) -> None:
    """The target of ``measure``: the nominal level with its Monte Carlo band, or a line at 0.

    ``edges`` are the left and right ends of each x position's stretch of the band (``len(n_rep) + 1``);
    the band follows the replicates of each cell, so it widens where a cell was stopped early.
    """
    if measure in LEVEL_TARGET:
        half = mc_halfwidth(nominal, n_rep)
        if np.any(np.isfinite(half)):
            lo = np.append(nominal - half, nominal - half[-1])
            hi = np.append(nominal + half, nominal + half[-1])
            band = ax.fill_between(edges, lo, hi, step="post", color="0.5", alpha=0.18, lw=0,
                                   label="Monte Carlo band", zorder=0)
            band.set_gid("mc_band")
        ax.axhline(nominal, color=REFERENCE, ls=(0, (3, 2)), lw=0.8, label=f"Nominal {nominal:g}", zorder=1
                   ).set_gid("nominal")
    elif measure in ZERO_TARGET:
        ax.axhline(0.0, color=REFERENCE, ls=(0, (3, 2)), lw=0.8, label="Zero", zorder=1).set_gid("reference")


def cell_reps(panel: xr.Dataset, estimators: Sequence[str], dims: Sequence[str]) -> np.ndarray:
    """Replicates per cell (the most of any estimator) of ``panel``, along ``dims`` flattened in order."""
    n = panel["n_rep"].sel({"estimator": list(estimators)})
    n = n.max([d for d in n.dims if d not in dims])
    return np.asarray(n.transpose(*dims).values, dtype=float).ravel()


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


def columns(entries: Sequence[str], width: float) -> int:
    """How many legend columns of ``entries`` fit in ``width`` inches (rows balanced)."""
    size = points(mpl.rcParams["legend.fontsize"])
    pads = (mpl.rcParams["legend.handlelength"] + mpl.rcParams["legend.handletextpad"]
            + mpl.rcParams["legend.columnspacing"]) * size / 72.0
    entry = max(text_width(e, size) for e in entries) + pads
    ncol = max(1, min(len(entries), int((width - 0.3) / entry)))
    rows = -(-len(entries) // ncol)
    return -(-len(entries) // rows)


def draw_estimators(ax: Axes, ds: xr.Dataset, panel: xr.Dataset, measure: str, x: str,
                    shifted: Sequence[np.ndarray], estimators: Sequence[str], *, mcse: bool,
                    bounds: tuple[str, str] | None = None, **line: Any) -> int:
    """One line per estimator of ``measure`` against factor ``x``, with +-1.96 MCSE error bars (or, with
    ``bounds``, bars from the two variables named, e.g. power's exact interval).

    ``panel`` holds one value per level of ``x`` and estimator; ``shifted[k]`` are the x coordinates of the
    levels for the k-th estimator (dodged so that error bars do not overlap). Each estimator has its own
    colour, marker and dash. Estimators with no finite value in this panel are left out. Returns the number
    of lines drawn.
    """
    drawn = 0
    for k, m in enumerate(estimators):
        one = panel.sel({"estimator": m})
        y = np.asarray(one[measure].transpose(x).values, dtype=float)
        if not np.any(np.isfinite(y)):
            continue
        err = Z95 * np.asarray(one[f"{measure}_mcse"].transpose(x).values, dtype=float) if mcse else None
        if mcse and bounds is not None:
            lo, hi = (np.asarray(one[b].transpose(x).values, dtype=float) for b in bounds)
            err = np.vstack([np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)])
        opts = {**style(ds, m), "elinewidth": 0.8, "capsize": 1.8, "label": label(ds, m), "zorder": 2} | line
        gid = opts.pop("gid", None)
        bar = ax.errorbar(shifted[k], y, yerr=err, **opts)
        bar.lines[0].set_gid(gid)
        drawn += 1
    return drawn


def cell_table(ds: xr.Dataset, order: Sequence[str]) -> list[dict[str, Any]]:
    """Every combination of the levels of ``order`` (the last changing fastest)."""
    return [dict(zip(order, combo)) for combo in itertools.product(*(ds.coords[f].values for f in order))]


def contrast(rgba: Sequence[float]) -> str:
    """Black or white, whichever reads better on a colour (by its relative luminance)."""
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgba[:3])
    return "black" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.18 else "white"


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


def proxy(color: Any = "0.3", **line: Any) -> Any:
    """A legend handle: a line with a marker (``Line2D`` options)."""
    from matplotlib.lines import Line2D

    return Line2D([], [], color=color, **line)


def paired(ds: xr.Dataset, estimators: Sequence[str] | None, param: str | None, cell: Mapping[str, Any] | None,
           what: str, role: str) -> tuple[str, str, str, dict[str, Any], np.ndarray, np.ndarray, float]:
    """Replicate-level values of two estimators in one cell: ``(a, b, param, cell, x, y, true)``.

    ``what`` is ``"estimate"`` or ``"se"``; only replicates where both estimators have a finite value are
    kept, in replicate order. ``true`` is the true value of the parameter in that cell (NaN if unknown).
    """
    require_estimates(ds, role)
    check_choice(what, "what", ("estimate", "se"))
    param = resolve_param(ds, param)
    a, b = resolve_pair(ds, estimators)
    one, where = one_cell(ds, cell)
    one = one.sel({"param": param})
    x = np.asarray(one[what].sel({"estimator": a}).values, dtype=float).ravel()
    y = np.asarray(one[what].sel({"estimator": b}).values, dtype=float).ravel()
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 2:
        raise ValueError(f"{role}: fewer than two replicates have a finite {what} of {param!r} from both {a} "
                         f"and {b} at {cell_label_plain(where)}; nothing to compare")
    true = np.nan
    if "true" in one:
        values = np.asarray(one["true"].values, dtype=float).ravel()
        true = float(values[np.isfinite(values)][0]) if np.any(np.isfinite(values)) else np.nan
    return a, b, param, where, x[keep], y[keep], true


def cell_label_plain(cell: Mapping[str, Any]) -> str:
    """``n_groups=6, icc=0.2`` for messages (the names a user types)."""
    return ", ".join(f"{k}={fmt(v)}" for k, v in cell.items()) or "the only cell"


def what_label(ds: xr.Dataset, what: str, param: str) -> str:
    """``estimate of treat`` or ``SE of treat``, with the parameter's label."""
    return f"{'SE' if what == 'se' else 'estimate'} of {label(ds, param)}"


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
