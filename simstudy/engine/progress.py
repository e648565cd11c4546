"""Progress of a run: a tqdm bar with ETA on a terminal or in a Jupyter notebook, a plain line every 10%
otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


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

            self._bar = notebook_tqdm(total=total, unit="rep", smoothing=0.1)
        elif not quiet and self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="rep", file=self.stream, smoothing=0.1)

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


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where a widget progress bar can be drawn)."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        return type(shell.get_ipython()).__name__ == "ZMQInteractiveShell"  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - any failure means: not a notebook
        return False
