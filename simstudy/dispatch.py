"""Running tasks on joblib workers, streaming results back, and surviving workers that die.

Tasks stream through ``Parallel(return_as="generator_unordered")``. When a worker process dies (killed,
out of memory, a crash in compiled code) loky breaks the whole pool; the tasks that were in flight are
then run one at a time in a fresh worker, each retried ``retries`` times, and a task that still kills its
worker is returned as a chunk of failed fits. Every other task is unaffected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

from simstudy.chunk import FAILED, VALUES, ChunkResult, Task, run_chunk

try:  # loky's own error when a worker dies
    from joblib.externals.loky.process_executor import TerminatedWorkerError
except ImportError:  # pragma: no cover - older joblib
    TerminatedWorkerError = BrokenProcessPool  # type: ignore[misc,assignment]

WORKER_DIED = (TerminatedWorkerError, BrokenProcessPool)


def failed_chunk(task: Task, methods: Sequence[str], message: str) -> ChunkResult:
    """A chunk whose every fit failed with ``message`` (its worker died on every attempt)."""
    n, m = task.stop - task.start, len(methods)
    return ChunkResult(
        cell_index=task.cell_index, start=task.start, methods=tuple(methods), params=(),
        values={v: np.empty((n, m, 0)) for v in VALUES}, status=np.full((n, m), FAILED, np.int8),
        n_warnings=np.zeros((n, m), np.int32), message=np.full((n, m), message, dtype=object).astype(str),
        fit_seconds=np.full((n, m), np.nan), generate_seconds=np.full(n, np.nan),
    )


def _stream(study: Any, tasks: Sequence[Task], jobs: int, backend: str,
            skip: Callable[[Task], bool]) -> Iterator[tuple[Task, ChunkResult]]:
    from joblib import Parallel, delayed, parallel_config

    with parallel_config(backend=backend, inner_max_num_threads=1):
        parallel = Parallel(n_jobs=jobs, return_as="generator_unordered", batch_size=1, pre_dispatch="2*n_jobs")
        # the generator is consumed lazily as tasks are dispatched, so skip() sees the latest state
        yield from parallel(delayed(_call)(study, t) for t in tasks if not skip(t))


def _call(study: Any, task: Task) -> tuple[Task, ChunkResult]:
    return task, run_chunk(study, task)


def _alone(study: Any, task: Task, backend: str, attempts: int) -> ChunkResult:
    from joblib import Parallel, delayed, parallel_config

    error = ""
    for _ in range(attempts):
        try:
            with parallel_config(backend=backend, inner_max_num_threads=1):
                # n_jobs=2 keeps even a single task in a worker process, never in this one
                return Parallel(n_jobs=2)([delayed(run_chunk)(study, task)])[0]
        except WORKER_DIED as exc:
            error = type(exc).__name__
    return failed_chunk(task, list(study.estimators), f"worker died on {attempts} attempts ({error})")


def execute(
    study: Any,
    tasks: Sequence[Task],
    jobs: int,
    *,
    backend: str = "loky",
    retries: int = 1,
    skip: Callable[[Task], bool] = lambda task: False,
) -> Iterator[ChunkResult]:
    """Run ``tasks`` and yield their results as they finish, in any order.

    ``jobs == 1`` runs in this process (no isolation from crashes). ``skip(task)`` is asked just before a
    task is dispatched; a skipped task yields nothing.
    """
    from threadpoolctl import threadpool_limits

    if jobs == 1:
        with threadpool_limits(limits=1):
            for task in tasks:
                if not skip(task):
                    yield run_chunk(study, task)
        return
    remaining = list(tasks)
    while remaining:
        done: set[tuple[int, int]] = set()
        try:
            for task, result in _stream(study, remaining, jobs, backend, skip):
                done.add((task.cell_index, task.start))
                yield result
            return
        except WORKER_DIED:
            remaining = [t for t in remaining if (t.cell_index, t.start) not in done and not skip(t)]
            # joblib dispatches in order and keeps at most 2 * jobs tasks in flight: the suspects
            suspects, remaining = remaining[: 2 * jobs], remaining[2 * jobs :]
            for task in suspects:
                yield _alone(study, task, backend, attempts=1 + retries)
