"""Helpers shared by the plot modules: checking arguments, choosing facets, styling methods.

Nothing here draws a whole figure. Every check raises ``ValueError`` with one line that names what was
asked for and what there is to choose from.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from simstudy.display import cell_label, fmt
from simstudy.measures import MEASURES
from simstudy.store import json_attr  # noqa: F401 - used by the plot modules

#: Dimensions that are not design factors.
NOT_FACTORS: tuple[str, ...] = ("method", "param", "rep")

#: Two-sided multiplier of the MCSE for the error bars (a 95% Monte Carlo interval).
Z95 = 1.959963984540054

#: Measures whose target is 0: a grey reference line is drawn there.
ZERO_TARGET: frozenset[str] = frozenset({"bias", "rel_bias", "rel_error", "rel_precision"})

#: Measures compared with the nominal level of the intervals.
LEVEL_TARGET: frozenset[str] = frozenset({"coverage", "be_coverage"})

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")


def factors(ds: xr.Dataset) -> list[str]:
    """The design factors of a summary or estimates dataset, in the design's order."""
    for var in ("bias", "estimate", "n_rep"):
        if var in ds:
            return [str(d) for d in ds[var].dims if d not in NOT_FACTORS]
    return [str(d) for d in ds.dims if d not in NOT_FACTORS]


def varying(ds: xr.Dataset) -> list[str]:
    """Design factors with more than one level."""
    return [f for f in factors(ds) if ds.sizes[f] > 1]


def require_summary(ds: Any, what: str) -> None:
    """``ValueError`` unless ``ds`` is a summary dataset (variables by method and param)."""
    if not isinstance(ds, xr.Dataset):
        raise ValueError(f"{what} needs an xarray Dataset (summary.nc), got {type(ds).__name__}")
    if "rep" in ds.dims:
        raise ValueError(f"{what} needs the summary dataset (summary.nc), not the replicate-level estimates")
    missing = [d for d in ("method", "param") if d not in ds.dims]
    if missing:
        raise ValueError(f"{what} needs a summary dataset with dimensions 'method' and 'param'; "
                         f"missing {', '.join(missing)}")


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


def resolve_methods(ds: xr.Dataset, methods: Sequence[str] | None) -> list[str]:
    """``methods``, checked against the dataset (default: all, in the dataset's order)."""
    names = [str(m) for m in ds.coords["method"].values]
    if methods is None:
        return names
    if isinstance(methods, str):
        methods = [methods]
    unknown = [m for m in methods if m not in names]
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r}; choose from: {', '.join(names)}")
    if not methods:
        raise ValueError("methods is empty; choose from: " + ", ".join(names))
    return list(methods)


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


def suptitle(fig: Figure, title: str, fixed: Mapping[str, Any], mcse: bool, *,
             fixed_format: str = " ({})") -> None:
    """Title a figure: ``title``, the factors held at one level, and what the error bars are."""
    if fixed:
        title += fixed_format.format(cell_label(fixed))
    if mcse:
        title += "; bars: \u00b11.96 MCSE"
    fig.suptitle(title, fontsize=10)


def facet_figure(n_rows: int, n_cols: int, figsize: tuple[float, float] | None, *, sharex: bool = True
                 ) -> tuple[Figure, np.ndarray]:
    """A constrained-layout Figure with a grid of axes sharing y (and x); a size that grows with the grid."""
    if figsize is None:
        figsize = (min(3.4 * n_cols + 1.8, 18.0), min(2.7 * n_rows + 0.9, 16.0))
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots(n_rows, n_cols, squeeze=False, sharex=sharex, sharey=True)


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


def style(ds: xr.Dataset, method: str) -> dict[str, Any]:
    """Colour and marker of a method, fixed by its position among all the dataset's methods."""
    names = [str(m) for m in ds.coords["method"].values]
    k = names.index(method) if method in names else 0
    return {"color": _COLORS[k % len(_COLORS)], "marker": _MARKERS[k % len(_MARKERS)]}


def axis_label(ds: xr.Dataset, measure: str) -> str:
    """``coverage (proportion)``: the measure's name and its units."""
    units = ds[measure].attrs.get("units", "") if measure in ds else ""
    return f"{measure} ({units})" if units else measure


def level(ds: xr.Dataset, given: float | None = None) -> float:
    """Confidence level of the intervals: ``given``, else the dataset's ``level`` attribute, else 0.95."""
    value = float(given if given is not None else ds.attrs.get("level", 0.95))
    if not 0 < value < 1:
        raise ValueError(f"level must lie between 0 and 1, got {value!r}")
    return value


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
        ax.axhline(nominal, color="0.3", ls="--", lw=1, label=f"nominal {nominal:g}", zorder=1
                   ).set_gid("nominal")
    elif measure in ZERO_TARGET:
        ax.axhline(0.0, color="0.3", ls="--", lw=1, label="0", zorder=1).set_gid("reference")


def cell_reps(panel: xr.Dataset, methods: Sequence[str], dims: Sequence[str]) -> np.ndarray:
    """Replicates per cell (the most of any method) of ``panel``, along ``dims`` flattened in order."""
    n = panel["n_rep"].sel({"method": list(methods)})
    n = n.max([d for d in n.dims if d not in dims])
    return np.asarray(n.transpose(*dims).values, dtype=float).ravel()


def legend(fig: Any, axes: Sequence[Axes], first: Sequence[str] = (), loc: str = "outside right center",
           **kwargs: Any) -> None:
    """One legend for the figure, each label once (those in ``first`` first, e.g. the methods), outside the
    panels (on the right by default)."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if not label.startswith("_") and label not in seen:
                seen[label] = handle
    labels = [lab for lab in first if lab in seen] + [lab for lab in seen if lab not in first]
    if labels:
        fig.legend([seen[lab] for lab in labels], labels, loc=loc, frameon=False, **kwargs)


def draw_methods(ax: Axes, ds: xr.Dataset, panel: xr.Dataset, measure: str, x: str, positions: np.ndarray,
                 methods: Sequence[str], *, mcse: bool, dodge: float = 0.0, **line: Any) -> int:
    """One line per method of ``measure`` against factor ``x``, with +-1.96 MCSE error bars.

    ``panel`` holds one value per level of ``x`` and method; ``positions`` are the x coordinates of the
    levels; methods are shifted by ``dodge`` (in x units) so that their error bars do not overlap.
    Methods with no finite value in this panel are left out. Returns the number of lines drawn.
    """
    drawn = 0
    shift = (np.arange(len(methods)) - (len(methods) - 1) / 2) * dodge
    for k, m in enumerate(methods):
        one = panel.sel({"method": m})
        y = np.asarray(one[measure].transpose(x).values, dtype=float)
        if not np.any(np.isfinite(y)):
            continue
        err = Z95 * np.asarray(one[f"{measure}_mcse"].transpose(x).values, dtype=float) if mcse else None
        opts = {**style(ds, m), "lw": 1.6, "ms": 4.5, "capsize": 2.5, "elinewidth": 1.0, "label": m} | line
        ax.errorbar(positions + shift[k], y, yerr=err, **opts)
        drawn += 1
    return drawn
