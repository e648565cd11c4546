"""Garbage collection around the command line's start-up.

A command's imports make some 500,000 objects that live as long as the process; the collections that
traverse them while they accumulate took 0.1 s of a 10-replicate ``simstudy run`` (about a tenth). So the
console script turns collection off as it starts (:func:`simstudy.cli.console`), and the work that follows
runs inside :func:`collecting`: what exists by then is frozen (never traversed again: it lives as long as
the process anyway) and collection is on. Where collection was on already (a Python caller), nothing changes.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collecting() -> Iterator[None]:
    """Garbage collection on for the duration; if it was off, what exists is frozen first (``gc.freeze``) and
    collection is off again afterwards."""
    if gc.isenabled():
        yield
        return
    gc.freeze()
    gc.enable()
    try:
        yield
    finally:
        gc.disable()
