"""Progress lines when the output is not a terminal."""

from __future__ import annotations

import io

from simstudy.engine.progress import Progress


def test_plain_lines_every_ten_percent():
    stream = io.StringIO()
    p = Progress(100, stream=stream)
    for _ in range(20):
        p.update(5)
    p.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[0].startswith("simstudy:  10% (10/100 replicates")
    assert lines[-1].startswith("simstudy: 100% (100/100")


def test_quiet_prints_nothing():
    stream = io.StringIO()
    p = Progress(10, quiet=True, stream=stream)
    p.update(10)
    assert stream.getvalue() == ""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_terminal_bar_starts_no_thread():
    # defect: tqdm's monitor thread made every run on a terminal fall back from forked workers to loky's
    import threading

    before = set(threading.enumerate())
    progress = Progress(100, stream=_Terminal())
    progress.update(50)
    assert progress._bar is not None  # a tqdm bar, drawn on the terminal
    assert set(threading.enumerate()) == before
    progress.close()
