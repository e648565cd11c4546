"""Progress of a run: a tqdm bar with ETA on a terminal or in a Jupyter notebook, a plain line every 10%
otherwise; and how a run is stopped: Ctrl-C (SIGINT) or SIGTERM become a :class:`StopRequest` that the
dispatcher honours after saving the results that have arrived, then :class:`Interrupted`."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TextIO


class Interrupted(KeyboardInterrupt):
    """A run stopped by SIGINT (Ctrl-C) or SIGTERM, after the results that had arrived were saved.

    Parameters
    ----------
    signum : int
        The signal.
    saved : int, optional
        Replicates checkpointed in the run's directory (None: not known, nothing to resume).
    hint : str
        How to continue, e.g. ``"`simstudy resume DIR` continues"``.
    """

    def __init__(self, signum: int = signal.SIGINT, saved: int | None = None, hint: str = "") -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)
        self.saved = saved
        self.hint = hint

    @property
    def exit_code(self) -> int:
        """128 + the signal number (130 for Ctrl-C, 143 for SIGTERM), as a shell reports it."""
        return 128 + self.signum

    def message(self) -> str:
        """The one line the command line prints."""
        what = "terminated" if self.signum == signal.SIGTERM else "interrupted"
        if self.saved is None:
            return f"simstudy: {what}"
        return f"simstudy: {what}; {self.saved} replicates saved" + (f", {self.hint}" if self.hint else "")


def raise_interrupted(signum: int, frame: FrameType | None) -> None:
    """A signal handler: raise :class:`Interrupted` (the command line's handler for SIGTERM)."""
    raise Interrupted(signum)


class StopRequest:
    """SIGINT and SIGTERM while a run computes: noted, not raised, so that the dispatcher can save the
    results that have arrived before it stops (it polls :attr:`signum`).

    Inside :meth:`now` (an in-process chunk, which nothing else could interrupt) and on a second signal the
    handler raises :class:`Interrupted` at once. Outside the main thread no handler can be installed and
    signals keep their usual effect.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._now = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        again = self.signum is not None
        self.signum = self.signum or signum
        if self._now or again:
            raise Interrupted(self.signum)

    def check(self) -> None:
        """Raise :class:`Interrupted` if a stop was requested."""
        if self.signum is not None:
            raise Interrupted(self.signum)

    @contextmanager
    def now(self) -> Iterator[None]:
        """A stretch during which a signal raises :class:`Interrupted` at once."""
        self.check()
        self._now = True
        try:
            yield
        finally:
            self._now = False


class Progress:
    """Counts finished replicates; ``update(n)`` after each chunk, ``close()`` at the end."""

    def __init__(self, total: int, *, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.start = time.perf_counter()
        self._next_percent = 10
        self._bar = None
        if not quiet and in_notebook():
            from tqdm.auto import tqdm as notebook_tqdm  # a widget in Jupyter (text if ipywidgets is missing)

            self._bar = _without_monitor(notebook_tqdm)(total=total, unit="rep", smoothing=0.1)
        elif not quiet and self.stream.isatty():
            from tqdm import tqdm

            self._bar = _without_monitor(tqdm)(total=total, unit="rep", file=self.stream, smoothing=0.1)

    def update(self, n: int) -> None:
        """Record ``n`` more finished replicates."""
        self.done += n
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.update(n)
            return
        percent = 100 * self.done / self.total if self.total else 100
        if percent >= self._next_percent or self.done == self.total:
            elapsed = time.perf_counter() - self.start
            left = elapsed * (self.total - self.done) / self.done if self.done else float("nan")
            print(f"simstudy: {percent:3.0f}% ({self.done}/{self.total} replicates, "
                  f"{elapsed:.1f} s elapsed, ~{left:.0f} s left)", file=self.stream, flush=True)
            while self._next_percent <= percent:
                self._next_percent += 10

    def close(self) -> None:
        """Finish the bar."""
        if self._bar is not None:
            self._bar.close()


def _without_monitor(bar: type) -> type:
    """``bar`` (a tqdm class) without tqdm's monitor thread: the bar is redrawn at every update anyway, and a
    thread in this process would keep the run from forking its workers (:mod:`.forkpool`)."""
    return type(bar.__name__, (bar,), {"monitor_interval": 0})


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where a widget progress bar can be drawn)."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        return type(shell.get_ipython()).__name__ == "ZMQInteractiveShell"  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - any failure means: not a notebook
        return False
