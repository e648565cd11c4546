"""Where the chunks run: worker processes on this machine, or a Dask distributed cluster.

``backend="loky"`` starts at most one worker per usable core and per task (:func:`cap_jobs`), forked from
this process where that is safe and loky's elsewhere (:mod:`.forkpool`);
``in_process`` runs the tasks in this process instead. ``backend="dask"`` sends the same tasks to a cluster:
an existing scheduler (``tcp://HOST:PORT``) or a LocalCluster started here (``local:N``, N worker processes
with one thread each). Dask reschedules the tasks of a worker that dies on the other workers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

BACKENDS = ("loky", "dask")


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` (0 <= I < N) to ``(I, N)``; ``ValueError`` otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not 0 <= int(m[1]) < int(m[2]):
        raise ValueError(f"--shard must be I/N with 0 <= I < N (e.g. 0/3), got {text!r}")
    return int(m[1]), int(m[2])


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where there is one, else all)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - no affinity mask (macOS, Windows)
        return max(1, os.cpu_count() or 1)


def cap_jobs(jobs: int, n_tasks: int, cores: int | None = None) -> tuple[int, str]:
    """Worker processes worth starting for ``n_tasks`` tasks: at most one per usable core and per task.

    Returns
    -------
    (n, why) : int, str
        ``n`` workers; ``why`` says what capped them (empty if nothing did).
    """
    cores = usable_cores() if cores is None else cores
    n = max(1, min(jobs, cores, n_tasks))
    if n == jobs:
        return n, ""
    if n == cores and cores < n_tasks:
        return n, f"{cores} CPU core{'s' * (cores != 1)} usable"
    return n, f"{n_tasks} task{'s' * (n_tasks != 1)} to run"


@dataclass(frozen=True)
class Workers:
    """Where a run's tasks go: ``n`` parallel workers; ``client`` a Dask client for the dask backend;
    ``in_process``: in this process (loky backend only)."""

    backend: str
    n: int
    client: Any = None
    scheduler: str = ""
    in_process: bool = False

    def describe(self) -> dict[str, Any]:
        """What really ran, for provenance."""
        if self.backend == "dask":
            return {"backend": "dask", "workers": self.n, "scheduler": self.scheduler}
        return {"backend": "in-process" if self.in_process else "loky", "workers": self.n}


@contextmanager
def workers(backend: str, jobs: int, scheduler: str | None = None, *, in_process: bool = False
            ) -> Iterator[Workers]:
    """Set up the backend for the duration of a run; yields where the tasks go (``in_process``: this
    process, one task at a time)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if in_process and backend != "loky":
        raise ValueError("--in-process goes with --backend loky")
    if backend == "loky":
        if scheduler:
            raise ValueError("--scheduler goes with --backend dask")
        yield Workers("loky", 1 if in_process else jobs, in_process=in_process)
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ValueError("the dask backend needs dask.distributed: pip install 'simstudy[cluster]'") from None
    target = scheduler or f"local:{jobs}"
    m = re.fullmatch(r"local:(\d+)", target)
    if m:
        n = int(m[1])
        if n < 1:
            raise ValueError(f"--scheduler local:N needs N >= 1, got {target!r}")
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            yield Workers("dask", _threads(client), client, target)
        return
    try:
        client = Client(target, timeout="20s")
    except (OSError, TimeoutError) as exc:
        raise ValueError(f"cannot connect to the Dask scheduler at {target!r}: {exc}".splitlines()[0]) from None
    with client:
        yield Workers("dask", _threads(client), client, target)


def _threads(client: object) -> int:
    return max(1, sum(client.nthreads().values()))  # type: ignore[attr-defined]
