"""Running tasks on joblib workers, streaming results back, and surviving workers that die.

Tasks stream through ``Parallel(return_as="generator_unordered")``. When a worker process dies (killed,
out of memory, a crash in compiled code) loky breaks the whole pool; the tasks that were in flight are
then run one at a time in a fresh worker, each retried ``retries`` times; a task that still kills its
worker is run replicate by replicate, and the replicates that kill a worker are recorded as failed fits
(message ``worker died ...``). Every other replicate is unaffected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

from simstudy.engine.chunk import FAILED, VALUES, ChunkResult, Task, run_chunk

try:  # loky's own error when a worker dies
    from joblib.externals.loky.process_executor import TerminatedWorkerError
except ImportError:  # pragma: no cover - older joblib
    TerminatedWorkerError = BrokenProcessPool  # type: ignore[misc,assignment]

try:  # a Dask task that killed its workers more often than the scheduler allows
    from distributed import KilledWorker
except ImportError:  # pragma: no cover - dask is optional
    KilledWorker = TerminatedWorkerError  # type: ignore[misc,assignment]

WORKER_DIED = (TerminatedWorkerError, BrokenProcessPool, KilledWorker)


def failed_chunk(task: Task, methods: Sequence[str], message: str) -> ChunkResult:
    """A chunk whose every fit failed with ``message`` (its worker died on every attempt)."""
    n, m = task.stop - task.start, len(methods)
    return ChunkResult(
        cell_index=task.cell_index, start=task.start, estimators=tuple(methods), params=(),
        values={v: np.empty((n, m, 0)) for v in VALUES}, status=np.full((n, m), FAILED, np.int8),
        n_warnings=np.zeros((n, m), np.int32), message=np.full((n, m), message, dtype=object).astype(str),
        fit_seconds=np.full((n, m), np.nan), generate_seconds=np.full(n, np.nan),
    )


def _config(backend: str):  # noqa: ANN202 - a joblib context manager
    from joblib import parallel_config

    # loky workers get one BLAS thread each; Dask's nanny sets OMP_NUM_THREADS=1 and friends itself
    return parallel_config(backend=backend, inner_max_num_threads=1) if backend == "loky" else \
        parallel_config(backend=backend)


def _stream(study: Any, tasks: Sequence[Task], jobs: int, backend: str,
            skip: Callable[[Task], bool]) -> Iterator[tuple[Task, ChunkResult]]:
    from joblib import Parallel, delayed

    with _config(backend):
        parallel = Parallel(n_jobs=jobs, return_as="generator_unordered", batch_size=1, pre_dispatch="2*n_jobs")
        # the generator is consumed lazily as tasks are dispatched, so skip() sees the latest state
        yield from parallel(delayed(_call)(study, t) for t in tasks if not skip(t))


def _call(study: Any, task: Task) -> tuple[Task, ChunkResult]:
    return task, run_chunk(study, task)


def _isolated(study: Any, task: Task, backend: str) -> ChunkResult | str:
    """Run one task in a worker process of its own; the error's name if the worker died."""
    from joblib import Parallel, delayed

    try:
        with _config(backend):
            # n_jobs=2 keeps even a single task in a worker process, never in this one
            return Parallel(n_jobs=2)([delayed(run_chunk)(study, task)])[0]
    except WORKER_DIED as exc:
        return type(exc).__name__


def _alone(study: Any, task: Task, backend: str, attempts: int) -> Iterator[ChunkResult]:
    """Run a suspect task by itself, ``attempts`` times; if it always kills its worker, run its replicates
    one by one so that only the replicates that kill a worker are recorded as failed."""
    error = ""
    for _ in range(attempts):
        result = _isolated(study, task, backend)
        if isinstance(result, ChunkResult):
            yield result
            return
        error = result
    message = f"worker died on {attempts} attempts ({error})"
    if task.stop - task.start == 1:
        yield failed_chunk(task, list(study.estimators), message)
        return
    for rep in range(task.start, task.stop):
        single = Task(task.cell_index, task.cell, rep, rep + 1, task.seed)
        result = _isolated(study, single, backend)
        yield result if isinstance(result, ChunkResult) else failed_chunk(single, list(study.estimators), message)


def execute(
    study: Any,
    tasks: Sequence[Task],
    jobs: int,
    *,
    backend: str = "loky",
    retries: int = 1,
    skip: Callable[[Task], bool] = lambda task: False,
    client: Any = None,
) -> Iterator[ChunkResult]:
    """Run ``tasks`` and yield their results as they finish, in any order.

    ``jobs == 1`` with loky runs in this process (no isolation from crashes). With ``backend="dask"`` the
    tasks go to the cluster of ``client`` (a ``distributed.Client``), always, whatever its size (joblib's
    dask backend would run a one-worker cluster's tasks in this process). ``skip(task)`` is asked just
    before a task is dispatched; a skipped task yields nothing.
    """
    from threadpoolctl import threadpool_limits

    if backend == "dask":
        if client is None:
            raise ValueError("the dask backend needs a client (see simstudy.engine.cluster.workers)")
        yield from _execute_dask(client, study, tasks, jobs, skip)
        return
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
                yield from _alone(study, task, backend, attempts=1 + retries)


def _execute_dask(client: Any, study: Any, tasks: Sequence[Task], workers: int,
                  skip: Callable[[Task], bool]) -> Iterator[ChunkResult]:
    """Submit tasks to a Dask cluster, at most ``2 * workers`` in flight, and yield results as they come.

    The study is sent to the workers once. Dask itself reschedules the tasks of a worker that dies; a task
    that kills workers more often than the scheduler allows (``KilledWorker``) is split into replicates,
    and only the replicates that still kill a worker are recorded as failed.
    """
    from distributed import as_completed

    shared = client.scatter(study, broadcast=True, hash=False)
    pending = iter(tasks)
    inflight: dict[Any, Task] = {}
    queue = as_completed()

    def submit_next() -> bool:
        for task in pending:
            if skip(task):
                continue
            future = client.submit(run_chunk, shared, task, pure=False)
            inflight[future] = task
            queue.add(future)
            return True
        return False

    for _ in range(2 * max(workers, 1)):
        if not submit_next():
            break
    for future in queue:
        task = inflight.pop(future)
        try:
            result = future.result()
        except KilledWorker as exc:
            yield from _replicates_on_cluster(client, shared, study, task, type(exc).__name__)
        else:
            yield result
        future.release()
        submit_next()


def _replicates_on_cluster(client: Any, shared: Any, study: Any, task: Task, error: str) -> Iterator[ChunkResult]:
    message = f"worker died on every attempt the Dask scheduler allows ({error})"
    if task.stop - task.start == 1:
        yield failed_chunk(task, list(study.estimators), message)
        return
    singles = [Task(task.cell_index, task.cell, r, r + 1, task.seed) for r in range(task.start, task.stop)]
    futures = [client.submit(run_chunk, shared, t, pure=False) for t in singles]
    for single, future in zip(singles, futures):
        try:
            yield future.result()
        except KilledWorker:
            yield failed_chunk(single, list(study.estimators), message)
