"""One BLAS/OpenMP thread per process: the environment variables that say so.

The libraries read them when they load, so they must be set before numpy is imported. Worker processes get
them (:data:`simstudy.engine.dispatch.WORKER_ENV`); the command line sets them for its own process too
(:func:`simstudy.cli.console`): all its fits run in workers, or in-process under the same limit, so more BLAS
threads would buy nothing there, and its own numbers (the summaries) then do not depend on the machine's
core count. It also means OpenBLAS starts no threads in the process that forks the workers. (Arrow's
allocator threads remain: Python 3.12+ counts them when it warns, with a DeprecationWarning hidden by
default, that forking a multi-threaded process may deadlock; the workers never use Arrow.)
"""

from __future__ import annotations

import os

#: The variables, each "1".
ONE_THREAD = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                               "VECLIB_MAXIMUM_THREADS", "NUMBA_NUM_THREADS", "NUMEXPR_NUM_THREADS")}


def one_thread_here() -> None:
    """Set :data:`ONE_THREAD` in this process's environment, keeping any value already set (call before
    numpy is imported)."""
    for name, value in ONE_THREAD.items():
        os.environ.setdefault(name, value)
