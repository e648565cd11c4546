"""The design grid: factor levels, their full product, an optional filter, and checks of the values."""

from __future__ import annotations

import itertools
import numbers
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

#: Names the results use for their own dimensions, and keyword arguments of xarray's ``sel`` (a dimension
#: called ``method`` is read by ``ds.sel(method=...)`` as its interpolation method, silently).
RESERVED = frozenset({"rep", "estimator", "param", "cell", "method", "tolerance", "drop", "indexers"})


def fmt(value: object) -> str:
    """A factor level or number for a label: ``6``, ``0.05``, ``ols``."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def cell_label(cell: Mapping[str, object]) -> str:
    """``n_groups=6, icc=0.05``."""
    return ", ".join(f"{k}={fmt(v)}" for k, v in cell.items())



class Design:
    """A grid of design factors.

    Parameters
    ----------
    factors : mapping of str to sequence
        Factor name to its levels, e.g. ``{"n_groups": [10, 30], "icc": [0.05, 0.2]}``. Levels are numbers,
        strings or booleans; a single value means a factor held fixed.
    where : callable, optional
        Called with a cell's factor values as keywords; cells for which it returns False are left out.

    Examples
    --------
    >>> d = Design({"n": [10, 20], "icc": [0.1, 0.3]}, where=lambda n, icc: n * icc < 5)
    >>> [c for c in d.cells()]
    [{'n': 10, 'icc': 0.1}, {'n': 10, 'icc': 0.3}, {'n': 20, 'icc': 0.1}]
    """

    def __init__(
        self, factors: Mapping[str, Sequence[Any] | Any], where: Callable[..., bool] | None = None
    ) -> None:
        self.factors: dict[str, list[Any]] = {}
        for name, levels in factors.items():
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"factor name {name!r} must be an identifier")
            if name in RESERVED:
                raise ValueError(f"factor name {name!r} is reserved ({', '.join(sorted(RESERVED))})")
            if isinstance(levels, (str, bytes)) or not isinstance(levels, Sequence):
                levels = [levels]
            levels = list(levels)
            if not levels:
                raise ValueError(f"factor {name!r} has no levels")
            for level in levels:
                if not isinstance(level, (numbers.Number, str, bool)):
                    raise ValueError(
                        f"factor {name!r}: level {level!r} is not a number, string or boolean "
                        "(fixed settings such as tuples belong in the DGP's constructor)"
                    )
            if len(set(levels)) != len(levels):
                raise ValueError(f"factor {name!r} has repeated levels: {levels!r}")
            self.factors[name] = levels
        self.where = where

    @property
    def names(self) -> tuple[str, ...]:
        """The factor names, in grid order."""
        return tuple(self.factors)

    def cells(self) -> Iterator[dict[str, Any]]:
        """The cells of the grid (dicts of factor values), the last factor varying fastest."""
        for combo in itertools.product(*self.factors.values()):
            cell = dict(zip(self.factors, combo))
            if self.where is None or self.where(**cell):
                yield cell

    def to_dict(self) -> dict[str, list[Any]]:
        """The factor levels, for provenance."""
        return {k: list(v) for k, v in self.factors.items()}
