"""One run per output directory; a dead run's lock does not linger."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from simstudy.engine.lock import RunLock


def test_second_lock_is_refused_and_released(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(ValueError, match=f"pid {os.getpid()}"):
            with RunLock(tmp_path):
                pass
    with RunLock(tmp_path):
        pass


def test_lock_of_a_killed_process_is_free(tmp_path):
    code = (f"import os; from pathlib import Path; from simstudy.engine.lock import RunLock\n"
            f"l = RunLock(Path({str(tmp_path)!r})).__enter__(); os.kill(os.getpid(), 9)")
    proc = subprocess.run([sys.executable, "-c", code])
    assert proc.returncode == -9
    with RunLock(tmp_path):
        pass
