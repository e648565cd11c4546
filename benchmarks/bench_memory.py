"""Peak memory of the parent process at 1,000 and 10,000 replicates per cell.

Each run is a separate process (``run_study``, 2 jobs); its peak resident set size comes from
``resource.getrusage`` (the parent's: the workers hold one chunk at a time). Two studies: a small one (2
cells x 2 OLS estimators, 3 parameters) and ``studies/cluster_trial.py`` (16 cells x 4 estimators, 5
parameters, long messages), where the results themselves are large: 10,000 replicates make ~170 MB of
estimates. Memory should stay nearly flat (target: at most 1.15x from 1,000 to 10,000): the outputs are
assembled, written and summarized a group of cells at a time, and the estimates stay on disk.

Rounds alternate the replicate counts. Run: ``.venv/bin/python benchmarks/bench_memory.py [--rounds 2]
[--only small cluster_trial]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SMALL = textwrap.dedent('''
    from simstudy.design import Design
    from simstudy.dgp.clustered import RandomIntercept
    from simstudy.estimators import OLS
    from simstudy.study import Study
    study = Study(name="mem", design=Design({"n_groups": [10, 20], "group_size": [5]}), dgp=RandomIntercept(),
                  estimators={"ols": OLS("y ~ x + treat"), "cr": OLS("y ~ x + treat", groups="group")},
                  reps=1000, seed=1, unscored=("var(group)", "var(residual)"))
''')

PROBE = textwrap.dedent('''
    import resource, sys, time
    from pathlib import Path
    from simstudy.engine.runner import RunConfig, run_study
    from simstudy.study import load_study
    study = load_study(sys.argv[1])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    run_study(study, RunConfig(reps=int(sys.argv[2]), out=Path(sys.argv[3]), jobs=2, quiet=True))
    print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter() - t0)
''')


def peak(study: Path, reps: int, out: Path) -> tuple[float, float, float]:
    """(RSS after the imports, peak RSS, seconds) of a run in a new process, MiB."""
    proc = subprocess.run([sys.executable, "-c", PROBE, str(study), str(reps), str(out)], capture_output=True,
                          text=True, check=True, cwd=ROOT)
    before, after, seconds = proc.stdout.strip().splitlines()[-1].split()
    return int(before) / 1024, int(after) / 1024, float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", nargs="+", choices=["small", "cluster_trial"], default=["small", "cluster_trial"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / "mem.py"
        small.write_text(SMALL)
        studies = {"small": small, "cluster_trial": ROOT / "studies" / "cluster_trial.py"}
        for name in args.only:
            runs: dict[int, list[tuple[float, float, float]]] = {1000: [], 10000: []}
            for r in range(args.rounds):
                for reps in runs:
                    runs[reps].append(peak(studies[name], reps, Path(tmp) / f"{name}-{reps}-{r}"))
            lo = [p for _, p, _ in runs[1000]]
            hi = [p for _, p, _ in runs[10000]]
            ratios = [b / a for a, b in zip(lo, hi)]
            print(f"{name}: peak RSS of the parent (MiB, median [range] of {args.rounds}): 1,000 reps "
                  f"{statistics.median(lo):.1f} [{min(lo):.1f}-{max(lo):.1f}], 10,000 reps "
                  f"{statistics.median(hi):.1f} [{min(hi):.1f}-{max(hi):.1f}]; ratio {statistics.median(ratios):.2f} "
                  f"[{min(ratios):.2f}-{max(ratios):.2f}] (target <= 1.15); after imports "
                  f"{statistics.median(b for b, _, _ in runs[1000]):.1f}; run seconds "
                  f"{statistics.median(s for _, _, s in runs[1000]):.1f} and "
                  f"{statistics.median(s for _, _, s in runs[10000]):.1f}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
