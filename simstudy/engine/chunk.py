"""What a worker does: run one task (a chunk of replicates of one cell) and return its results as arrays.

Per replicate: its own Generator (:mod:`simstudy.rng`) -> ``dgp.generate`` -> every estimator fits the same
data. A fit that raises or warns is recorded (status, warning count, message) and the chunk goes on.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from simstudy.estimators.base import STATUSES, Fit
from simstudy.rng import cell_key, replicate_rng

#: Status code of a replicate that was not run (a cell the design's filter leaves out).
NOT_RUN = -1
FAILED = STATUSES.index("failed")
VALUES = ("estimate", "se", "ci_lower", "ci_upper", "df")


@dataclass(frozen=True)
class Task:
    """Replicates ``start`` to ``stop - 1`` (1-based) of one cell."""

    cell_index: int
    cell: Mapping[str, Any]
    start: int
    stop: int
    seed: int


@dataclass
class ChunkResult:
    """The results of one task: arrays over (replicate, estimator[, param])."""

    cell_index: int
    start: int
    estimators: tuple[str, ...]
    params: tuple[str, ...]
    values: dict[str, np.ndarray]  # VALUES -> (n, M, P) float64
    status: np.ndarray  # (n, M) int8
    n_warnings: np.ndarray  # (n, M) int32
    message: np.ndarray  # (n, M) str
    fit_seconds: np.ndarray  # (n, M) float64
    generate_seconds: np.ndarray  # (n,) float64
    #: (n, M, P) bool: the fit listed the parameter (an estimate of NaN then means "not estimable");
    #: None for results from before this was recorded (then: the estimate is not NaN)
    reported: np.ndarray | None = None

    @property
    def n(self) -> int:
        """Number of replicates in the chunk."""
        return int(self.status.shape[0])


def _with_warnings(fit: Fit, caught: Sequence[warnings.WarningMessage]) -> Fit:
    if not caught:
        return fit
    message = fit.message or f"{caught[0].category.__name__}: {caught[0].message}"
    return replace(fit, n_warnings=fit.n_warnings + len(caught), message=message)


def safe_fit(estimator: Any, data: Any) -> tuple[Fit, float]:
    """Fit one replicate; an exception becomes a failed Fit and warnings are counted. Returns (fit, seconds)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        try:
            fit = estimator.fit(data)
            if not isinstance(fit, Fit):
                raise TypeError(f"fit() returned {type(fit).__name__}, not a Fit")
        except Exception as exc:  # failures are data
            fit = Fit.failed(f"{type(exc).__name__}: {exc}".splitlines()[0])
        seconds = time.perf_counter() - t0
    return _with_warnings(fit, caught), seconds


def safe_fit_batch(estimator: Any, datasets: Sequence[Any]) -> tuple[list[Fit], list[float]]:
    """Fit all replicates with ``estimator.fit_batch``; if it raises or warns, fit them one at a time."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        try:
            fits = list(estimator.fit_batch(datasets))
            ok = len(fits) == len(datasets) and all(isinstance(f, Fit) for f in fits)
        except Exception:
            ok = False
        seconds = (time.perf_counter() - t0) / max(len(datasets), 1)
    if ok and not caught:
        return fits, [seconds] * len(datasets)
    pairs = [safe_fit(estimator, d) for d in datasets]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def run_chunk(study: Any, task: Task) -> ChunkResult:
    """Generate and fit replicates ``task.start .. task.stop - 1`` of one cell."""
    key = cell_key(task.cell)
    methods = tuple(study.estimators)
    reps = range(task.start, task.stop)
    batched = any(callable(getattr(e, "fit_batch", None)) for e in study.estimators.values())
    fits: dict[str, list[Fit]] = {m: [] for m in methods}
    secs: dict[str, list[float]] = {m: [] for m in methods}
    gen_seconds: list[float] = []

    def generate(rep: int) -> Any:
        t0 = time.perf_counter()
        try:
            data = study.dgp.generate(replicate_rng(task.seed, key, rep), **task.cell)
        except Exception as exc:
            data = GenerateError(f"generate failed: {type(exc).__name__}: {exc}".splitlines()[0])
        gen_seconds.append(time.perf_counter() - t0)
        return data

    def record(method: str, fit: Fit, seconds: float) -> None:
        fits[method].append(fit)
        secs[method].append(seconds)

    if batched:
        datasets = [generate(r) for r in reps]
        good = [d for d in datasets if not isinstance(d, GenerateError)]
        for m, est in study.estimators.items():
            if callable(getattr(est, "fit_batch", None)):
                batch_fits, batch_secs = safe_fit_batch(est, good) if good else ([], [])
            else:
                pairs = [safe_fit(est, d) for d in good]
                batch_fits, batch_secs = [p[0] for p in pairs], [p[1] for p in pairs]
            it = iter(zip(batch_fits, batch_secs))
            for d in datasets:
                record(m, *(d.as_fit() if isinstance(d, GenerateError) else next(it)))
    else:
        for r in reps:
            data = generate(r)
            for m, est in study.estimators.items():
                record(m, *(data.as_fit() if isinstance(data, GenerateError) else safe_fit(est, data)))
    return _to_arrays(task, methods, fits, secs, gen_seconds)


class GenerateError:
    """Stands in for a replicate whose ``generate`` raised: every method records a failed fit."""

    def __init__(self, message: str) -> None:
        self.message = message

    def as_fit(self) -> tuple[Fit, float]:
        return Fit.failed(self.message), 0.0


def _to_arrays(
    task: Task,
    methods: tuple[str, ...],
    fits: dict[str, list[Fit]],
    secs: dict[str, list[float]],
    gen_seconds: list[float],
) -> ChunkResult:
    params = tuple(dict.fromkeys(p for m in methods for f in fits[m] for p in f.params))
    index = {p: i for i, p in enumerate(params)}
    n, n_m, n_p = task.stop - task.start, len(methods), len(params)
    values = {v: np.full((n, n_m, n_p), np.nan) for v in VALUES}
    status = np.empty((n, n_m), np.int8)
    n_warnings = np.zeros((n, n_m), np.int32)
    message = np.empty((n, n_m), dtype=object)
    reported = np.zeros((n, n_m, n_p), dtype=bool)
    for j, m in enumerate(methods):
        for i, fit in enumerate(fits[m]):
            cols = [index[p] for p in fit.params]
            reported[i, j, cols] = True
            for v in VALUES:
                values[v][i, j, cols] = getattr(fit, v)
            status[i, j] = STATUSES.index(fit.status)
            n_warnings[i, j] = fit.n_warnings
            message[i, j] = fit.message
    return ChunkResult(
        cell_index=task.cell_index, start=task.start, estimators=methods, params=params, values=values,
        status=status, n_warnings=n_warnings, message=message.astype(str),
        fit_seconds=np.array([secs[m] for m in methods], dtype=float).T.reshape(n, n_m),
        generate_seconds=np.asarray(gen_seconds, dtype=float), reported=reported,
    )
