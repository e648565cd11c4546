"""The compute loop of this checkout against an earlier git revision, in one process, paired round by round.

Noise on a shared machine moves whole runs by 10% or more, more than most changes to the hot path save. Here
the earlier revision's ``simstudy`` package is extracted (``git archive``) into a temporary directory under
another name (``simstudy_at_<rev>``), so both versions load into the same process; every round runs
:func:`simstudy.engine.chunk.run_chunk` on the same 250 replicates of one 30 x 20 cell with each version, in
alternating order, and the table gives each version's median [range] per replicate and the median [quartiles]
of the per-round ratio (this checkout / the revision). Before timing, both versions' results on the same
replicates are compared bit for bit; the script stops if they differ, since then the change is not a speed-up
but a different method.

Run: ``.venv/bin/python benchmarks/bench_revision.py REV [--rounds 40]`` (REV: a commit, tag or branch).
BLAS is pinned to one thread; the cell and formula are ``bench_study.py``'s.
"""

from __future__ import annotations

import argparse
import importlib
import io
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from types import ModuleType

from bench_study import CELL, FORMULA, ROOT  # pins BLAS to one thread as it loads numpy
from threadpoolctl import threadpool_limits

REPS = 250


def extract(rev: str, into: Path) -> str:
    """Write revision ``rev``'s ``simstudy`` package into ``into`` as ``simstudy_at_<rev>``; return its name."""
    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    name = f"simstudy_at_{sha}"
    archive = subprocess.run(["git", "archive", "--format=tar", sha, "simstudy"], cwd=ROOT, capture_output=True,
                             check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    (into / "simstudy").rename(into / name)
    pattern = re.compile(r"\bsimstudy(?=[.\s])")
    for path in (into / name).rglob("*.py"):
        path.write_text(pattern.sub(name, path.read_text()))
    return name


def loaders(package: str) -> tuple[ModuleType, dict]:
    """The package's chunk module and an LMM-only and an OLS-only study of one cell."""
    def mod(sub: str) -> ModuleType:
        return importlib.import_module(f"{package}.{sub}")

    def study(estimators: dict):
        return mod("study").Study(name="bench", design=mod("design").Design({k: [v] for k, v in CELL.items()}),
                                  dgp=mod("dgp.clustered").RandomIntercept(), estimators=estimators, reps=1000,
                                  seed=1)

    est = mod("estimators")
    return mod("engine.chunk"), {"lmm": study({"lmm": est.MixedLM(FORMULA, groups="group")}),
                                 "ols": study({"ols": est.OLS(FORMULA)})}


def run(version: tuple[ModuleType, dict], name: str, start: int, reps: int = REPS):
    chunk, studies = version
    return chunk.run_chunk(studies[name], chunk.Task(0, CELL, start, start + reps, 1))


def same(a, b) -> bool:
    return (all(a.values[v].tobytes() == b.values[v].tobytes() for v in a.values)
            and (a.status == b.status).all() and (a.message == b.message).all() and a.params == b.params)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("rev")
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    from simstudy.malloc_policy import keep_freed_memory

    keep_freed_memory()  # as in every worker (applies to both versions: one process)
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(limits=1):
        old_name = extract(args.rev, Path(tmp))
        sys.path.insert(0, tmp)
        versions = {"this checkout": loaders("simstudy"), args.rev: loaders(old_name)}
        for name in ("lmm", "ols"):
            results = [run(v, name, 1) for v in versions.values()]
            if not same(*results):
                sys.exit(f"{name}: results differ from {args.rev}'s: not a like-for-like comparison")
        times: dict[tuple[str, str], list[float]] = {(v, n): [] for v in versions for n in ("lmm", "ols")}
        order = list(versions)
        for r in range(args.rounds):
            for name in ("lmm", "ols"):
                for v in (order if r % 2 else order[::-1]):
                    t0 = time.perf_counter()
                    run(versions[v], name, 1 + REPS * (r % 4))
                    times[(v, name)].append((time.perf_counter() - t0) / REPS)
    print(f"compute loop per replicate, one cell 30 x 20, {REPS} replicates a round, {args.rounds} paired rounds "
          f"(results bit-identical): median [range]; ratio: median [quartiles] of the per-round ratios")
    for name in ("lmm", "ols"):
        new, old = times[(order[0], name)], times[(order[1], name)]
        q = statistics.quantiles([a / b for a, b in zip(new, old)], n=4)
        print(f"  {name}: {args.rev} {statistics.median(old) * 1e6:.1f} us [{min(old) * 1e6:.1f}-"
              f"{max(old) * 1e6:.1f}], this checkout {statistics.median(new) * 1e6:.1f} us [{min(new) * 1e6:.1f}-"
              f"{max(new) * 1e6:.1f}]: {q[1]:.3f}x [{q[0]:.3f}-{q[2]:.3f}]")


if __name__ == "__main__":
    main()
