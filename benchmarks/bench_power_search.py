"""Replicates and seconds the sample-size search spends, against a fixed grid with the same guarantee and
against SimSolve's default budget (9000 replications per solved row, from its documentation).

The same question throughout: the smallest number of clusters (2..200) with 80% power for the cluster-trial
design of ``studies/power_cluster_trial.py`` (20 per cluster, ICC 0.05, effect 0.3, LMM with between-within
t), answered with confidence 0.95. The fixed grid decides every level of the range with the same
sequential rule, its error split over all of them (the only way a grid gives the search's guarantee);
its replicates are counted without running it, from the exact power at each level (analytic, the t-test
design-effect power), by replaying the decision rule on a simulated binomial stream. The search itself runs
for real on the study, so its seconds are measured.

Run: ``.venv/bin/python benchmarks/bench_power_search.py [--jobs 2]``
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from simstudy.engine.power_search import PowerSearch, search_power
from simstudy.engine.runner import RunConfig
from simstudy.stats.power import cluster_trial_power
from simstudy.stats.search import decide, smallest_level
from simstudy.study import load_study

ROOT = Path(__file__).resolve().parents[1]
LO, HI, TARGET, CONFIDENCE = 4, 200, 0.8, 0.95
SIMSOLVE_PER_ROW = 9000


def analytic(level: int) -> float:
    return cluster_trial_power(0.3, level / 2, 20, 0.05, var=1 / 0.95, test="t")


def replay(seed: int):
    """An evaluator drawing rejections from the analytic power (a stand-in for real runs, to count reps)."""
    streams: dict[int, np.ndarray] = {}

    def evaluate(level: int, reps: int) -> tuple[int, int]:
        if level not in streams or streams[level].size < reps:
            streams[level] = np.random.default_rng([seed, level]).random(max(reps, 12800)) < analytic(level)
        return int(streams[level][:reps].sum()), reps

    return evaluate


def grid_reps(seed: int) -> int:
    """Replicates a grid over every level needs for the same guarantee (each level decided, error split)."""
    levels = range(LO, HI + 1)
    delta = (1 - CONFIDENCE) / len(levels)
    evaluate = replay(seed)
    return sum(decide(evaluate, level, TARGET, delta).reps for level in levels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    study = load_study(ROOT / "studies" / "power_cluster_trial.py")
    out = Path(tempfile.mkdtemp()) / "search"
    t0 = time.perf_counter()
    result, _ = search_power(study, PowerSearch("n_groups", TARGET, "lmm_t", "treat", LO, HI, CONFIDENCE,
                                                fixed={"group_size": 20, "icc": 0.05, "treatment_effect": 0.3}),
                             RunConfig(out=out, jobs=args.jobs, quiet=True), study_file=None)
    seconds = time.perf_counter() - t0
    rerun0 = time.perf_counter()
    again, _ = search_power(study, PowerSearch("n_groups", TARGET, "lmm_t", "treat", LO, HI, CONFIDENCE,
                                               fixed={"group_size": 20, "icc": 0.05, "treatment_effect": 0.3}),
                            RunConfig(out=out, jobs=args.jobs, quiet=True), study_file=None)
    rerun = time.perf_counter() - rerun0
    shutil.rmtree(out.parent, ignore_errors=True)
    replayed = [smallest_level(replay(s), LO, HI, TARGET, confidence=CONFIDENCE).reps for s in range(20)]
    grids = [grid_reps(s) for s in range(3)]
    exact = next(n for n in range(LO, HI + 1) if analytic(n) >= TARGET)
    print(f"question: smallest n_groups in {LO}..{HI} with power >= {TARGET} (confidence {CONFIDENCE}); "
          f"analytic answer (t test, design effect) {exact}")
    found = result.answer if result.sure == result.answer else f"{result.answer} to {result.sure}"
    print(f"search on the study: answer {found}, {result.reps} replicates over {len(result.decisions)} "
          f"levels, {seconds:.1f} s with {args.jobs} jobs ({1e3 * seconds / result.reps:.2f} ms per replicate, "
          f"5 estimators fitted each); rerun from its checkpoints: {rerun:.1f} s, same answer: "
          f"{again.answer == result.answer}")
    print(f"search, replayed on the analytic curve (20 seeds): median {int(np.median(replayed))} replicates "
          f"(range {min(replayed)}-{max(replayed)})")
    print(f"fixed grid over all {HI - LO + 1} levels with the same guarantee (3 seeds): median "
          f"{int(np.median(grids))} replicates; ratio to the search {np.median(grids) / np.median(replayed):.1f}x")
    print(f"SimSolve's documented default: {SIMSOLVE_PER_ROW} replications per solved row; ratio to the search "
          f"{SIMSOLVE_PER_ROW / np.median(replayed):.2f}x (no formal guarantee)")
    if result.warnings:
        print("search warnings: " + "; ".join(result.warnings))
    print(f"(each replicate here fits 5 estimators; {math.ceil(result.reps / 1000)}k replicates)")


if __name__ == "__main__":
    main()
