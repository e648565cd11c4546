"""Checks before a run starts: one replicate of the first cell, so bad input fails in a second, clearly.

Catches a DGP that raises, returns something that is not a table of equal-length 1-D columns, or returns
NaN; an estimator that names a column the data do not have; and true values whose names match no
estimator's parameter, or parameters without a true value.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from simstudy.design import cell_label
from simstudy.engine.chunk import safe_fit
from simstudy.estimators.formula import Formula
from simstudy.engine.rng import cell_key, replicate_rng


def check_data(data: Any, cell: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` unless ``data`` is a table of equal-length, NaN-free 1-D columns."""
    if not isinstance(data, (Mapping, pd.DataFrame)) or len(data.keys()) == 0:
        raise ValueError(f"the DGP must return a dict of columns or a DataFrame, got {type(data).__name__} "
                         f"(cell {cell_label(cell)})")
    lengths = set()
    for name in data.keys():
        col = np.asarray(data[name])
        if col.ndim != 1:
            raise ValueError(f"the DGP's column {name!r} is not 1-D (shape {col.shape}; cell {cell_label(cell)})")
        lengths.add(col.shape[0])
        if col.dtype.kind in "fc" and not np.isfinite(col).all():
            raise ValueError(f"the DGP returned NaN or infinite values in column {name!r} (cell {cell_label(cell)})")
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError(f"the DGP's columns have different or zero lengths {sorted(lengths)} (cell {cell_label(cell)})")


def check_estimator(method: str, estimator: Any, data: Any) -> None:
    """Raise ``ValueError`` if an estimator's formula or grouping names a column ``data`` lacks."""
    formula = getattr(estimator, "formula", None)
    if isinstance(formula, Formula):
        try:
            formula.check_columns(data)
        except ValueError as exc:
            raise ValueError(f"estimator {method!r}: {exc}") from None
    for attr in ("groups", "fixed_effects"):
        value = getattr(estimator, attr, None)
        names = [value] if isinstance(value, str) else list(value or [])
        for name in names:
            if isinstance(name, str) and name not in data:
                raise ValueError(f"estimator {method!r}: {attr} column {name!r} is not in the data "
                                 f"(columns: {', '.join(map(str, data.keys()))})")


def preflight(study: Any, cell: Mapping[str, Any], seed: int) -> tuple[float, dict[str, tuple[str, ...]]]:
    """Generate replicate 1 of ``cell``, check it and every estimator's columns against it, fit it once,
    and check that the estimators' parameter names and the cell's true values match
    (:meth:`simstudy.study.Study.check_estimands`).

    Returns the seconds that replicate took (generate and every fit), to size the tasks, and the
    parameter names each estimator reported.
    """
    key = cell_key(cell)
    t0 = time.perf_counter()
    data = _generate(study, cell, seed, key, 1)
    check_data(data, cell)
    for method, estimator in study.estimators.items():
        check_estimator(method, estimator, data)
    fits = {m: safe_fit(e, data)[0] for m, e in study.estimators.items()}  # a failed fit is data, not bad input
    seconds = time.perf_counter() - t0
    params = {m: f.params for m, f in fits.items() if f.params}
    unknown = [m for m in fits if not fits[m].params]
    for rep in range(2, 2 + PARAM_TRIES):  # estimators whose first fit failed without naming its parameters
        if not unknown:
            break
        data = _generate(study, cell, seed, key, rep)
        for m in list(unknown):
            fit = safe_fit(study.estimators[m], data)[0]
            if fit.params:
                params[m] = fit.params
                unknown.remove(m)
    for m in unknown:
        print(f"simstudy: warning: cannot check the parameter names of estimator {m!r}: its fits on "
              f"{PARAM_TRIES + 1} replicates of {cell_label(cell)} failed ({fits[m].message})", file=sys.stderr)
    check = getattr(study, "check_estimands", None)
    if check is not None:
        check(params, cell)
    return seconds, params


#: Further replicates tried to learn the parameter names of an estimator whose first fit failed.
PARAM_TRIES = 4


def _generate(study: Any, cell: Mapping[str, Any], seed: int, key: tuple[int, ...], rep: int) -> Any:
    try:
        return study.dgp.generate(replicate_rng(seed, key, rep), **cell)
    except Exception as exc:
        raise ValueError(f"the DGP failed on cell {cell_label(cell)}: {type(exc).__name__}: {exc}") from None
