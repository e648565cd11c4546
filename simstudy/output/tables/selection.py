"""What a paper table holds: the summary checked, and the parameters, estimators, factor levels, measures
and digits chosen from it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from simstudy.engine.store import json_attr
from simstudy.output.display import fmt
from simstudy.stats.measures import MEASURES

#: The measures of a paper table when none are chosen (those with no value in the selection are left out).
PAPER_MEASURES: tuple[str, ...] = ("bias", "emp_se", "model_se", "coverage", "rmse", "power")

#: Dimensions that are not design factors.
NOT_FACTORS = ("estimator", "param", "rep")


def require_summary(ds: Any) -> None:
    """``ValueError`` unless ``ds`` is a summary dataset (by estimator and param, with ``n_rep``)."""
    if not isinstance(ds, xr.Dataset):
        raise ValueError(f"a table needs an xarray Dataset (summary.nc), got {type(ds).__name__}")
    missing = [d for d in ("estimator", "param") if d not in ds.dims]
    if missing or "rep" in ds.dims or "n_rep" not in ds:
        raise ValueError("a table needs a summary dataset (summary.nc) with dimensions 'estimator' and 'param'"
                         + (f"; missing {', '.join(missing)}" if missing else ""))


def design_factors(ds: xr.Dataset) -> list[str]:
    """The design factors of a summary, in the design's order."""
    return [str(d) for d in ds["n_rep"].dims if d not in NOT_FACTORS]


def index_for(da: xr.DataArray, index: Mapping[str, int]) -> dict[str, int]:
    """The entries of ``index`` for the dimensions ``da`` has."""
    return {d: i for d, i in index.items() if d in da.dims}


def as_list(value: Any) -> list[Any]:
    """``value`` as a list: a string or a single value becomes a list of one."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, np.ndarray, range)):
        return [value]
    return list(value)


def select(summary: xr.Dataset, params: Any, estimators: Any, where: Mapping[str, Any] | None,
           all_params: bool = False) -> xr.Dataset:
    """The chosen parameters (default: the study's featured ones, unless ``all_params``), estimators and
    factor levels (``where``), in the order given; ``ValueError`` with one line for an unknown one."""
    ds = summary
    if params is None and not all_params:
        show = json_attr(summary, "show", []) or []
        have = [str(p) for p in summary.coords["param"].values]
        featured = [p for p in as_list(show) if str(p) in have]
        params = featured or None
    for dim, chosen in (("param", params), ("estimator", estimators)):
        if chosen is None:
            continue
        chosen = [str(c) for c in as_list(chosen)]
        have = [str(v) for v in ds.coords[dim].values]
        if not chosen:
            raise ValueError(f"no {dim} chosen; choose from {', '.join(have)}")
        missing = [c for c in chosen if c not in have]
        if missing:
            raise ValueError(f"unknown {dim} {missing[0]!r}; choose from {', '.join(have)}")
        ds = ds.isel({dim: [have.index(c) for c in chosen]})
    factors = design_factors(ds)
    for factor, level in (where or {}).items():
        if factor not in factors:
            raise ValueError(f"unknown factor {factor!r}; the design's factors are {', '.join(factors) or '(none)'}")
        levels = ds.coords[factor].values
        positions = []
        for wanted in as_list(level):
            hits = [i for i, v in enumerate(levels) if _same(v, wanted)]
            if not hits:
                raise ValueError(f"{factor}={wanted!r} is not a level of {factor}; its levels are "
                                 + ", ".join(fmt(v) for v in levels))
            positions.append(hits[0])
        ds = ds.isel({factor: positions})
    return ds


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.generic):
        a = a.item()
    if isinstance(b, np.generic):
        b = b.item()
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return bool(np.isclose(float(a), float(b), rtol=1e-9, atol=1e-12))
    return a == b or str(a) == str(b)


def choose_measures(ds: xr.Dataset, measures: Any) -> list[str]:
    """The measures (or counts) asked for, checked; by default :data:`PAPER_MEASURES` with a value."""
    known = [m for m in MEASURES if m in ds] + sorted(str(v) for v in ds.data_vars if str(v).startswith("n_"))
    if measures is None:
        chosen = [m for m in PAPER_MEASURES if m in ds and bool(np.any(np.isfinite(ds[m].values)))]
        return chosen or [m for m in PAPER_MEASURES if m in ds]
    chosen = [str(m) for m in as_list(measures)]
    if not chosen:
        raise ValueError(f"no measure chosen; choose from {', '.join(known)}")
    for m in chosen:
        if m not in known:
            raise ValueError(f"unknown measure {m!r}; choose from {', '.join(known)}")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"a measure is chosen twice: {', '.join(chosen)}")
    return chosen


def choose_digits(digits: int | Mapping[str, int], measures: Sequence[str]) -> dict[str, int]:
    """Decimals per measure: one number for all, or a mapping (others: 3)."""
    given = dict(digits) if isinstance(digits, Mapping) else {m: digits for m in measures}
    out = {m: given.get(m, 3) for m in measures}
    for m, d in out.items():
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or not 0 <= d <= 12:
            raise ValueError(f"digits must be a whole number from 0 to 12, got {d!r} for {m}")
    return {m: int(d) for m, d in out.items()}
