"""The data-generating process contract and the checks of factor values.

A DGP is an object with

- ``generate(rng, **factors)``: one replicate's data, a dict of column name to 1-D numpy array, drawn only
  from ``rng`` (a ``numpy.random.Generator``; no global random state);
- ``truth(**factors)``: the true value of every estimand for that cell, by parameter name (fixed effects
  named as the estimators name them, variance components ``var(<grouping>)`` and ``var(residual)``);
- ``validate(**factors)``: raises ``ValueError`` with one clear line naming the factor and the value when a
  value is not allowed (group size 0, a negative variance, a non-integer count).

The factors a DGP takes, with their defaults, are what :func:`factor_names` returns; a design factor that is not
one of them is an error. A DGP declares them in one of two ways:

- a class attribute ``factors`` holding a dataclass with one field, with its default, per factor. The three
  methods then take ``**factors`` and each builds the dataclass from them first (``f = self.factors(**factors)``),
  which fills in the defaults and rejects an unknown factor name with a ``TypeError`` naming it. The DGPs of
  this package use ``@dataclass(slots=True)`` with a ``check()`` method that ``validate`` runs (not frozen: that
  would make building it, on every call of ``generate``, about 1.5 microseconds slower);
- otherwise, the keyword parameters of ``generate`` after ``rng`` (``def generate(self, rng, n=20, mu=0.0)``).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import numbers
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from simstudy.types import Data, Truth


@runtime_checkable
class DGP(Protocol):
    """What the runner needs of a data-generating process."""

    def generate(self, rng: np.random.Generator, **factors: Any) -> Data:
        """Draw one replicate's data."""
        ...

    def truth(self, **factors: Any) -> Truth:
        """True values of the estimands for one cell."""
        ...

    def validate(self, **factors: Any) -> None:
        """Raise ``ValueError`` naming the factor and value if a factor value is not allowed."""
        ...


def factor_names(dgp: DGP) -> dict[str, Any]:
    """The factors ``dgp`` takes, with their defaults (``inspect.Parameter.empty`` if none).

    Read from the fields of the dataclass ``dgp.factors`` when there is one, else from the keyword parameters
    of ``dgp.generate``.
    """
    declared = getattr(dgp, "factors", None)
    if isinstance(declared, type) and dataclasses.is_dataclass(declared):
        return {f.name: _field_default(f) for f in dataclasses.fields(declared) if f.init}
    sig = inspect.signature(dgp.generate)
    out = {}
    for name, p in sig.parameters.items():
        if name == "rng" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out[name] = p.default
    return out


def _field_default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return inspect.Parameter.empty


def check_count(name: str, value: Any, minimum: int = 1) -> int:
    """Check that a factor is an integer count of at least ``minimum`` and return it as ``int``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value).is_integer():
        raise ValueError(f"factor {name!r} must be a whole number, got {value!r}")
    if value < minimum:
        raise ValueError(f"factor {name!r} must be at least {minimum}, got {value!r}")
    return int(value)


def check_nonnegative(name: str, value: Any) -> float:
    """Check that a factor is a finite real number >= 0 (a variance, say) and return it as ``float``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"factor {name!r} must be a finite number, got {value!r}")
    if value < 0:
        raise ValueError(f"factor {name!r} must not be negative, got {value!r}")
    return float(value)


def check_positive(name: str, value: Any) -> float:
    """Check that a factor is a finite real number > 0 and return it as ``float``."""
    v = check_nonnegative(name, value)
    if v == 0:
        raise ValueError(f"factor {name!r} must be positive, got {value!r}")
    return v


def check_real(name: str, value: Any) -> float:
    """Check that a factor is a finite real number and return it as ``float``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"factor {name!r} must be a finite number, got {value!r}")
    return float(value)


def check_sequence(name: str, values: Any, length: int, length_name: str) -> Any:
    """Check that a factor is a flat sequence of ``length`` values (one per level of ``length_name``) and
    return it; its elements are for the caller to check."""
    if isinstance(values, (str, bytes)) or np.ndim(values) != 1:
        raise ValueError(f"factor {name!r} must be a sequence of numbers, got {values!r}")
    if len(values) != length:
        raise ValueError(f"factor {name!r} must have {length_name}={length} values, got {values!r}")
    return values


def check_proportion(name: str, value: Any, *, closed: bool = False) -> float:
    """Check that a factor lies in [0, 1) (or [0, 1] with ``closed``) and return it as ``float``."""
    v = check_nonnegative(name, value)
    if v > 1 or (v == 1 and not closed):
        raise ValueError(f"factor {name!r} must lie in [0, 1{']' if closed else ')'}, got {value!r}")
    return v


def check_choice(name: str, value: Any, choices: Mapping[str, Any] | tuple[str, ...]) -> str:
    """Check that a factor is one of ``choices`` and return it."""
    if value not in choices:
        raise ValueError(f"factor {name!r} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value
