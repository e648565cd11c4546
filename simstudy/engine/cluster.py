"""Where the chunks run: joblib's loky processes on this machine, or a Dask distributed cluster.

``backend="dask"`` runs the same tasks through joblib's dask backend on a cluster: an existing scheduler
(``tcp://HOST:PORT``) or a LocalCluster started here (``local:N``, N worker processes with one thread
each). Dask reschedules the tasks of a worker that dies on the other workers.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class Workers:
    """Where a run's tasks go: ``n`` parallel workers; ``client`` a Dask client for the dask backend."""

    backend: str
    n: int
    client: Any = None
    scheduler: str = ""

    def describe(self) -> dict[str, Any]:
        """What really ran, for provenance."""
        if self.backend == "dask":
            return {"backend": "dask", "workers": self.n, "scheduler": self.scheduler}
        return {"backend": "in-process" if self.n == 1 else "loky", "workers": self.n}


@contextmanager
def workers(backend: str, jobs: int, scheduler: str | None = None) -> Iterator[Workers]:
    """Set up the backend for the duration of a run; yields where the tasks go."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if backend == "loky":
        if scheduler:
            raise ValueError("--scheduler goes with --backend dask")
        yield Workers("loky", jobs)
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
