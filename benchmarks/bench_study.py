"""Per-replicate cost of a study of 30 groups x 20 with OLS and a mixed model.

Baseline, timed in the same run: the notebook's way, a loop that builds a DataFrame and calls
``smf.ols(...).fit()`` and ``smf.mixedlm(...).fit()`` per replicate. Then simstudy's runner on the same
design (one process, so the per-replicate CPU costs compare), with the breakdown generate / fit / everything
else (seeding, dispatch, bookkeeping, checkpoints, assembly). Also OLS per replicate against numpy's lstsq
on the same arrays.

Run: ``.venv/bin/python benchmarks/bench_study.py [--reps 2000]``. Prints medians and ratios.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import timeit
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from threadpoolctl import threadpool_limits

from simstudy.design import Design
from simstudy.dgp.clustered import RandomIntercept
from simstudy.engine.runner import RunConfig, run_study
from simstudy.estimators import OLS, MixedLM
from simstudy.estimators.formula import Formula
from simstudy.study import Study

FORMULA = "y ~ x + treat"
FACTORS = {"n_groups": 30, "group_size": 20, "icc": 0.1, "treatment_effect": 0.3}


def notebook_way(reps: int) -> dict[str, float]:
    dgp = RandomIntercept()
    ols, lmm = [], []
    for r in range(reps):
        df = pd.DataFrame(dgp.generate(np.random.default_rng(r), **FACTORS))
        t0 = time.perf_counter()
        smf.ols(FORMULA, df).fit()
        t1 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            smf.mixedlm(FORMULA, df, groups=df["group"]).fit(reml=True)
        t2 = time.perf_counter()
        ols.append(t1 - t0)
        lmm.append(t2 - t1)
    return {"ols": statistics.median(ols), "lmm": statistics.median(lmm)}


def framework(reps: int, jobs: int) -> dict[str, float]:
    study = Study(name="bench", design=Design({k: [v] for k, v in FACTORS.items()}), dgp=RandomIntercept(),
                  estimators={"ols": OLS(FORMULA), "lmm": MixedLM(FORMULA, groups="group")}, reps=reps, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        est, _ = run_study(study, RunConfig(out=Path(tmp) / "b", jobs=jobs, quiet=True))
        total = time.perf_counter() - t0
    fit = est["fit_seconds"]
    return {
        "total": total / reps,
        "generate": float(est["generate_seconds"].sum()) / reps,
        "ols": float(fit.sel({"method": "ols"}).sum()) / reps,
        "lmm": float(fit.sel({"method": "lmm"}).sum()) / reps,
    }


def ols_vs_lstsq() -> tuple[float, float, float]:
    data = RandomIntercept().generate(np.random.default_rng(0), **FACTORS)
    y, X, _ = Formula(FORMULA).build(data)
    est = OLS(FORMULA)
    n = 2000
    t_ols = min(timeit.repeat(lambda: est.fit(data), number=n, repeat=5)) / n
    t_lstsq = min(timeit.repeat(lambda: np.linalg.lstsq(X, y, rcond=None), number=n, repeat=5)) / n
    t_build = min(timeit.repeat(lambda: Formula(FORMULA).build(data), number=n, repeat=5)) / n
    return t_ols, t_lstsq, t_build


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=4000)
    parser.add_argument("--parallel-reps", type=int, default=20000)
    parser.add_argument("--baseline-reps", type=int, default=30)
    args = parser.parse_args()
    ms = 1e3
    with threadpool_limits(limits=1):
        base = notebook_way(args.baseline_reps)
        one = framework(args.reps, jobs=1)
        t_ols, t_lstsq, t_build = ols_vs_lstsq()
    two = framework(args.parallel_reps, jobs=2)
    other = one["total"] - one["generate"] - one["ols"] - one["lmm"]
    base_total = base["ols"] + base["lmm"]
    print("per replicate, 30 groups x 20, OLS + mixed model (medians; one BLAS thread)")
    print(f"  notebook loop (smf.ols + smf.mixedlm):  {base_total * ms:8.3f} ms"
          f"  (ols {base['ols'] * ms:.3f}, mixedlm {base['lmm'] * ms:.3f})")
    print(f"  simstudy, 1 job ({args.reps} reps):            {one['total'] * ms:8.3f} ms"
          f"  -> {base_total / one['total']:.0f}x faster")
    print(f"     generate {one['generate'] * ms:.3f} ms | ols {one['ols'] * ms:.3f} ms | mixed model "
          f"{one['lmm'] * ms:.3f} ms | everything else {other * ms:.3f} ms")
    print(f"  simstudy, 2 jobs ({args.parallel_reps} reps, wall per replicate, worker start-up included): "
          f"{two['total'] * ms:.3f} ms"
          f"  -> {base_total / two['total']:.0f}x faster")
    print(f"OLS per fit {t_ols * 1e6:.1f} us vs numpy lstsq on the same arrays {t_lstsq * 1e6:.1f} us: "
          f"{t_ols / t_lstsq:.2f}x (design matrix build {t_build * 1e6:.1f} us of it)")


if __name__ == "__main__":
    main()
