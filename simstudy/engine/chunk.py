"""What a worker does: run one task (a chunk of replicates of one cell) and return its results as arrays.

Per replicate: its own Generator (:mod:`simstudy.engine.rng`) -> ``dgp.generate`` -> every estimator fits the same
data. A fit that raises or warns is recorded (status, warning count, message) and the chunk goes on.

With a time limit (``run_chunk(..., timeout=seconds)``) a replicate whose generate and fits take longer is
recorded as failed for every estimator (message ``timed out after N s``) and the chunk goes on. The limit is
enforced in two ways:

* in the worker, by ``SIGALRM`` (``signal.setitimer``) when the chunk runs in the main thread of its process
  (loky workers and in-process runs do): Python code, ``time.sleep`` and most blocking calls are
  interrupted;
* by the parent, from a *heartbeat* file: before each replicate (or batch) the worker writes the moment by
  which it must be done and which replicates are to blame if it is not. Code that never returns to Python
  (a loop in compiled code, blocked signals) is caught there: the parent kills the worker (see
  :mod:`.dispatch`).

Batched fits (``fit_batch``, or ``fit_batch_arrays``): a replicate's limit covers its ``generate``, its share of
every batch and its own fits. A batch gets the time its replicates have left, summed; a batch that runs out (or
raises, or warns) is refitted one replicate at a time, each within the time its replicate has left (the
abandoned batch is not charged to them). Results of replicates that finish in time are the same, bit for bit,
with or without a limit.

Per-replicate overhead: the Generators come from :class:`~simstudy.engine.rng.ReplicateRngs` (the same as
``replicate_rng``, a tenth of the cost); the fits of a chunk share design matrices
(:func:`~simstudy.estimators.formula.shared_designs`: estimators with the same formula build it once per
replicate); an estimator with ``fit_batch_arrays`` hands back stacked arrays
(:class:`~simstudy.estimators.base.FitArrays`) that go into the chunk's arrays as they are, and a list of
Fits (``fit_batch``, ``fit``) is stacked once per estimator.
"""

from __future__ import annotations

import math
import os
import signal
import struct
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import FrameType
from typing import Any

import numpy as np

from simstudy.engine.rng import ReplicateRngs, cell_key
from simstudy.estimators.base import STATUSES, VALUES, Fit, FitArrays, FitSlots
from simstudy.estimators.formula import shared_designs

#: Status code of a replicate that was not run (a cell the design's filter leaves out).
NOT_RUN = -1
FAILED = STATUSES.index("failed")
#: A heartbeat record: deadline (``time.monotonic()``), first and last replicate to blame, and the
#: deadline again, negated (a torn read shows as a mismatch).
_BEAT = struct.Struct("<dqqd")


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


def timed_out_message(timeout: float) -> str:
    """The message recorded for every estimator of a replicate that ran out of time."""
    return f"timed out after {timeout:g} s"


def timed_out_after(message: str) -> float | None:
    """The limit a replicate ran out of, read from its :func:`timed_out_message`; None for other messages."""
    head, tail = "timed out after ", " s"
    if not (message.startswith(head) and message.endswith(tail)):
        return None
    try:
        return float(message[len(head) : -len(tail)])
    except ValueError:
        return None


class _TimedOut(BaseException):
    """Raised by the alarm in the middle of a replicate that ran out of time (a BaseException, so that
    ``except Exception`` in a fit does not swallow it)."""


class Limit:
    """The time limit of one chunk's replicates, in the worker: an alarm and a heartbeat file.

    Use as a context manager around the chunk; ``arm(seconds, first, last)`` before a replicate (or a batch
    of replicates ``first .. last``) and ``disarm()`` after it. With ``timeout=None`` it does nothing.

    Parameters
    ----------
    timeout : float, optional
        Seconds a replicate may take.
    beat : str, optional
        Path of the heartbeat file the parent watches.
    """

    def __init__(self, timeout: float | None = None, beat: str | None = None) -> None:
        self.timeout = timeout
        self.beat = beat if timeout is not None else None
        self.alarm = (timeout is not None and hasattr(signal, "setitimer")
                      and threading.current_thread() is threading.main_thread())
        self._armed = False
        self._fd: int | None = None
        self._previous: Any = None

    def __enter__(self) -> Limit:
        if self.alarm:
            self._previous = signal.signal(signal.SIGALRM, self._ring)
        if self.beat is not None:
            self._fd = os.open(self.beat, os.O_WRONLY | os.O_CREAT, 0o600)
        return self

    def __exit__(self, *exc: object) -> None:
        self.disarm()
        if self.alarm:
            signal.signal(signal.SIGALRM, self._previous)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _ring(self, signum: int, frame: FrameType | None) -> None:
        if self._armed:
            self._armed = False
            raise _TimedOut

    def _write(self, deadline: float, first: int, last: int) -> None:
        if self._fd is not None:
            os.pwrite(self._fd, _BEAT.pack(deadline, first, last, -deadline), 0)

    def arm(self, seconds: float, first: int, last: int) -> None:
        """Start the clock: ``seconds`` for replicates ``first .. last``; ``_TimedOut`` if none are left."""
        if self.timeout is None:
            return
        if seconds <= 0:
            raise _TimedOut
        self._write(time.monotonic() + seconds, first, last)
        if self.alarm:
            self._armed = True
            signal.setitimer(signal.ITIMER_REAL, seconds)

    def disarm(self) -> None:
        """Stop the clock (the alarm may still ring in here: the caller treats that as running out)."""
        if self.timeout is None:
            return
        if self.alarm:
            self._armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)
        self._write(math.inf, 0, -1)


def read_beat(path: str) -> tuple[float, int, int] | None:
    """A heartbeat file's (deadline, first, last); None if there is none yet, or it was caught mid-write."""
    try:
        with open(path, "rb") as f:
            data = f.read(_BEAT.size)
    except OSError:
        return None
    if len(data) < _BEAT.size:
        return None
    deadline, first, last, check = _BEAT.unpack(data)
    return (deadline, first, last) if deadline == -check else None


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
    batch = _try_batch(estimator, datasets, Limit(), math.inf, (0, 0))
    if batch is not None:
        return batch
    pairs = [safe_fit(estimator, d) for d in datasets]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _try_batch(estimator: Any, datasets: Sequence[Any], limit: Limit, budget: float, reps: tuple[int, int],
               arrays: bool = False) -> tuple[Any, list[float]] | None:
    """``estimator.fit_batch(datasets)`` (``fit_batch_arrays`` with ``arrays``) within ``budget`` seconds (for
    replicates ``reps[0] .. reps[1]``): (fits, seconds per replicate), or None if it ran out of time, raised,
    warned, or did not return one fit per dataset (the caller then fits them one at a time)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        try:
            limit.arm(budget, *reps)
            try:
                fits = estimator.fit_batch_arrays(datasets) if arrays else list(estimator.fit_batch(datasets))
            finally:
                limit.disarm()
            ok = _valid_arrays(fits, len(datasets)) if arrays else \
                len(fits) == len(datasets) and all(isinstance(f, Fit) for f in fits)
        except _TimedOut:
            limit.disarm()
            ok = False
        except Exception:
            ok = False
        seconds = (time.perf_counter() - t0) / max(len(datasets), 1)
    return (fits, [seconds] * len(datasets)) if ok and not caught else None


def _valid_arrays(fits: Any, n: int) -> bool:
    """``fit_batch_arrays`` returned stacked results of ``n`` replicates (a
    :class:`~simstudy.estimators.base.FitArrays`)."""
    try:
        P = len(fits.params)
        return (all(np.shape(getattr(fits, v)) == (n, P) for v in (*VALUES, "reported"))
                and all(np.shape(getattr(fits, v)) == (n,) for v in ("status", "n_warnings"))
                and len(fits.message) == n)
    except Exception:
        return False


def run_chunk(study: Any, task: Task, *, timeout: float | None = None, beat: str | None = None) -> ChunkResult:
    """Generate and fit replicates ``task.start .. task.stop - 1`` of one cell.

    Parameters
    ----------
    study : Study
        Its ``dgp`` and ``estimators``.
    task : Task
        The cell and the replicates.
    timeout : float, optional
        Seconds a replicate's generate and fits may take (see the module's notes); a replicate that takes
        longer is failed for every estimator with message ``timed out after N s``.
    beat : str, optional
        With ``timeout``: the heartbeat file the parent watches.
    """
    with Limit(timeout, beat) as limit:
        return _run(study, task, limit)


def _run(study: Any, task: Task, limit: Limit) -> ChunkResult:
    methods = tuple(study.estimators)
    reps = list(range(task.start, task.stop))
    n = len(reps)
    rngs = ReplicateRngs(task.seed, cell_key(task.cell), task.start, task.stop)
    batched = any(callable(getattr(e, "fit_batch", None)) or callable(getattr(e, "fit_batch_arrays", None))
                  for e in study.estimators.values())
    columns = {m: _Column(n) for m in methods}
    gen_seconds = [math.nan] * n
    timeout = limit.timeout if limit.timeout is not None else math.inf
    spent = [0.0] * n  # seconds of each replicate's generate and fits so far
    out = [False] * n  # replicates that ran out of time

    def generate(i: int) -> Any:
        t0 = time.perf_counter()
        try:
            data = study.dgp.generate(rngs(reps[i]), **task.cell)
        except Exception as exc:
            data = GenerateError(f"generate failed: {type(exc).__name__}: {exc}".splitlines()[0])
        gen_seconds[i] = spent[i] = time.perf_counter() - t0
        return data

    def fit_one(i: int, m: str, data: Any) -> None:
        fit, seconds = data.as_fit() if isinstance(data, GenerateError) else safe_fit(study.estimators[m], data)
        columns[m].one(i, fit, seconds)
        spent[i] += seconds

    if batched:
        datasets: list[Any] = [None] * n
        for i in range(n):
            try:
                limit.arm(timeout, reps[i], reps[i])
                datasets[i] = generate(i)
                limit.disarm()
            except _TimedOut:
                limit.disarm()
                out[i] = True
        with shared_designs():
            for m, est in study.estimators.items():
                live = [i for i in range(n) if not out[i]]
                good = [i for i in live if not isinstance(datasets[i], GenerateError)]
                batch = None
                as_arrays = callable(getattr(est, "fit_batch_arrays", None))
                if good and (as_arrays or callable(getattr(est, "fit_batch", None))):
                    budget = sum(max(timeout - spent[i], 0.0) for i in good)
                    batch = _try_batch(est, [datasets[i] for i in good], limit, budget,
                                       (reps[good[0]], reps[good[-1]]), arrays=as_arrays)
                if batch is not None:
                    columns[m].many(good, batch[0], batch[1][0] if batch[1] else math.nan)
                    for i, seconds in zip(good, batch[1]):
                        spent[i] += seconds
                # one at a time: every replicate without a batch (or whose batch failed), else the failed generates
                for i in live if batch is None else [i for i in live if isinstance(datasets[i], GenerateError)]:
                    try:
                        limit.arm(timeout - spent[i], reps[i], reps[i])
                        fit_one(i, m, datasets[i])
                        limit.disarm()
                    except _TimedOut:
                        limit.disarm()
                        out[i] = True
    else:
        for i in range(n):
            try:
                limit.arm(timeout, reps[i], reps[i])
                data = generate(i)
                with shared_designs():
                    for m in methods:
                        fit_one(i, m, data)
                limit.disarm()
            except _TimedOut:
                limit.disarm()
                out[i] = True
    if any(out):
        failed = Fit.failed(timed_out_message(timeout))
        for i in (i for i in range(n) if out[i]):
            gen_seconds[i] = math.nan
            for m in methods:
                columns[m].one(i, failed, math.nan)
    return _to_arrays(task, methods, columns, gen_seconds)


class GenerateError:
    """Stands in for a replicate whose ``generate`` raised: every method records a failed fit."""

    def __init__(self, message: str) -> None:
        self.message = message

    def as_fit(self) -> tuple[Fit, float]:
        return Fit.failed(self.message), 0.0


class _Column:
    """One estimator's results in a chunk: stacked results of batches and single Fits, by replicate."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.pieces: list[tuple[list[int], Any, float]] = []  # (rows, stacked results, seconds per replicate)
        self.fits: dict[int, tuple[Fit, float]] = {}

    def many(self, rows: list[int], fits: Any, seconds: float) -> None:
        """A batch's results: stacked arrays (``fit_batch_arrays``) or a list of Fits (``fit_batch``)."""
        self.pieces.append((rows, _stack(fits) if isinstance(fits, list) else fits, seconds))
        for i in rows:
            self.fits.pop(i, None)

    def one(self, i: int, fit: Fit, seconds: float) -> None:
        self.fits[i] = (fit, seconds)
        for rows, _, _ in self.pieces:
            if i in rows:  # a replicate refitted after its batch (timed out): the single result counts
                rows[rows.index(i)] = -1

    def params(self) -> list[str]:
        """Every parameter reported, in order of first appearance by replicate (as Fits were read before)."""
        first: dict[int, tuple[str, ...]] = {}
        for rows, stacked, _ in self.pieces:
            names = getattr(stacked, "names", None)
            for k, i in enumerate(rows):
                if i >= 0:
                    first[i] = names[k] if names is not None else stacked.params
        for i, (fit, _) in self.fits.items():
            first[i] = fit.params
        return list(dict.fromkeys(p for i in sorted(first) for p in first[i]))


_STATUS = {s: k for k, s in enumerate(STATUSES)}


def _stack(fits: list[Fit]) -> FitArrays:
    """A list of Fits as one :class:`~simstudy.estimators.base.FitArrays`."""
    return FitSlots.of(fits).arrays()


def _to_arrays(task: Task, methods: tuple[str, ...], columns: dict[str, _Column], gen_seconds: list[float]
               ) -> ChunkResult:
    params = tuple(dict.fromkeys(p for m in methods for p in columns[m].params()))
    index = {p: i for i, p in enumerate(params)}
    n, n_m, n_p = task.stop - task.start, len(methods), len(params)
    values = {v: np.full((n, n_m, n_p), np.nan) for v in VALUES}
    status = np.empty((n, n_m), np.int8)
    n_warnings = np.zeros((n, n_m), np.int32)
    message = np.empty((n, n_m), dtype=object)
    reported = np.zeros((n, n_m, n_p), dtype=bool)
    fit_seconds = np.full((n, n_m), np.nan)
    for j, m in enumerate(methods):
        column = columns[m]
        for rows, stacked, seconds in column.pieces:
            take = [k for k, i in enumerate(rows) if i >= 0]
            if not take:
                continue
            at = [rows[k] for k in take]
            src = slice(None) if len(take) == len(rows) else take
            cols = [index[p] for p in stacked.params]
            block = np.ix_(at, [j], cols)
            for v in VALUES:
                values[v][block] = np.asarray(getattr(stacked, v), dtype=float)[src][:, None, :]
            reported[block] = np.asarray(stacked.reported, dtype=bool)[src][:, None, :]
            status[at, j] = np.asarray(stacked.status)[src]
            n_warnings[at, j] = np.asarray(stacked.n_warnings)[src]
            texts = list(stacked.message)
            message[at, j] = [texts[k] for k in take]
            fit_seconds[at, j] = seconds
        for i, (fit, seconds) in column.fits.items():
            cols = [index[p] for p in fit.params]
            reported[i, j, cols] = True
            for v in VALUES:
                values[v][i, j, cols] = getattr(fit, v)
            status[i, j] = _STATUS[fit.status]
            n_warnings[i, j] = fit.n_warnings
            message[i, j] = fit.message
            fit_seconds[i, j] = seconds
    return ChunkResult(
        cell_index=task.cell_index, start=task.start, estimators=methods, params=params, values=values,
        status=status, n_warnings=n_warnings, message=message.astype(str), fit_seconds=fit_seconds,
        generate_seconds=np.asarray(gen_seconds, dtype=float), reported=reported,
    )
