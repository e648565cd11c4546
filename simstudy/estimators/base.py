"""The estimator contract: what every estimator's ``fit`` returns.

An estimator is configured in its constructor only (formula, groups, options) and stores nothing fitted.
``fit(data)`` takes one replicate's data (a mapping of column name to 1-D array, or a DataFrame) and returns
a :class:`Fit`. An estimator may also define ``fit_batch(datasets)`` returning one :class:`Fit` per dataset;
the runner uses it when present.

Failures are data: the runner calls ``fit`` inside ``warnings.catch_warnings(record=True)`` and a
``try``/``except``; an exception becomes ``Fit.failed(message)`` and warnings that reach the runner are added
to ``n_warnings``. An estimator that inspects its own warnings (to decide convergence, say) records them
itself and counts them in ``n_warnings``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from simstudy.types import Data

#: Fit statuses, in the order the runner stores them as integer codes.
STATUSES: tuple[str, ...] = ("ok", "boundary", "nonconverged", "failed")

#: The per-parameter values of a Fit, in the order of its fields.
VALUES: tuple[str, ...] = ("estimate", "se", "ci_lower", "ci_upper", "df")


@dataclass(frozen=True)
class Fit:
    """One estimator's results on one replicate.

    Attributes
    ----------
    params : tuple of str
        Parameter names, e.g. ``("Intercept", "x", "var(group)", "var(residual)")``.
    estimate, se, ci_lower, ci_upper, df : numpy.ndarray
        One value per parameter. ``df`` is NaN where a z interval is used; any value is NaN where the
        parameter is not estimable (the reason goes into ``message``).
    status : str
        One of :data:`STATUSES`: ``ok``; ``boundary`` (a variance component estimated at 0: a legitimate
        estimate, flagged); ``nonconverged``; ``failed`` (the fit raised; all values NaN).
    n_warnings : int
        Number of warnings the fit emitted.
    message : str
        Why a fit failed or did not converge, which parameters are not estimable, or the first warning.
    """

    params: tuple[str, ...]
    estimate: np.ndarray
    se: np.ndarray
    ci_lower: np.ndarray
    ci_upper: np.ndarray
    df: np.ndarray
    status: str = "ok"
    n_warnings: int = 0
    message: str = ""

    @property
    def converged(self) -> bool:
        """True unless the fit failed or did not converge."""
        return self.status in ("ok", "boundary")

    @classmethod
    def failed(cls, message: str, params: Sequence[str] = (), n_warnings: int = 0) -> "Fit":
        """A fit that raised: every value NaN (for ``params``, or none), status ``failed``."""
        nan = np.full(len(params), np.nan)
        return cls(tuple(params), nan, nan, nan, nan, nan, "failed", n_warnings, message)


@dataclass
class FitArrays:
    """The fits of a batch of replicates, stacked: what ``fit_batch_arrays`` returns (the runner takes these
    arrays as they are, instead of one :class:`Fit` per replicate), and what the runner stacks a list of Fits
    into.

    ``params`` is every parameter any replicate reports, in order of first appearance; the values are
    (replicates, params) arrays, NaN where a replicate does not report a parameter (``reported`` False) or
    could not estimate it. ``status`` holds codes into :data:`STATUSES`.
    """

    params: tuple[str, ...]
    estimate: np.ndarray
    se: np.ndarray
    ci_lower: np.ndarray
    ci_upper: np.ndarray
    df: np.ndarray
    reported: np.ndarray  # (n, P) bool
    status: np.ndarray  # (n,) int8
    n_warnings: np.ndarray  # (n,) int32
    message: list[str]
    #: each replicate's own parameters (the params of its Fit)
    names: list[tuple[str, ...]]

    def fit(self, i: int) -> Fit:
        """Replicate ``i`` as a Fit."""
        names = self.names[i]
        if names == self.params:
            cols: slice | list[int] = slice(None)
        else:
            index = {p: j for j, p in enumerate(self.params)}
            cols = [index[p] for p in names]
        return Fit(names, self.estimate[i, cols], self.se[i, cols], self.ci_lower[i, cols], self.ci_upper[i, cols],
                   self.df[i, cols], STATUSES[self.status[i]], int(self.n_warnings[i]), self.message[i])


class FitSlots:
    """One slot per replicate of a batch, filled with single :class:`Fit` objects (``slots[i] = fit``) or with
    blocks of stacked results (:meth:`put`); read back as :class:`FitArrays` (:meth:`arrays`, without a Fit
    per replicate) or as Fits (``slots[i]``, :meth:`fits`). A later write to a slot replaces an earlier one.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self._src = np.full(n, -1, np.intp)  # -1 empty, -2 a single Fit, else the block's index
        self._pos = np.zeros(n, np.intp)  # the row's position in its block
        self._single: dict[int, Fit] = {}
        self._blocks: list[tuple[np.ndarray, tuple[str, ...], tuple[np.ndarray, ...], np.ndarray, list[str]]] = []

    @classmethod
    def of(cls, fits: Sequence[Fit]) -> "FitSlots":
        """Slots holding ``fits``, in order."""
        slots = cls(len(fits))
        for i, fit in enumerate(fits):
            slots[i] = fit
        return slots

    def __len__(self) -> int:
        return self.n

    def __setitem__(self, i: int, fit: Fit) -> None:
        self._single[i] = fit
        self._src[i] = -2

    def put(self, rows: Sequence[int], params: tuple[str, ...], estimate: np.ndarray, se: np.ndarray,
            ci_lower: np.ndarray, ci_upper: np.ndarray, df: np.ndarray, status: Sequence[str] | np.ndarray,
            message: Sequence[str]) -> None:
        """Replicates ``rows`` (k of them) with parameters ``params``: values (k, len(params)); ``status``
        strings of :data:`STATUSES` or their codes; ``message`` one string each; no warnings."""
        rows = np.asarray(rows, np.intp)
        codes = np.asarray(status)
        if codes.dtype.kind in "UO":
            codes = np.array([STATUSES.index(s) for s in codes.tolist()], np.int8)
        for i in rows[self._src[rows] == -2].tolist():
            del self._single[i]
        self._src[rows] = len(self._blocks)
        self._pos[rows] = np.arange(rows.size)
        self._blocks.append((rows, tuple(params), (estimate, se, ci_lower, ci_upper, df), codes.astype(np.int8),
                             list(message)))

    def __getitem__(self, i: int) -> Fit:
        src = int(self._src[i])
        if src == -2:
            return self._single[i]
        if src == -1:
            raise IndexError(f"slot {i} was never filled")
        _, params, values, codes, message = self._blocks[src]
        r = int(self._pos[i])
        return Fit(params, *(v[r] for v in values), STATUSES[codes[r]], 0, message[r])

    def fits(self) -> list[Fit]:
        """Every replicate's Fit, in order."""
        return [self[i] for i in range(self.n)]

    def arrays(self) -> FitArrays:
        """Every replicate's results stacked (parameters in order of first appearance by replicate)."""
        n, src = self.n, self._src
        if (src == -1).any():
            raise IndexError(f"slot {int(np.flatnonzero(src == -1)[0])} was never filled")
        names: list[tuple[str, ...]] = [()] * n
        live = []  # (rows still held by the block, their positions in it, block)
        for b, block in enumerate(self._blocks):
            held = np.flatnonzero(src[block[0]] == b)
            if held.size:
                live.append((block[0][held], held, block))
                for i in block[0][held].tolist():
                    names[i] = block[1]
        by_names: dict[tuple[str, ...], list[int]] = {}
        for i in sorted(self._single):
            fit = self._single[i]
            names[i] = fit.params
            by_names.setdefault(fit.params, []).append(i)
        params = tuple(dict.fromkeys(p for group in dict.fromkeys(names) for p in group))
        index = {p: j for j, p in enumerate(params)}
        P = len(params)
        values = [np.full((n, P), np.nan) for _ in range(5)]
        reported = np.zeros((n, P), bool)
        status = np.zeros(n, np.int8)
        n_warnings = np.zeros(n, np.int32)
        message = [""] * n

        def at(rows: Sequence[int] | np.ndarray, group: tuple[str, ...]) -> tuple:
            if group == params:
                return (rows, slice(None))
            return np.ix_(rows, [index[p] for p in group])

        for rows, held, (_, group, stacked, codes, texts) in live:
            where = at(rows, group)
            for v, a in zip(values, stacked):
                v[where] = a[held] if held.size < a.shape[0] else a
            reported[where] = True
            status[rows] = codes[held]
            for i, k in zip(rows.tolist(), held.tolist()):
                message[i] = texts[k]
        for group, rows in by_names.items():
            fits = [self._single[i] for i in rows]
            if group:
                where = at(rows, group)
                for v, attr in zip(values, VALUES):
                    v[where] = np.array([getattr(f, attr) for f in fits], dtype=float).reshape(len(rows), len(group))
                reported[where] = True
            status[rows] = [STATUSES.index(f.status) for f in fits]
            n_warnings[rows] = [f.n_warnings for f in fits]
            for i, f in zip(rows, fits):
                message[i] = f.message
        return FitArrays(params, *values, reported, status, n_warnings, message, names)


@runtime_checkable
class Estimator(Protocol):
    """What the runner needs of an estimator."""

    def fit(self, data: Data) -> Fit:
        """Fit one replicate and return estimates, SEs, intervals and a status."""
        ...
