"""Running tasks on worker processes, streaming results back, and surviving workers that die or hang.

Local runs (``backend="loky"``) use a pool of ``jobs`` worker processes, ``jobs == 1`` included: a worker
that dies or hangs then costs a retry, not the run. The workers are forked from this process where that is
safe (:mod:`.forkpool`: Linux, no other thread; nothing to start or import) and are loky's otherwise (fresh
interpreters); both are handled alike below, with the same results bit for bit. ``in_process=True`` runs
the tasks in this process instead (for debugging; no protection from crashes, nor from hangs in compiled
code). At most ``jobs`` tasks are in flight, so a task starts as soon as it is submitted and every result
that has arrived is in hand when the run is stopped.

Worker deaths: when a worker process dies (killed, out of memory, a crash in compiled code, ``os._exit``)
loky breaks the whole pool; the tasks that were in flight are then run one at a time ("alone"), each
``1 + retries`` times; a task that still kills its worker is run replicate by replicate, and the replicates
that kill a worker are recorded as failed fits (message ``worker died ...``). Every other replicate is
unaffected.

Hangs: with a ``timeout`` the workers limit each replicate themselves (:mod:`.chunk`). For a hang that does
not return to Python the parent reads each task's heartbeat; once a replicate is :func:`grace` seconds past
its deadline the pool is killed, that replicate is recorded as failed (``timed out after N s``) and the rest
of its task, like the other tasks that were in flight, runs again (a late batch sends its task back as
single replicates).

No orphans: workers die with this process (``PR_SET_PDEATHSIG`` on Linux, a thread watching the parent
elsewhere) and ignore Ctrl-C (the parent stops them: it kills the pool when it stops early).

Stopping: a :class:`~.progress.StopRequest` (SIGINT, SIGTERM) or a ``KeyboardInterrupt`` (raised while
waiting, or thrown into the generator, see :func:`arrived`) makes the generator yield the results that have
arrived, then raise :class:`~.progress.Interrupted`.
"""

from __future__ import annotations

import gc
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from simstudy.engine.chunk import FAILED, VALUES, ChunkResult, Task, read_beat, run_chunk, timed_out_message
from simstudy.engine.forkpool import ForkPool, fork_usable
from simstudy.engine.progress import Interrupted, StopRequest
from simstudy.lazy_modules import namespace
from simstudy.malloc_policy import keep_freed_memory
from simstudy.threads import ONE_THREAD

try:  # loky's own error when a worker dies
    from joblib.externals.loky.process_executor import TerminatedWorkerError
except ImportError:  # pragma: no cover - older joblib
    TerminatedWorkerError = BrokenProcessPool  # type: ignore[misc,assignment]

#: What a task's future raises when its loky worker died (Dask's ``KilledWorker`` is handled apart: importing
#: distributed here would slow down every worker's start).
WORKER_DIED = (TerminatedWorkerError, BrokenProcessPool)
#: Seconds between looks at the tasks in flight (stop requests, heartbeats).
POLL = 0.1
#: Seconds an idle loky worker waits for work before it exits (the pool is reused between runs).
IDLE_WORKER = 300
#: One BLAS/OpenMP thread per worker (as joblib's ``inner_max_num_threads=1``).
#: ``SIMSTUDY_WORKER=1`` tells code that it runs in a worker process (loky's or forked).
WORKER_ENV = {**ONE_THREAD, "SIMSTUDY_WORKER": "1"}
_PR_SET_PDEATHSIG = 1


#: Prefix of the heartbeat directories (followed by the owner's process id and a dash).
BEATS = "simstudy-beats-"


def sweep_beats(root: str | None = None) -> None:
    """Remove the heartbeat directories in ``root`` (default: the temporary directory) of processes that no
    longer run."""
    root = root or tempfile.gettempdir()
    try:
        names = [n for n in os.listdir(root) if n.startswith(BEATS)]
    except OSError:
        return
    for name in names:
        owner = name[len(BEATS) :].split("-", 1)[0]
        if not owner.isdigit():
            continue
        try:
            os.kill(int(owner), 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        except OSError:  # it runs, as another user
            pass


def grace(timeout: float) -> float:
    """Seconds past a replicate's deadline before the parent kills its worker: the alarm in the worker
    normally ends the replicate first; this only catches hangs that never return to Python."""
    return 2.0 + 0.1 * timeout


def failed_chunk(task: Task, methods: Sequence[str], message: str) -> ChunkResult:
    """A chunk whose every fit failed with ``message`` (its worker died on every attempt, or it timed out)."""
    n, m = task.stop - task.start, len(methods)
    return ChunkResult(
        cell_index=task.cell_index, start=task.start, estimators=tuple(methods), params=(),
        values={v: np.empty((n, m, 0)) for v in VALUES}, status=np.full((n, m), FAILED, np.int8),
        n_warnings=np.zeros((n, m), np.int32), message=np.full((n, m), message, dtype=object).astype(str),
        fit_seconds=np.full((n, m), np.nan), generate_seconds=np.full(n, np.nan),
    )


def execute(
    study: Any,
    tasks: Sequence[Task],
    jobs: int,
    *,
    backend: str = "loky",
    retries: int = 1,
    skip: Callable[[Task], bool] = lambda task: False,
    client: Any = None,
    timeout: float | None = None,
    in_process: bool = False,
    stop: StopRequest | None = None,
    fork: bool | None = None,
) -> Iterator[ChunkResult]:
    """Run ``tasks`` and yield their results as they finish, in any order.

    Arguments are checked at once; the work starts when the first result is asked for.

    Parameters
    ----------
    study : Study
        What the workers run (sent to them with each task).
    tasks : sequence of Task
        The chunks to run.
    jobs : int
        Worker processes (loky), or the Dask cluster's size (how many tasks to keep in flight, twice that).
    backend : str
        ``loky`` or ``dask``; with ``dask`` the tasks go to the cluster of ``client`` (a
        ``distributed.Client``), always, whatever its size.
    retries : int
        Extra attempts, alone, of a task whose worker died, before it is split into replicates.
    skip : callable
        Asked just before a task is dispatched; a skipped task yields nothing.
    timeout : float, optional
        Seconds a replicate may take (not with Dask, whose tasks run in threads that cannot be stopped).
    in_process : bool
        Run the tasks in this process, one at a time (loky only).
    stop : StopRequest, optional
        Polled between results: once it holds a signal, the results that have arrived are yielded and
        :class:`~.progress.Interrupted` is raised.
    fork : bool, optional
        Local workers forked from this process (:mod:`.forkpool`) rather than loky's fresh interpreters;
        default: where :func:`~.forkpool.fork_usable` says it is safe.
    """
    if retries < 0:
        raise ValueError(f"retries must be 0 or more, got {retries}")
    if timeout is not None and not (timeout > 0 and math.isfinite(timeout)):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout}")
    if backend == "dask":
        if client is None:
            raise ValueError("the dask backend needs a client (see simstudy.engine.cluster.workers)")
        if timeout is not None:
            raise ValueError(DASK_TIMEOUT)
        if in_process:
            raise ValueError("in-process runs go with the loky backend, not dask")
        _send_in_memory_modules_by_value()
        return _execute_dask(client, study, tasks, jobs, skip, stop)
    if in_process:
        if timeout is not None and not _alarm_usable():
            raise ValueError("a timeout in-process needs the main thread (SIGALRM); run in worker processes")
        return _in_process(study, tasks, skip, timeout, stop)
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    _send_in_memory_modules_by_value()
    return _Local(study, jobs, retries, skip, timeout, stop, fork_usable() if fork is None else fork).run(tasks)


#: Why ``--timeout`` is refused with Dask.
DASK_TIMEOUT = ("--timeout does not work with --backend dask (Dask runs tasks in worker threads, which cannot "
                "be stopped); use --backend loky")


def arrived(results: Iterator[ChunkResult], exc: BaseException) -> Iterator[ChunkResult]:
    """The results that had arrived when ``exc`` (a ``KeyboardInterrupt``) stopped the consumer of
    :func:`execute`'s ``results``: thrown into the generator, which hands them out and then raises
    :class:`~.progress.Interrupted` (which ends this iterator)."""
    try:
        first = results.throw(exc)
    except (StopIteration, KeyboardInterrupt):
        return
    yield first
    try:
        yield from results
    except KeyboardInterrupt:
        return


def _send_in_memory_modules_by_value() -> None:
    """Have cloudpickle send the code of modules that exist only in this process (made in memory, with no
    file and no import spec, such as one standing in for a notebook) by value: a worker cannot import them.
    (Study files are taken care of by :func:`simstudy.study.load_study`, ``__main__`` by cloudpickle.)"""
    try:
        import cloudpickle
    except ImportError:  # pragma: no cover - loky depends on it
        return
    for name, module in list(sys.modules.items()):
        own = namespace(module)
        if name != "__main__" and own and own.get("__spec__", "") is None and own.get("__file__") is None:
            try:
                cloudpickle.register_pickle_by_value(module)
            except (ValueError, TypeError):
                pass


def _unsendable(error: BaseException) -> str | None:
    """The reason a worker could not read a task (not a crash: retrying cannot help), or None."""
    cause = error.__cause__
    if isinstance(error, TerminatedWorkerError) or type(cause).__name__ != "_RemoteTraceback":
        return None
    lines = [line.strip() for line in str(cause).splitlines() if line.strip().strip('"')]
    return lines[-1] if lines else type(error).__name__


def _alarm_usable() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def _in_process(study: Any, tasks: Sequence[Task], skip: Callable[[Task], bool], timeout: float | None,
                stop: StopRequest | None) -> Iterator[ChunkResult]:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        try:
            for task in tasks:
                if stop is not None:
                    stop.check()
                if skip(task):
                    continue
                with stop.now() if stop is not None else nullcontext():  # nothing else could stop a chunk here
                    result = run_chunk(study, task, timeout=timeout)
                yield result
        except KeyboardInterrupt as exc:
            raise Interrupted(getattr(exc, "signum", signal.SIGINT)) from None


# --- loky workers ---------------------------------------------------------------------------------------


def _worker_init(parent: int) -> None:
    """Set up a loky worker: Ctrl-C is for the parent (which stops the pool), the worker dies with the
    parent (:func:`die_with_parent`), and it keeps the memory it frees for the next chunk
    (:func:`simstudy.malloc_policy.keep_freed_memory`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent)
    keep_freed_memory()


def _forked_init(parent: int) -> None:
    """Set up a forked worker as a loky worker is (:func:`_worker_init`, :data:`WORKER_ENV`), its BLAS already
    loaded by the parent limited to one thread as the environment limits a loky worker's."""
    _worker_init(parent)
    gc.freeze()  # the parent's objects: never traversed here (no time, no copy-on-write of their pages)
    gc.enable()
    os.environ.update(WORKER_ENV)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)  # for the worker's life (nothing restores it)


def die_with_parent(parent: int) -> None:
    """Make this process die when ``parent`` does, even when it hangs in compiled code: ``PR_SET_PDEATHSIG``
    on Linux, elsewhere a daemon thread that watches the parent.

    Parameters
    ----------
    parent : int
        The process id of the parent, read before this process started (if it has already died, this
        process exits at once).
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            if ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
                if os.getppid() != parent:  # the parent died before the request took effect
                    os._exit(1)
                return
        except (OSError, AttributeError):  # pragma: no cover - no prctl in this libc
            pass
    threading.Thread(target=_watch_parent, args=(parent,), name="simstudy-watch-parent", daemon=True).start()


def _watch_parent(parent: int) -> None:  # pragma: no cover - used where prctl is not
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _pool(jobs: int) -> Any:
    """loky's reusable executor with ``jobs`` workers set up by :func:`_worker_init`."""
    from joblib.externals.loky import get_reusable_executor

    env = WORKER_ENV | ({} if "ENABLE_IPC" in os.environ else {"ENABLE_IPC": "1"})  # TBB: share threads
    return get_reusable_executor(max_workers=jobs, timeout=IDLE_WORKER, initializer=_worker_init,
                                 initargs=(os.getpid(),), env=env)


@dataclass(frozen=True)
class _Item:
    """A task in the queue: ``alone`` once it is suspected of killing its worker (then it runs with nothing
    else in flight, ``tries`` more times); ``message`` for a replicate of a task that always killed it."""

    task: Task
    alone: bool = False
    tries: int = 0
    message: str = ""


class _Beats:
    """Heartbeat files of the tasks in flight (only with a timeout), in a temporary directory named after this
    process; the directories of processes that no longer run (killed before they could clean up) are
    removed when a new one is made."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.dir = None
        if timeout is not None:
            sweep_beats()
            self.dir = tempfile.mkdtemp(prefix=f"{BEATS}{os.getpid()}-")
        self.count = 0

    def new(self) -> str | None:
        if self.dir is None:
            return None
        self.count += 1
        return os.path.join(self.dir, str(self.count))

    def late(self, path: str | None) -> tuple[int, int] | None:
        """The replicates (first, last) of a task that are past their deadline by :func:`grace` seconds."""
        beat = read_beat(path) if path is not None and self.timeout is not None else None
        if beat is None or time.monotonic() <= beat[0] + grace(self.timeout):  # type: ignore[arg-type]
            return None
        return beat[1], beat[2]

    def drop(self, path: str | None) -> None:
        if path is not None:
            try:
                os.unlink(path)
            except OSError:
                pass

    def close(self) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)


def _done_ok(future: Future) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


class _Local:
    """Tasks on worker processes of this machine (a :class:`~.forkpool.ForkPool` when ``fork``, else loky's
    pool): at most ``jobs`` in flight, suspects alone, deaths and hangs isolated."""

    def __init__(self, study: Any, jobs: int, retries: int, skip: Callable[[Task], bool], timeout: float | None,
                 stop: StopRequest | None, fork: bool = False) -> None:
        self.study, self.jobs, self.retries, self.skip, self.timeout, self.stop = \
            study, jobs, retries, skip, timeout, stop
        self.methods = list(study.estimators)
        self.queue: deque[_Item] = deque()
        self.inflight: dict[Future, tuple[_Item, str | None]] = {}
        self.ready: deque[ChunkResult] = deque()
        self.pool: Any = None
        self.beats = _Beats(timeout)
        self.fork = fork

    def run(self, tasks: Sequence[Task]) -> Iterator[ChunkResult]:
        self.queue.extend(_Item(t) for t in tasks)
        try:
            while self.queue or self.inflight:
                if self.stop is not None:
                    self.stop.check()
                self._fill()
                if not self.inflight:
                    continue  # the rest was skipped
                if isinstance(self.pool, ForkPool):
                    done = self.pool.wait(self.inflight, POLL)
                else:
                    done, _ = wait(list(self.inflight), timeout=POLL, return_when=FIRST_COMPLETED)
                died = self._collect(done)
                if died is not None:
                    self._after_death(died)
                elif self.timeout is not None:
                    late = {f: s for f, (_, path) in self.inflight.items() if (s := self.beats.late(path))}
                    if late:
                        self._after_hang(late)
                self._fill()  # keep the workers busy while the results are saved
                while self.ready:
                    yield self.ready.popleft()
        except KeyboardInterrupt as exc:  # a stop request, Ctrl-C while waiting, or thrown in at a yield
            self._kill()
            got = [*self.ready, *(f.result() for f in self.inflight if _done_ok(f))]
            self.ready.clear()
            self.inflight.clear()
            yield from got
            raise Interrupted(getattr(exc, "signum", signal.SIGINT)) from None
        finally:
            if self.inflight:
                self._kill()
            elif isinstance(self.pool, ForkPool):  # not reused by the next run: forking anew costs nothing
                self.pool.shutdown()
                self.pool = None
            self.beats.close()

    def _fill(self) -> None:
        """Submit queued tasks up to ``jobs`` in flight; a suspect only when nothing else is."""
        while self.queue and len(self.inflight) < self.jobs:
            if any(item.alone for item, _ in self.inflight.values()):
                return
            item = self.queue[0]
            if item.alone and self.inflight:
                return
            self.queue.popleft()
            if self.skip(item.task):
                continue
            path = self.beats.new()
            try:
                future = self._submit(item.task, path)
            except WORKER_DIED:  # the pool broke while idle (a worker was killed): a fresh one
                self._kill()
                future = self._submit(item.task, path)
            self.inflight[future] = (item, path)

    def _submit(self, task: Task, beat: str | None) -> Future:
        if self.pool is None:
            self.pool = ForkPool(self.jobs, shared=(self.study,), initializer=_forked_init,
                                 initargs=(os.getpid(),)) if self.fork else _pool(self.jobs)
        return self.pool.submit(run_chunk, self.study, task, timeout=self.timeout, beat=beat)

    def _kill(self) -> None:
        """Kill the workers (SIGKILL, so that a hung one goes too), then wait for loky to clean up.

        The workers are killed here rather than by ``shutdown(kill_workers=True)``, which races loky's manager
        thread (a ``KeyError`` traceback when a task was still queued); not waiting races it at exit."""
        if self.pool is None:
            return
        if isinstance(self.pool, ForkPool):
            self.pool.kill()
            self.pool = None
            return
        from joblib.externals.loky.backend.utils import kill_process_tree

        for process in list(getattr(self.pool, "_processes", {}).values()):
            try:
                kill_process_tree(process)
            except (OSError, ValueError, AssertionError):  # gone already
                pass
        self.pool.shutdown(wait=True)
        self.pool = None

    def _collect(self, done: set[Future]) -> BaseException | None:
        """Results of finished tasks to ``ready``; the error if a worker died (the pool is then broken)."""
        died = None
        for future in done:
            exc = future.exception()
            if exc is None:
                _, path = self.inflight.pop(future)
                self.beats.drop(path)
                self.ready.append(future.result())
            elif isinstance(exc, WORKER_DIED):
                reason = _unsendable(exc)
                if reason is not None:
                    raise ValueError(f"the study cannot be sent to the worker processes ({reason}); define its "
                                     "classes in a study file or an importable module, or run in-process")
                died = exc
            else:
                raise exc  # a bug, not a crash: the run stops (and the pool with it)
        return died

    def _take_inflight(self) -> list[tuple[Future, _Item]]:
        """Kill the pool; keep the results that made it, return the other tasks that were in flight."""
        self._kill()
        left = []
        for future, (item, path) in self.inflight.items():
            self.beats.drop(path)
            if _done_ok(future):
                self.ready.append(future.result())
            else:
                left.append((future, item))
        self.inflight.clear()
        return left

    def _after_death(self, error: BaseException) -> None:
        name = type(error).__name__
        again: list[_Item] = []
        for _, item in self._take_inflight():
            if not item.alone:  # one of the tasks in flight killed its worker: each is a suspect
                again.append(replace(item, alone=True, tries=1 + self.retries))
            elif item.tries > 1:
                again.append(replace(item, tries=item.tries - 1))
            else:
                message = item.message or f"worker died on {1 + self.retries} attempts ({name})"
                task = item.task
                if item.message or task.stop - task.start == 1:
                    self.ready.append(failed_chunk(task, self.methods, message))
                else:  # only the replicates that kill their worker are lost
                    again.extend(_Item(t, alone=True, tries=1, message=message) for t in _singles(task))
        self.queue.extendleft(reversed(again))

    def _after_hang(self, late: dict[Future, tuple[int, int]]) -> None:
        again: list[_Item] = []
        for future, item in self._take_inflight():
            span = late.get(future)
            task = item.task
            if span is None:  # in flight beside a hung task: innocent, runs again
                again.append(item)
            elif span[0] == span[1] and task.start <= span[0] < task.stop:
                rep = span[0]
                self.ready.append(failed_chunk(_part(task, rep, rep + 1), self.methods,
                                               timed_out_message(self.timeout)))  # type: ignore[arg-type]
                again.extend(replace(item, task=_part(task, a, b))
                             for a, b in ((task.start, rep), (rep + 1, task.stop)) if a < b)
            else:  # a batch ran out of time: its replicates one by one, each on its own clock
                again.extend(replace(item, task=t) for t in _singles(task))
        self.queue.extendleft(reversed(again))


def _part(task: Task, start: int, stop: int) -> Task:
    return Task(task.cell_index, task.cell, start, stop, task.seed)


def _singles(task: Task) -> list[Task]:
    return [_part(task, r, r + 1) for r in range(task.start, task.stop)]


# --- Dask -----------------------------------------------------------------------------------------------


def _execute_dask(client: Any, study: Any, tasks: Sequence[Task], workers: int,
                  skip: Callable[[Task], bool], stop: StopRequest | None) -> Iterator[ChunkResult]:
    """Submit tasks to a Dask cluster, at most ``2 * workers`` in flight, and yield results as they come.

    The study is sent to the workers once. Dask itself reschedules the tasks of a worker that dies; a task
    that kills workers more often than the scheduler allows (``KilledWorker``) is split into replicates,
    and only the replicates that still kill a worker are recorded as failed.
    """
    from distributed import KilledWorker
    from distributed import wait as dask_wait

    shared = client.scatter(study, broadcast=True, hash=False)
    pending = iter(tasks)
    inflight: dict[Any, Task] = {}
    ready: deque[ChunkResult] = deque()

    def submit_next() -> bool:
        for task in pending:
            if skip(task):
                continue
            inflight[client.submit(run_chunk, shared, task, pure=False)] = task
            return True
        return False

    try:
        for _ in range(2 * max(workers, 1)):
            if not submit_next():
                break
        while inflight:
            if stop is not None:
                stop.check()
            try:
                done, _ = dask_wait(list(inflight), timeout=2.5 * POLL, return_when="FIRST_COMPLETED")
            except TimeoutError:
                continue
            for future in done:
                task = inflight.pop(future)
                try:
                    ready.append(future.result())
                except KilledWorker as exc:
                    ready.extend(_replicates_on_cluster(client, shared, study, task, type(exc).__name__))
                future.release()
                submit_next()
            while ready:
                yield ready.popleft()
    except KeyboardInterrupt as exc:
        got = [*ready, *(f.result() for f in inflight if f.status == "finished")]
        client.cancel(list(inflight))
        inflight.clear()
        yield from got
        raise Interrupted(getattr(exc, "signum", signal.SIGINT)) from None
    finally:
        if inflight:
            client.cancel(list(inflight))


def _replicates_on_cluster(client: Any, shared: Any, study: Any, task: Task, error: str) -> list[ChunkResult]:
    from distributed import KilledWorker

    message = f"worker died on every attempt the Dask scheduler allows ({error})"
    if task.stop - task.start == 1:
        return [failed_chunk(task, list(study.estimators), message)]
    singles = _singles(task)
    futures = [client.submit(run_chunk, shared, t, pure=False) for t in singles]
    out = []
    for single, future in zip(singles, futures):
        try:
            out.append(future.result())
        except KilledWorker:
            out.append(failed_chunk(single, list(study.estimators), message))
    return out
