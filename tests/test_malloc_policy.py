"""Workers keep the memory they free: a second round of the same allocations faults no new pages in."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

GLIBC = sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")

ROUNDS = """
import resource, sys
import numpy as np
from simstudy.malloc_policy import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else False

def chunk():  # what a chunk does: many arrays alive at once (small and large), then all freed
    kept = [np.ones(600 * k) for k in (1, 3, 40, 200) for _ in range(60)]
    return sum(a.size for a in kept)

chunk()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    chunk()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", ROUNDS, mode], capture_output=True, text=True, check=True)
    applied, n = out.stdout.split()
    return applied, int(n)


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_freed_memory_is_reused_instead_of_faulted_in_again():
    applied, kept = faults("keep")
    _, default = faults("default")
    assert applied == "True"
    assert default > 1000  # ~60 MB freed and faulted in again each round by default
    assert kept < default / 20


def test_forked_and_loky_workers_keep_freed_memory(monkeypatch):
    from simstudy.engine import dispatch

    calls = []
    monkeypatch.setattr(dispatch, "keep_freed_memory", lambda: calls.append(1) or True)
    monkeypatch.setattr(dispatch, "die_with_parent", lambda parent: None)
    monkeypatch.setattr(dispatch.signal, "signal", lambda *a: None)
    dispatch._worker_init(os.getpid())  # the forked workers' set-up starts with the loky workers'
    assert calls == [1]
