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


@runtime_checkable
class Estimator(Protocol):
    """What the runner needs of an estimator."""

    def fit(self, data: Data) -> Fit:
        """Fit one replicate and return estimates, SEs, intervals and a status."""
        ...
