"""A check every estimator must pass: ``check_estimator(estimator, data)``.

It fits ``data`` (one replicate) and raises ``AssertionError`` with a one-line reason when the estimator
breaks the contract of :mod:`simstudy.estimators.base`:

- ``fit`` returns a :class:`~simstudy.estimators.base.Fit` whose ``params`` is a tuple of distinct strings
  and whose ``estimate``, ``se``, ``ci_lower``, ``ci_upper`` and ``df`` are 1-D float arrays of the same
  length as ``params``; ``status`` is one of :data:`~simstudy.estimators.base.STATUSES`, ``n_warnings`` a
  non-negative int, ``message`` a string;
- a ``failed`` fit has every value NaN;
- standard errors are NaN or >= 0; ``df`` is NaN or > 0; where estimate and limits are finite the interval
  contains the estimate (``ci_lower <= estimate <= ci_upper``);
- determinism: a second fit on the same data gives identical results (NaNs in the same places), and so
  does the data as a pandas DataFrame instead of a dict of arrays (or the other way round);
- statelessness: ``fit`` changes nothing on the estimator (a deep snapshot of ``vars(estimator)`` before
  and after) and nothing in the data.

Use it in tests: ``check_estimator(OLS("y ~ x"), data)`` for every estimator configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from simstudy.estimators.base import STATUSES, Fit
from simstudy.types import Data

__all__ = ["check_estimator"]

_ARRAYS = ("estimate", "se", "ci_lower", "ci_upper", "df")


def check_estimator(estimator: Any, data: Data) -> Fit:
    """Fit ``data`` with ``estimator``, assert the estimator contract, and return the fit."""
    name = type(estimator).__name__
    state_before = _snapshot(vars(estimator))
    data_before = _snapshot(_as_dict(data))

    fit = estimator.fit(data)
    _check_fit(fit, name)

    _require(_snapshot(vars(estimator)) == state_before, f"{name}.fit changed the estimator's attributes")
    _require(_snapshot(_as_dict(data)) == data_before, f"{name}.fit changed the data it was given")

    again = estimator.fit(data)
    _require(_same(fit, again), f"{name}.fit is not deterministic: two fits of the same data differ\n"
             f"first:  {fit}\nsecond: {again}")

    other = pd.DataFrame(_as_dict(data)) if not isinstance(data, pd.DataFrame) else _as_dict(data)
    third = estimator.fit(other)
    _require(_same(fit, third), f"{name}.fit gives different results for a dict of arrays and a DataFrame\n"
             f"first:  {fit}\nother:  {third}")
    _require(_snapshot(vars(estimator)) == state_before, f"{name}.fit changed the estimator's attributes")
    return fit


def _check_fit(fit: Any, name: str) -> None:
    _require(isinstance(fit, Fit), f"{name}.fit returned {type(fit).__name__}, not Fit")
    _require(isinstance(fit.params, tuple), f"{name}: Fit.params must be a tuple, got {type(fit.params)}")
    _require(all(isinstance(p, str) for p in fit.params), f"{name}: Fit.params must be strings: {fit.params}")
    _require(len(set(fit.params)) == len(fit.params), f"{name}: Fit.params has duplicates: {fit.params}")
    k = len(fit.params)
    for attr in _ARRAYS:
        arr = getattr(fit, attr)
        _require(isinstance(arr, np.ndarray), f"{name}: Fit.{attr} must be a numpy array, got {type(arr)}")
        _require(arr.ndim == 1 and arr.shape[0] == k,
                 f"{name}: Fit.{attr} has shape {arr.shape}, expected ({k},) like params")
        _require(arr.dtype.kind == "f", f"{name}: Fit.{attr} must be float, got dtype {arr.dtype}")
    _require(fit.status in STATUSES, f"{name}: Fit.status {fit.status!r} is not one of {STATUSES}")
    _require(isinstance(fit.n_warnings, (int, np.integer)) and not isinstance(fit.n_warnings, bool)
             and fit.n_warnings >= 0, f"{name}: Fit.n_warnings must be an int >= 0, got {fit.n_warnings!r}")
    _require(isinstance(fit.message, str), f"{name}: Fit.message must be a str, got {type(fit.message)}")
    if fit.status == "failed":
        for attr in _ARRAYS:
            _require(np.all(np.isnan(getattr(fit, attr))), f"{name}: a failed fit must have every {attr} NaN")
    se = fit.se
    _require(np.all(np.isnan(se) | (se >= 0)), f"{name}: negative standard error in {se}")
    _require(np.all(np.isnan(fit.df) | (fit.df > 0)), f"{name}: df must be NaN or > 0, got {fit.df}")
    for lo_name, hi_name in (("ci_lower", "estimate"), ("estimate", "ci_upper")):
        lo, hi = getattr(fit, lo_name), getattr(fit, hi_name)
        both = np.isfinite(lo) & np.isfinite(hi)
        _require(np.all(lo[both] <= hi[both]),
                 f"{name}: {lo_name} > {hi_name} for {[p for p, b in zip(fit.params, both & (lo > hi)) if b]}")
    if np.any(np.isnan(fit.estimate)) and fit.status != "failed":
        _require(bool(fit.message), f"{name}: NaN estimates need a reason in Fit.message")


def _same(a: Fit, b: Fit) -> bool:
    if (a.params, a.status, a.n_warnings, a.message) != (b.params, b.status, b.n_warnings, b.message):
        return False
    return all(np.array_equal(getattr(a, x), getattr(b, x), equal_nan=True) for x in _ARRAYS)


def _as_dict(data: Data) -> dict[str, np.ndarray]:
    if isinstance(data, pd.DataFrame):
        return {str(c): data[c].to_numpy() for c in data.columns}
    return {str(k): np.asarray(v) for k, v in data.items()}


def _snapshot(obj: Any, depth: int = 0) -> Any:
    """A comparable deep copy of an object's state (arrays by content, objects by their attributes)."""
    if depth > 20:
        return ("...",)
    if isinstance(obj, np.ndarray):
        return ("ndarray", obj.dtype.str, obj.shape, obj.tobytes() if obj.dtype != object else repr(obj.tolist()))
    if isinstance(obj, (str, bytes, int, float, complex, bool, type(None), np.generic)):
        return obj
    if isinstance(obj, Mapping):
        return ("map", tuple((repr(k), _snapshot(v, depth + 1)) for k, v in obj.items()))
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=repr) if isinstance(obj, (set, frozenset)) else obj
        return (type(obj).__name__, tuple(_snapshot(v, depth + 1) for v in items))
    if isinstance(obj, (pd.DataFrame, pd.Series)):
        return ("pandas", repr(obj.to_dict()))
    state = getattr(obj, "__dict__", None)
    if state is not None:
        return (type(obj).__qualname__, _snapshot(state, depth + 1))
    slots = getattr(type(obj), "__slots__", None)
    if slots:
        return (type(obj).__qualname__, tuple(_snapshot(getattr(obj, s, None), depth + 1) for s in slots))
    return (type(obj).__qualname__, repr(obj))


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)
