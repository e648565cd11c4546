"""One BLAS thread: the environment is set before numpy loads, and a user's own value is kept."""

from __future__ import annotations

import os
import subprocess
import sys

from simstudy.threads import ONE_THREAD, one_thread_here


def test_the_command_line_process_runs_blas_on_one_thread():
    code = ("import os, sys; sys.argv = ['simstudy', '--help']\n"
            "from simstudy.cli import console\n"
            "try:\n    console()\nexcept SystemExit:\n    pass\n"
            "import numpy\n"
            "from threadpoolctl import threadpool_info\n"
            "print(sorted({p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas'}))")
    env = {k: v for k, v in os.environ.items() if k not in ONE_THREAD}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip().splitlines()[-1] == "[1]"


def test_a_value_already_set_is_kept(monkeypatch):
    for name in ONE_THREAD:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    one_thread_here()
    assert os.environ["OPENBLAS_NUM_THREADS"] == "3"
    assert all(os.environ[name] == "1" for name in ONE_THREAD if name != "OPENBLAS_NUM_THREADS")
