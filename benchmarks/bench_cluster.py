"""Throughput of one study on loky with 2 jobs against a Dask LocalCluster of 2 workers (1 thread each).

The same study, seed and chunk size on both. The cluster is started once, before the timed runs, as a
cluster a user submits to is already running; loky's workers are likewise warm after the first run (the
first run of each is a warm-up, not timed). Starting a LocalCluster of 2 processes costs 3-4 s on its own
(``--scheduler local:2`` pays it on every run). Target: Dask at least 90% of loky's throughput for chunks
of realistic size (here ~0.5-1 s of work each).

Run: ``.venv/bin/python benchmarks/bench_cluster.py [--reps 8000] [--chunk 1000] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from simstudy.design import Design
from simstudy.dgp.clustered import RandomIntercept
from simstudy.engine.runner import RunConfig, run_study
from simstudy.estimators import OLS, MixedLM
from simstudy.study import Study

FORMULA = "y ~ x + treat"


def study(reps: int) -> Study:
    return Study(name="bench_cluster", design=Design({"n_groups": [10, 30], "group_size": [20], "icc": [0.1]}),
                 dgp=RandomIntercept(),
                 estimators={"ols": OLS(FORMULA), "ols_cluster": OLS(FORMULA, groups="group"),
                             "lmm": MixedLM(FORMULA, groups="group")},
                 reps=reps, seed=3)


def timed(reps: int, chunk: int, **backend: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run_study(study(reps), RunConfig(out=Path(tmp) / "r", jobs=2, chunk_size=chunk, quiet=True, **backend))
        return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=8000)
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from distributed import LocalCluster

    loky, dask = [], []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        timed(200, 50)  # warm-up
        timed(200, 50, backend="dask", scheduler=address)
        for _ in range(args.repeats):  # interleaved, so that load on the machine hits both alike
            loky.append(timed(args.reps, args.chunk))
            dask.append(timed(args.reps, args.chunk, backend="dask", scheduler=address))
    n = 2 * args.reps
    lk, dk = statistics.median(loky), statistics.median(dask)
    print(f"{n} replicates (2 cells), chunks of {args.chunk}, medians of {args.repeats} runs")
    print(f"  loky, 2 jobs:               {lk:6.2f} s  ({n / lk:7.0f} replicates/s)")
    print(f"  Dask LocalCluster, 2 x 1:   {dk:6.2f} s  ({n / dk:7.0f} replicates/s; cluster already running)")
    print(f"  Dask throughput / loky throughput: {lk / dk:.0%}")


if __name__ == "__main__":
    main()
