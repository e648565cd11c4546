"""A small model-formula parser that builds design matrices with numpy, fast enough for the hot loop.

statsmodels' formula interface spends 7-20 ms per call building design matrices at n=1000; a study fits
thousands of replicates, so simstudy parses a formula once (in the estimator's constructor) and builds the
arrays of each replicate with plain numpy. The language is the part of Wilkinson-Rogers notation that
simulation models use, with patsy's names for the columns so results line up with statsmodels:

- ``y ~ x1 + x2``: numeric columns, with an intercept named ``Intercept``;
- ``C(g)``: treatment (dummy) coding of a categorical column, reference = the first sorted level,
  columns named ``C(g)[T.level]``;
- ``x1:x2``, ``C(g):x``: products of the terms' columns (named ``x1:x2``, ``C(g)[T.b]:x``);
- ``- 1`` or ``+ 0`` (or ``0 +``): no intercept; then, as in patsy, a first term that is one categorical
  factor gets a column for every level (``C(g)[a]``, ``C(g)[b]``).

Anything else is refused with a clear ``ValueError`` when the formula is parsed, not when it is used.

Shared designs: inside ``with shared_designs():`` (the runner opens one around each chunk) :meth:`Formula.build`
builds each (formula text, data object) once and hands every later caller the same arrays, so estimators that
share a formula (OLS, cluster-robust OLS, the mixed model ...) share one design matrix per replicate. The
shared design matrix is read-only (an estimator that wrote into it would change the data of the next one);
``y`` is, as always, the data's own array when that is already float64.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from simstudy.types import Data

_NAME = r"[A-Za-z_][A-Za-z0-9_.]*"
_FACTOR = re.compile(rf"^(?:(?P<cat>C\(\s*(?P<cname>{_NAME})\s*\))|(?P<num>{_NAME}))$")


@dataclass(frozen=True)
class _Factor:
    column: str
    categorical: bool


class Formula:
    """A parsed formula ``response ~ terms``; :meth:`build` turns one replicate's data into arrays.

    Parameters
    ----------
    text : str
        The formula, e.g. ``"score ~ hs_gpa + C(method)"``.

    Examples
    --------
    >>> f = Formula("y ~ x + C(g)")
    >>> y, X, names = f.build({"y": np.array([1., 2, 3]), "x": np.array([0., 1, 2]),
    ...                        "g": np.array(["a", "b", "b"])})
    >>> names
    ('Intercept', 'x', 'C(g)[T.b]')
    """

    def __init__(self, text: str) -> None:
        self.text = text
        if text.count("~") != 1:
            raise ValueError(f"formula {text!r} must have the form 'response ~ terms'")
        lhs, rhs = (s.strip() for s in text.split("~"))
        if not re.fullmatch(_NAME, lhs):
            raise ValueError(f"formula {text!r}: the response must be a column name, got {lhs!r}")
        self.response = lhs
        self.intercept = True
        terms: list[tuple[_Factor, ...]] = []
        rhs = re.sub(r"\s+", " ", rhs)
        tokens = re.split(r"\s*([+-])\s*", "+ " + rhs if rhs and rhs[0] not in "+-" else rhs)
        # tokens alternate: '', sign, term, sign, term ...
        pairs = list(zip(tokens[1::2], tokens[2::2]))
        if not pairs:
            raise ValueError(f"formula {text!r} has no terms")
        for sign, term in pairs:
            term = term.strip()
            if term in ("0", "1"):
                if (sign == "-" and term == "1") or (sign == "+" and term == "0"):
                    self.intercept = False
                elif sign == "+" and term == "1":
                    self.intercept = True
                else:
                    raise ValueError(f"formula {text!r}: cannot read '{sign} {term}'")
                continue
            if sign == "-":
                raise ValueError(f"formula {text!r}: removing terms ('- {term}') is not supported")
            factors = []
            for part in term.split(":"):
                m = _FACTOR.match(part.strip())
                if not m:
                    raise ValueError(
                        f"formula {text!r}: cannot read term {part.strip()!r} "
                        "(use column names, C(column) and ':' interactions)"
                    )
                factors.append(_Factor(m["cname"] or m["num"], m["cat"] is not None))
            if tuple(factors) not in terms:
                terms.append(tuple(factors))
        self.terms: tuple[tuple[_Factor, ...], ...] = tuple(terms)
        #: Every term a single numeric column (``y ~ x + treat``): the design is built column by column.
        self._numeric = tuple(t[0].column for t in self.terms) \
            if all(len(t) == 1 and not t[0].categorical for t in self.terms) else None
        self._names = (("Intercept",) if self.intercept else ()) + (self._numeric or ())
        self._columns = self.columns

    def __repr__(self) -> str:
        return f"Formula({self.text!r})"

    @property
    def columns(self) -> tuple[str, ...]:
        """Every data column the formula reads, the response first."""
        cols = [self.response]
        for term in self.terms:
            cols.extend(f.column for f in term if f.column not in cols)
        return tuple(dict.fromkeys(cols))

    def check_columns(self, data: Data) -> None:
        """Raise ``ValueError`` naming the first column the formula needs that ``data`` lacks."""
        for col in self.__dict__.get("_columns") or self.columns:
            if col not in data:
                raise ValueError(f"formula {self.text!r} names column {col!r}, which the data do not have")

    def build(self, data: Data) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        """Build the response vector, the design matrix and the column names for one replicate.

        Returns
        -------
        y : numpy.ndarray, shape (n,)
        X : numpy.ndarray, shape (n, p), float64, Fortran-ordered (read-only inside :func:`shared_designs`)
        names : tuple of str
        """
        cache: dict | None = getattr(_SHARED, "cache", None)
        if cache is None:
            return self._build(data)
        key = (self.text, id(data))
        hit = cache.get(key)
        if hit is not None and hit[0] is data:
            return hit[1]
        built = self._build(data)
        size = built[1].nbytes
        if _SHARED.bytes + size <= SHARED_BYTES:
            built[1].flags.writeable = False
            cache[key] = (data, built)  # the data object is kept: its id stays its own
            _SHARED.bytes += size
        return built

    def numeric_columns(self, data: Data) -> tuple[np.ndarray, list[np.ndarray], tuple[str, ...]] | None:
        """For a formula of numeric columns only: the response, the design's columns as they are (no
        intercept column: see :func:`fill_rows`) and the column names, without building ``X``; None where
        :meth:`build` takes its general path (which checks the columns itself); otherwise raises what
        :meth:`build` raises for a missing column."""
        numeric = self.__dict__.get("_numeric")
        if numeric is None:
            return None  # build's general path, which checks the columns itself
        self.check_columns(data)
        y = np.asarray(data[self.response], dtype=float)
        if y.ndim != 1:
            return None
        values = _numeric_values(data, numeric, y.shape[0])
        return None if values is None else (y, values, self._names)

    def _build(self, data: Data) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        self.check_columns(data)
        y = np.asarray(data[self.response], dtype=float)
        n = y.shape[0]
        numeric = self.__dict__.get("_numeric")  # None also for a Formula unpickled from an older simstudy
        if numeric is not None and y.ndim == 1:
            X = _numeric_design(data, numeric, self.intercept, n)
            if X is not None:
                return y, X, self._names
        blocks: list[np.ndarray] = []
        names: list[str] = []
        if self.intercept:
            blocks.append(np.ones((n, 1)))
            names.append("Intercept")
        for i, term in enumerate(self.terms):
            full_rank = i == 0 and not self.intercept and len(term) == 1
            block: np.ndarray | None = None  # (n, k) columns of the term so far
            labels: list[str] = [""]
            for factor in term:
                values = np.asarray(data[factor.column])
                if factor.categorical:
                    levels, codes = _levels_codes(values)
                    first = 0 if full_rank else 1
                    new = _dummies(codes, len(levels))[:, first:]
                    prefix = "" if full_rank else "T."
                    new_labels = [f"C({factor.column})[{prefix}{lev}]" for lev in levels[first:]]
                else:
                    new = values.astype(float).reshape(n, 1)
                    new_labels = [factor.column]
                # products of every column so far with every new column, the old column varying slowest
                block = new if block is None else (block[:, :, None] * new[:, None, :]).reshape(n, -1)
                labels = [f"{a}:{b}" if a else b for a in labels for b in new_labels]
            if block is not None and block.shape[1]:
                blocks.append(block)
                names.extend(labels)
        X = np.empty((n, len(names)), order="F")
        j = 0
        for block in blocks:
            X[:, j : j + block.shape[1]] = block
            j += block.shape[1]
        return y, X, tuple(names)


def _numeric_values(data: Data, columns: tuple[str, ...], n: int) -> list[np.ndarray] | None:
    """The numeric columns as they are, or None where one is not a 1-D array of n numbers (the general path of
    :meth:`Formula.build` is needed then)."""
    out = []
    for col in columns:
        values = np.asarray(data[col])
        if values.ndim != 1 or values.shape[0] != n or values.dtype.kind not in "biuf":
            return None
        out.append(values)
    return out


def fill_rows(out: np.ndarray, columns: list[np.ndarray], intercept: bool) -> None:
    """Write the design ``X`` of numeric ``columns`` (and an intercept) transposed into ``out`` (p, n): the
    same numbers as :meth:`Formula.build` (each column converted to float64 by assignment)."""
    if intercept:
        out[0] = 1.0
    for j, values in enumerate(columns, start=intercept):
        out[j] = values


def _numeric_design(data: Data, columns: tuple[str, ...], intercept: bool, n: int) -> np.ndarray | None:
    """The design of numeric columns (and an intercept) filled column by column; the same numbers as the
    general path (``astype(float)`` of each column), or None where that path is needed (a column that is
    not a 1-D array of n numbers)."""
    values = _numeric_values(data, columns, n)
    if values is None:
        return None
    X = np.empty((n, len(columns) + intercept), order="F")
    fill_rows(X.T, values, intercept)
    return X


#: Bytes of design matrices :func:`shared_designs` keeps at most (further builds are not shared).
SHARED_BYTES = 512 * 2**20
_SHARED = threading.local()


@contextmanager
def shared_designs() -> Iterator[None]:
    """Within this block (in this thread) every :meth:`Formula.build` of the same formula text on the same
    data object returns the same (read-only) arrays, built once. The runner opens one per chunk."""
    previous = getattr(_SHARED, "cache", None), getattr(_SHARED, "bytes", 0)
    _SHARED.cache, _SHARED.bytes = {}, 0
    try:
        yield
    finally:
        _SHARED.cache, _SHARED.bytes = previous


_MISSING = object()


class ColumnCache(dict):
    """A dict keyed by grouping columns' bytes (what is shared between replicates with the same grouping)
    whose :meth:`get` first compares with the key it found or stored last: consecutive replicates usually
    share their grouping, and comparing ~5 kB of bytes costs ~0.2 us where hashing them costs ~2 us."""

    def __init__(self) -> None:
        super().__init__()
        self._last: tuple[Any, Any] = (None, None)

    def get(self, key: Any, default: Any = None) -> Any:
        last_key, last_value = self._last
        if last_key is not None and last_key == key:
            return last_value
        value = super().get(key, _MISSING)
        if value is _MISSING:
            return default
        self._last = (key, value)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self._last = (key, value)


def group_codes(data: Data, column: str) -> tuple[np.ndarray, int]:
    """Integer codes 0..G-1 of a grouping column and the number of groups ``G``."""
    if column not in data:
        raise ValueError(f"grouping column {column!r} is not in the data")
    levels, codes = _levels_codes(np.asarray(data[column]))
    return codes, len(levels)


#: Integer columns whose range (max - min + 1) is at most this many times their length (or at most
#: ``_DENSE_MIN``) are coded with a bincount lookup table instead of a sort.
_DENSE_RATIO = 4
_DENSE_MIN = 4096


def _levels_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values of a 1-D array and the code (index into them) of every element.

    The same result as ``np.unique(values, return_inverse=True)`` (codes as ``intp``), but integer columns
    with a small range -- group labels 0..G-1, say -- are coded in O(n) with ``np.bincount`` and a lookup
    table instead of an O(n log n) sort.
    """
    values = np.asarray(values)
    if values.ndim != 1:
        values = values.ravel()
    if values.dtype.kind in "iu" and values.size:
        lo = int(values.min())
        span = int(values.max()) - lo + 1
        if span <= max(_DENSE_MIN, _DENSE_RATIO * values.size):
            # shift to 0..span-1 without overflow: signed values in int64, unsigned ones (>= lo) natively
            wide = values.astype(np.int64) if values.dtype.kind == "i" else values
            shifted = (wide - wide.dtype.type(lo)).astype(np.intp, copy=False)
            present = np.bincount(shifted, minlength=span) > 0
            levels = (np.flatnonzero(present).astype(wide.dtype) + wide.dtype.type(lo)).astype(values.dtype)
            if levels.shape[0] == span:  # every value in the range occurs: the shifted values are the codes
                return levels, shifted
            lookup = np.cumsum(present, dtype=np.intp) - 1
            return levels, lookup[shifted]
    levels, codes = np.unique(values, return_inverse=True)
    return levels, codes.astype(np.intp, copy=False).reshape(-1)


def _dummies(codes: np.ndarray, n_levels: int) -> np.ndarray:
    """An ``(n, n_levels)`` float indicator matrix: row ``i`` has a 1 in column ``codes[i]``."""
    out = np.zeros((codes.shape[0], n_levels))
    out[np.arange(codes.shape[0]), codes] = 1.0
    return out


#: How the labels of a nested grouping column are read (``nested_ids=`` of the mixed-model estimators).
NESTED_IDS = ("unique", "within")


def nest_codes(outer: np.ndarray, inner: np.ndarray, names: tuple[str, str],
               ids: str = "unique") -> tuple[np.ndarray, int, str]:
    """The units of a grouping level nested in the units of the level above it, and why they are refused.

    Parameters
    ----------
    outer : ndarray of int
        Codes 0..C-1 of the units of the level above, one per row.
    inner : ndarray
        The inner grouping column's labels, one per row.
    names : (str, str)
        Names of the outer and inner columns, for the message.
    ids : {"unique", "within"}
        ``"unique"``: an inner label identifies its unit on its own, so every label must occur in one outer
        unit only; a label seen under two or more outer units is refused, because the data then cannot say
        whether the inner column is crossed with the outer one (the same item seen by every subject) or
        numbered within it (rep 1 of centre a and rep 1 of centre b): both look the same. ``"within"``:
        labels are numbered within the outer unit; a unit is an (outer unit, label) pair.

    Returns
    -------
    codes : ndarray of intp
        Unit of every row, 0..U-1 (the distinct (outer, label) pairs in sorted order).
    U : int
        Number of units.
    problem : str
        ``""``, or one line saying why the nested model cannot be fitted: shared labels (``ids="unique"``),
        every inner unit a single observation (``var(inner)`` confounded with the residual variance; a crossed
        design with one observation per cell looks like that when declared ``"within"``), or every outer
        unit a single inner unit (``var(inner)`` confounded with ``var(outer)``).

    Examples
    --------
    >>> codes, U, problem = nest_codes(np.array([0, 0, 1, 1]), np.array([5, 5, 7, 8]), ("centre", "rep"))
    >>> codes.tolist(), U, problem
    ([0, 0, 1, 2], 3, '')
    >>> nest_codes(np.array([0, 0, 1, 1]), np.array([1, 2, 1, 2]), ("subj", "item"))[2][:52]
    "'item' labels repeat across 'subj' groups (2 of 2 la"
    """
    if ids not in NESTED_IDS:
        raise ValueError(f"nested_ids must be one of {NESTED_IDS}, got {ids!r}")
    o_name, i_name = names
    outer = np.asarray(outer)
    levels, lab = _levels_codes(np.asarray(inner))
    L = levels.shape[0]
    C = int(outer.max()) + 1 if outer.size else 0
    pairs, codes = _levels_codes(outer.astype(np.int64) * max(L, 1) + lab)
    U = pairs.shape[0]
    if ids == "unique" and U > L:
        n_outer = np.bincount(pairs % max(L, 1), minlength=L)
        shared = np.flatnonzero(n_outer > 1)
        k = shared[np.argmax(n_outer[shared])]
        example = levels[k].tolist() if hasattr(levels[k], "tolist") else levels[k]
        return codes, U, (
            f"{i_name!r} labels repeat across {o_name!r} groups ({shared.size} of {L} labels occur in more than "
            f"one; {i_name} {example!r} in {n_outer[k]} of {C}): either {i_name!r} is crossed with {o_name!r} "
            f"(crossed random effects are not supported) or its ids are numbered within {o_name!r}; if "
            f"{i_name} is nested in {o_name}, make its ids unique (e.g. {o_name} * 1000 + {i_name}) or pass "
            "nested_ids='within'")
    if U == outer.shape[0] and U > 0:
        return codes, U, (
            f"every ({o_name}, {i_name}) unit has a single observation: var({i_name}) and var(residual) are not "
            f"separately identifiable (if {i_name!r} is crossed with {o_name!r}: crossed random effects are "
            "not supported)")
    if U <= C:
        return codes, U, (f"every {o_name!r} has a single {i_name!r}: var({i_name}) and var({o_name}) are not "
                          "separately identifiable")
    return codes, U, ""
