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
