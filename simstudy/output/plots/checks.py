"""Checking a plot's arguments and choosing its data: design factors, parameters, estimators, levels, cells.

Every check raises ``ValueError`` with one line that names what was asked for and what there is to choose
from.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from simstudy.engine.store import json_attr
from simstudy.output.display import fmt
from simstudy.stats.measures import MEASURES

#: Dimensions that are not design factors.
NOT_FACTORS: tuple[str, ...] = ("estimator", "param", "rep")


def factors(ds: xr.Dataset) -> list[str]:
    """The design factors of a summary or estimates dataset, in the design's order."""
    for var in ("bias", "estimate", "n_rep"):
        if var in ds:
            return [str(d) for d in ds[var].dims if d not in NOT_FACTORS]
    return [str(d) for d in ds.dims if d not in NOT_FACTORS]


def varying(ds: xr.Dataset) -> list[str]:
    """Design factors with more than one level."""
    return [f for f in factors(ds) if ds.sizes[f] > 1]


def is_numeric(ds: xr.Dataset, factor: str) -> bool:
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


def select_levels(ds: xr.Dataset, choice: Mapping[str, Any] | None) -> xr.Dataset:
    """Fix design factors at one level each (``{"icc": 0.2}``).

    The factors stay as dimensions of length one, so that figures name them with the other fixed factors.
    """
    if not choice:
        return ds
    for factor in choice:
        check_factor(ds, factor, "select")
    return ds.isel({f: [level_index(ds, f, v)] for f, v in choice.items()})


def choose(ds: xr.Dataset, select: Mapping[str, Any] | None, param: str | None,
           estimators: Sequence[str] | None) -> tuple[xr.Dataset, str, list[str]]:
    """What a summary plot shows: ``ds`` with the factors of ``select`` held at one level (see
    :func:`select_levels`), the parameter and the estimators, checked."""
    ds = select_levels(ds, select)
    return ds, resolve_param(ds, param), resolve_estimators(ds, estimators)


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


def cell_table(ds: xr.Dataset, order: Sequence[str]) -> list[dict[str, Any]]:
    """Every combination of the levels of ``order`` (the last changing fastest)."""
    return [dict(zip(order, combo)) for combo in itertools.product(*(ds.coords[f].values for f in order))]


def nominal_level(ds: xr.Dataset, given: float | None = None) -> float:
    """Confidence level of the intervals: ``given``, else the dataset's ``level`` attribute, else 0.95."""
    value = float(given if given is not None else ds.attrs.get("level", 0.95))
    if not 0 < value < 1:
        raise ValueError(f"level must lie between 0 and 1, got {value!r}")
    return value


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
