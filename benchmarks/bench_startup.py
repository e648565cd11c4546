"""Start-up costs: a whole small run from the command line, and a worker's first task.

- ``simstudy run`` of a 10-replicate study (one cell of 30 groups x 20, OLS + mixed model), wall time of the
  command, against ``python -c "import numpy"`` (the least any Python run costs), interleaved rounds; also
  with the console script's exit freeze left out, and with loky's workers instead of forked ones.
- A worker's first task: a fresh loky pool as the runner makes it (:func:`simstudy.engine.dispatch._pool`),
  time from ``submit`` to the task's first line (process start, interpreter, loky, the worker initializer),
  then what the first real task adds before it computes (unpickling the study: importing the estimators),
  and its first replicate.
- What the imports are: ``-X importtime`` of the parent's imports for ``simstudy run`` and of a worker's first
  task, the largest top-level packages by cumulative time.

Run: ``.venv/bin/python benchmarks/bench_startup.py [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

STUDY = textwrap.dedent('''
    from simstudy.design import Design
    from simstudy.dgp.clustered import RandomIntercept
    from simstudy.estimators import OLS, MixedLM
    from simstudy.study import Study
    study = Study(name="startup", design=Design({"n_groups": [30], "group_size": [20], "icc": [0.1],
                                                 "treatment_effect": [0.3]}),
                  dgp=RandomIntercept(), estimators={"ols": OLS("y ~ x + treat"),
                                                     "lmm": MixedLM("y ~ x + treat", groups="group")},
                  reps=10, seed=1)
''')


#: The environment of the timed commands: bytecode caches written and used, as on a user's machine (some
#: sandboxes set PYTHONDONTWRITEBYTECODE, which makes every start compile simstudy's modules again).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def wall(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT, env={**ENV, **(env or {})})
    return time.perf_counter() - t0


def summary(values: list[float], scale: float = 1.0, unit: str = "") -> str:
    v = [x * scale for x in values]
    return f"{statistics.median(v):.3g}{unit} [{min(v):.3g}-{max(v):.3g}]"


def _first_line() -> float:
    return time.monotonic()


def _first_task(blob: bytes) -> tuple[float, float, float]:
    """In the worker: when the task started, when the study was unpickled, when one replicate was done."""
    start = time.monotonic()
    study, task = pickle.loads(blob)
    loaded = time.monotonic()
    from simstudy.engine.chunk import run_chunk

    run_chunk(study, task)
    return start, loaded, time.monotonic()


def first_tasks(rounds: int, study_file: Path) -> None:
    from simstudy.engine.chunk import Task
    from simstudy.engine.dispatch import _forked_init, _pool
    from simstudy.engine.forkpool import ForkPool
    from simstudy.study import load_study

    study = load_study(study_file)
    cell = study.validate()[0]
    blob = pickle.dumps((study, Task(0, cell, 1, 2, study.seed)))
    trivial, loaded, first = [], [], []
    for _ in range(rounds):
        pool = _pool(1)
        t0 = time.monotonic()
        trivial.append(pool.submit(_first_line).result() - t0)
        pool.shutdown(wait=True, kill_workers=True)
        pool = _pool(1)
        t0 = time.monotonic()
        start, done_loading, done = pool.submit(_first_task, blob).result()
        loaded.append(done_loading - start)
        first.append(done - done_loading)
        pool.shutdown(wait=True, kill_workers=True)
    print(f"a loky worker's first task, {rounds} rounds: submit -> task starts {summary(trivial, 1e3, ' ms')}; "
          f"then unpickling the study (its imports) {summary(loaded, 1e3, ' ms')}; its first replicate "
          f"{summary(first, 1e3, ' ms')}")
    forked = []
    for _ in range(rounds):  # what a command does: fork the workers, then submit
        t0 = time.monotonic()
        pool = ForkPool(1, shared=(study,), initializer=_forked_init, initargs=(os.getpid(),))
        future = pool.submit(_first_line)
        pool.wait([future], 30)
        forked.append(future.result() - t0)
        pool.shutdown()
    print(f"a forked worker's first task, {rounds} rounds: fork -> task starts {summary(forked, 1e3, ' ms')} "
          "(nothing to import: the study is in its memory)")


def import_profile(code: str, top: int = 8) -> str:
    """``python -X importtime -c code``: the import time in all, and the packages that take most of it (the
    self time of every module, summed by top-level package)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                          check=True, cwd=ROOT, env=ENV)
    tops: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
        if m:
            name = m[4].split(".")[0]
            tops[name] = tops.get(name, 0.0) + int(m[1]) / 1e6
    ranked = sorted(tops.items(), key=lambda kv: -kv[1])[:top]
    return f"{sum(tops.values()):.2f} s in all: " + ", ".join(f"{k} {v:.2f}" for k, v in ranked)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        study = Path(tmp) / "startup.py"
        study.write_text(STUDY)
        runs, numpy, unfrozen, loky = [], [], [], []
        wall([str(BIN / "simstudy"), "run", str(study), "--out", str(Path(tmp) / "warm"), "--quiet"])  # disk cache
        # the console script without its gc.freeze at exit (simstudy.cli.main called as before)
        plain = [sys.executable, "-c", "import sys; from simstudy.cli import main; sys.exit(main())"]
        for r in range(args.rounds):
            numpy.append(wall([sys.executable, "-c", "import numpy"]))
            runs.append(wall([str(BIN / "simstudy"), "run", str(study), "--out", str(Path(tmp) / f"r{r}"), "--quiet"]))
            unfrozen.append(wall([*plain, "run", str(study), "--out", str(Path(tmp) / f"u{r}"), "--quiet"]))
            loky.append(wall([str(BIN / "simstudy"), "run", str(study), "--out", str(Path(tmp) / f"l{r}"), "--quiet"],
                             env={"SIMSTUDY_FORK": "0"}))
        print(f"simstudy run, 10 replicates (OLS + mixed model), {args.rounds} rounds: {summary(runs, 1, ' s')}; "
              f"python -c 'import numpy' {summary(numpy, 1e3, ' ms')}: "
              f"{summary([a / b for a, b in zip(runs, numpy)], 1, 'x')}")
        print(f"  the same without the console script's collection policy (off at start-up, frozen at exit): "
              f"{summary(unfrozen, 1, ' s')}; the console script takes "
              f"{summary([a / b for a, b in zip(runs, unfrozen)], 1, 'x')} of that")
        print(f"  the same with loky's workers (SIMSTUDY_FORK=0): {summary(loky, 1, ' s')}; forked workers take "
              f"{summary([a / b for a, b in zip(runs, loky)], 1, 'x')} of that")
        print(f"  over numpy: {summary([a - b for a, b in zip(runs, numpy)], 1, ' s')} (target: within 0.4 s)")
        sys.stdout.flush()
        first_tasks(args.rounds, study)
        print("imports of `simstudy run` (the parent, up to the run): " + import_profile(
            "import simstudy.cli, simstudy.engine.runner, simstudy.engine.dispatch, simstudy.output.display"))
        print("imports of a worker's first task: " + import_profile(
            "import joblib.externals.loky, pickle; from simstudy.engine.chunk import run_chunk; "
            f"pickle.loads({_study_blob(study)!r})"))


def _study_blob(study_file: Path) -> bytes:
    """The study as a worker receives it (pickled), made in a separate process so that this one stays lean."""
    code = ("import pickle, sys; from simstudy.study import load_study; "
            f"sys.stdout.buffer.write(pickle.dumps(load_study({str(study_file)!r})))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, cwd=ROOT).stdout


if __name__ == "__main__":
    main()
