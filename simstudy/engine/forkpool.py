"""Worker processes forked from the run's own process: no interpreter to start and nothing to import.

A loky worker is a fresh interpreter: about 0.15 s to its first line and 0.2 s more importing numpy, scipy
and the estimators before its first replicate, and 0.1 s for loky to stop it at exit. A process forked from
the run has all of that already. :class:`ForkPool` gives the few parts of an executor that
:mod:`.dispatch` uses (``submit`` returning a :class:`~concurrent.futures.Future`, :meth:`ForkPool.wait`,
:meth:`ForkPool.kill`, :meth:`ForkPool.shutdown`), without a thread in this process: results are read
while the caller waits for them.

Forking is safe only in a process that runs no other thread (a thread holding a lock at the moment of the
fork leaves the lock held for ever in the child), so :func:`fork_usable` says yes only on Linux in a
single-threaded process; elsewhere (a Jupyter kernel, a second run in a process that still has loky's
threads, macOS, where system libraries are not fork-safe) the runner uses loky.

Objects named in ``shared`` (the study) are not sent with each task: the children have them already, and
a task refers to them by position (pickle's persistent ids). So a study that cannot be pickled runs too.
Everything else in a call is pickled as loky does it (cloudpickle: a function made in ``__main__`` or a
notebook travels by value).
"""

from __future__ import annotations

import io
import os
import pickle
import select
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

try:  # loky's error for a worker that died, so that messages name the same error as with loky workers
    from joblib.externals.loky.process_executor import TerminatedWorkerError as WorkerDied
except ImportError:  # pragma: no cover - older joblib
    from concurrent.futures.process import BrokenProcessPool as WorkerDied  # type: ignore[assignment]

#: The environment variable that overrides :func:`fork_usable`: ``0`` never fork (always loky's workers),
#: ``1`` fork wherever ``os.fork`` exists, even beside other threads (at your own risk).
ENV = "SIMSTUDY_FORK"
_HEADER = 8


def fork_usable() -> bool:
    """True where :class:`ForkPool` may be used: Linux, and no thread in this process but the main one
    (unless :data:`ENV` says otherwise; a value other than 0 or 1 is refused)."""
    mode = os.environ.get(ENV, "")
    if mode not in ("", "0", "1"):
        raise ValueError(f"{ENV} must be 0 (loky's workers), 1 (forked workers) or unset (forked where safe), "
                         f"got {mode!r}")
    if mode == "0" or not hasattr(os, "fork"):
        return False
    if mode == "1":
        return True
    return sys.platform.startswith("linux") and threading.active_count() == 1


try:  # what loky sends calls with: functions and classes made in __main__ or a notebook travel by value
    from cloudpickle import CloudPickler as _Base
except ImportError:  # pragma: no cover - loky depends on cloudpickle
    _Base = pickle.Pickler  # type: ignore[assignment,misc]


class _Pickler(_Base):  # type: ignore[valid-type,misc]
    def __init__(self, file: io.BytesIO, shared: dict[int, int]) -> None:
        super().__init__(file, pickle.HIGHEST_PROTOCOL)
        self.shared = shared

    def persistent_id(self, obj: Any) -> int | None:
        return self.shared.get(id(obj))


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, shared: tuple[Any, ...]) -> None:
        super().__init__(file)
        self.shared = shared

    def persistent_load(self, pid: Any) -> Any:
        return self.shared[pid]


def _readable(fds: list[int], timeout: float) -> set[int]:
    """The descriptors of ``fds`` that can be read (data or end of file) within ``timeout`` seconds
    (``poll``: no limit on descriptor numbers, unlike ``select``)."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    return {fd for fd, _ in poller.poll(max(0.0, timeout) * 1000.0)}


def _frame(blob: bytes) -> bytes:
    return len(blob).to_bytes(_HEADER, "little") + blob


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, n: int) -> bytes | None:
    """``n`` bytes from ``fd``; None at end of file."""
    parts, left = [], n
    while left:
        data = os.read(fd, min(left, 1 << 20))
        if not data:
            return None
        parts.append(data)
        left -= len(data)
    return b"".join(parts)


class _Child:
    """One forked worker: its process id, the pipe it reads calls from and the pipe it writes results to."""

    def __init__(self, pid: int, calls: int, results: int) -> None:
        self.pid, self.calls, self.results = pid, calls, results
        self.future: Future | None = None
        self.buffer = bytearray()

    def close(self) -> None:
        for fd in (self.calls, self.results):
            try:
                os.close(fd)
            except OSError:
                pass


class ForkPool:
    """``jobs`` worker processes forked from this one, each running one call at a time.

    Parameters
    ----------
    jobs : int
        Worker processes, forked at once.
    shared : iterable
        Objects the calls refer to that the workers already hold (not pickled with each call).
    initializer : callable, optional
        Called in each worker, with ``initargs``, before its first call.
    """

    def __init__(self, jobs: int, *, shared: Iterable[Any] = (), initializer: Callable[..., Any] | None = None,
                 initargs: tuple[Any, ...] = ()) -> None:
        if jobs < 1:
            raise ValueError(f"jobs must be at least 1, got {jobs}")
        self._objects = tuple(shared)
        self._ids = {id(obj): i for i, obj in enumerate(self._objects)}
        self._queue: deque[tuple[Future, bytes]] = deque()
        self._children: list[_Child] = []
        self._broken = False
        try:
            for _ in range(jobs):
                self._children.append(self._fork(initializer, initargs))
        except BaseException:
            self.kill()
            raise

    def _fork(self, initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]) -> _Child:
        calls_read, calls_write = os.pipe()
        results_read, results_write = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker: never returns
            os.close(calls_write)
            os.close(results_read)
            for child in self._children:  # the other workers' ends are not this one's
                child.close()
            _serve(calls_read, results_write, self._objects, initializer, initargs)
        os.close(calls_read)
        os.close(results_write)
        return _Child(pid, calls_write, results_read)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Run ``fn(*args, **kwargs)`` in a worker; its result or exception arrives in the returned future
        while :meth:`wait` is called."""
        if self._broken:
            raise WorkerDied("a worker process of this pool died; the pool cannot run more calls")
        buffer = io.BytesIO()
        _Pickler(buffer, self._ids).dump((fn, args, kwargs))
        future: Future = Future()
        future.set_running_or_notify_cancel()
        self._queue.append((future, _frame(buffer.getvalue())))
        self._dispatch()
        return future

    def _dispatch(self) -> None:
        for child in list(self._children):
            if not self._queue:
                return
            if child.future is None:
                child.future, payload = self._queue.popleft()
                try:
                    _write_all(child.calls, payload)
                except BrokenPipeError:  # it died while idle (killed, out of memory): the call fails with that
                    self._died(child)

    def wait(self, futures: Iterable[Future], timeout: float) -> set[Future]:
        """Read the workers' results until one of ``futures`` is done or ``timeout`` seconds have passed;
        returns the done ones."""
        futures = list(futures)
        end = time.monotonic() + timeout
        while True:
            done = {f for f in futures if f.done()}
            busy = [c for c in self._children if c.future is not None]
            left = end - time.monotonic()
            if done or not busy or left <= 0:
                return done
            ready = _readable([c.results for c in busy], left)
            for child in busy:
                if child.results in ready:
                    self._read(child)
            self._dispatch()

    def _drain(self) -> None:
        """Read whatever the workers have written, without waiting."""
        while True:
            busy = [c for c in self._children if c.future is not None]
            ready = _readable([c.results for c in busy], 0.0) if busy else set()
            if not ready:
                return
            for child in busy:
                if child.results in ready:
                    self._read(child)

    def _read(self, child: _Child) -> None:
        data = os.read(child.results, 1 << 20)
        if not data:  # the worker died
            self._died(child)
            return
        child.buffer += data
        while len(child.buffer) >= _HEADER:
            size = int.from_bytes(child.buffer[:_HEADER], "little")
            if len(child.buffer) < _HEADER + size:
                return
            blob = bytes(child.buffer[_HEADER : _HEADER + size])
            del child.buffer[: _HEADER + size]
            ok, value = pickle.loads(blob)
            future, child.future = child.future, None
            if future is not None:
                (future.set_result if ok else future.set_exception)(value)

    def _died(self, child: _Child) -> None:
        _, status = os.waitpid(child.pid, 0)
        child.close()
        self._children.remove(child)
        self._broken = True
        code = os.waitstatus_to_exitcode(status)
        error = WorkerDied(f"a worker process died unexpectedly (exit code {code}"
                           + (f", {signal.Signals(-code).name})" if code < 0 and -code in _SIGNALS else ")"))
        if child.future is not None:
            child.future.set_exception(error)
            child.future = None
        while self._queue:
            self._queue.popleft()[0].set_exception(error)

    def kill(self) -> None:
        """Kill every worker (SIGKILL: a hung one too) and reap it, after reading the results that have
        arrived (as loky's futures would hold them); calls not finished never complete."""
        self._drain()
        for child in self._children:
            try:
                os.kill(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._reap()

    def shutdown(self, wait: bool = True) -> None:
        """Let the workers exit once their current call is done (they read the end of their call pipe)."""
        for child in self._children:
            try:
                os.close(child.calls)
            except OSError:
                pass
        if wait:
            self._reap()

    def _reap(self) -> None:
        for child in self._children:
            try:
                os.waitpid(child.pid, 0)
            except ChildProcessError:
                pass
            child.close()
        self._children.clear()
        self._broken = True

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        return [c.pid for c in self._children]


_SIGNALS = {int(s) for s in signal.Signals}


def _serve(calls: int, results: int, shared: tuple[Any, ...], initializer: Callable[..., Any] | None,
           initargs: tuple[Any, ...]) -> None:
    """A worker's life: read a call, run it, send back ``(True, result)`` or ``(False, exception)``; exit
    (without cleanup: this process's files and buffers are its parent's) at the end of the call pipe."""
    code = 0
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent's handlers are for the parent
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if initializer is not None:
            initializer(*initargs)
        while True:
            header = _read_exact(calls, _HEADER)
            if header is None:
                break
            payload = _read_exact(calls, int.from_bytes(header, "little"))
            if payload is None:
                break
            try:
                fn, args, kwargs = _Unpickler(io.BytesIO(payload), shared).load()
                outcome = (True, fn(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - the parent raises it
                exc.add_note("in a forked worker process:\n" + "".join(traceback.format_exception(exc)).rstrip())
                outcome = (False, exc)
            try:
                blob = pickle.dumps(outcome, pickle.HIGHEST_PROTOCOL)
            except Exception as exc:  # noqa: BLE001 - a result or an error that cannot be pickled
                what = outcome[1] if not outcome[0] else exc
                blob = pickle.dumps((False, RuntimeError(f"{type(what).__name__}: {what}".splitlines()[0])))
            _write_all(results, _frame(blob))
    except BaseException:  # noqa: BLE001 - nothing may escape into the parent's code
        code = 1
    finally:
        os._exit(code)
