"""One run per output directory at a time: an advisory lock that a dead run cannot leave behind.

The lock is ``flock`` on ``DIR/.lock``: the operating system releases it when the process ends, however
it ends (SIGKILL included), so a stale lock never blocks the next run.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType


class RunLock:
    """Context manager holding the lock of an output directory; ``ValueError`` if another run holds it."""

    def __init__(self, directory: Path, name: str = ".lock") -> None:
        self.path = directory / name
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ValueError(f"another simstudy run (pid {holder}) is using {str(self.path.parent)!r}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
