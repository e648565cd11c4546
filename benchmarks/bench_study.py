"""Per-replicate cost of a study, against floors timed in the same run.

Sections (``--only`` picks some; every time is a median over interleaved rounds, with the range):

``loop``
    The compute loop (:func:`simstudy.engine.chunk.run_chunk` over chunks of 250, in this process) of one
    cell of 30 groups x 20, per replicate, for an OLS-only study and a fast-LMM-only study, against the
    *generation floor*: plain numpy drawing the same data as :class:`simstudy.dgp.RandomIntercept` (one
    Generator, no framework). Targets: OLS at most 2.5x the floor, LMM at most 3.5x.
``overhead``
    ``studies/cluster_trial.py`` (16 cells, 4 estimators), compute loop: the share of it that is neither
    generation (``generate_seconds``) nor a fit (``fit_seconds``; a batch's time is shared by its
    replicates). Imports excluded (a warm-up chunk first). Target: at most 15%.
``wall``
    OLS + mixed model, one cell, 4,000 replicates: ``run_study`` (1 job: one forked worker process, as a
    command runs it; one loky worker, ``SIMSTUDY_FORK=0``; and ``in_process``) timed in a fresh process after
    its imports, against the compute loop of the same replicates. Target: wall at most 2x the compute loop.
``jobs``
    CPU seconds (the run's process and its workers) per replicate with 2 jobs against 1 job, same study,
    20,000 replicates. Target: at most 1.15x.
``notebook``
    The notebook's way (a DataFrame and ``smf.ols`` + ``smf.mixedlm`` per replicate) against simstudy's
    compute loop, and OLS per fit against ``numpy.linalg.lstsq`` on the same arrays.

BLAS is pinned to one thread and malloc keeps freed memory (:func:`simstudy.malloc_policy.keep_freed_memory`),
here as in the workers, so that the loop runs as it does in a worker. Run:
``.venv/bin/python benchmarks/bench_study.py [--rounds 5] [--only loop overhead ...]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
import timeit
import warnings
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from simstudy.design import Design  # noqa: E402
from simstudy.dgp.clustered import RandomIntercept  # noqa: E402
from simstudy.engine.chunk import Task, run_chunk  # noqa: E402
from simstudy.estimators import OLS, MixedLM  # noqa: E402
from simstudy.malloc_policy import keep_freed_memory  # noqa: E402
from simstudy.study import Study, load_study  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FORMULA = "y ~ x + treat"
CELL = {"n_groups": 30, "group_size": 20, "icc": 0.1, "treatment_effect": 0.3}
CHUNK = 250


def study_of(estimators: dict, reps: int = 1000) -> Study:
    return Study(name="bench", design=Design({k: [v] for k, v in CELL.items()}), dgp=RandomIntercept(),
                 estimators=estimators, reps=reps, seed=1)


def floor(reps: int) -> float:
    """Seconds per replicate of plain numpy drawing RandomIntercept's data (same columns, same draws)."""
    rng = np.random.default_rng(0)
    G, m = CELL["n_groups"], CELL["group_size"]
    sd_u = math.sqrt(CELL["icc"] / (1 - CELL["icc"]))
    t0 = time.perf_counter()
    for _ in range(reps):
        group = np.repeat(np.arange(G), m)
        treat_g = np.zeros(G, np.int64)
        treat_g[rng.permutation(G)[: G // 2]] = 1
        level = rng.normal(0.0, sd_u, G)
        level += CELL["treatment_effect"] * treat_g
        x = rng.standard_normal(G * m)
        y = rng.normal(0.0, 1.0, G * m)
        y += 0.5 * x
        y += level[group]
        {"y": y, "x": x, "treat": treat_g[group], "group": group}
    return (time.perf_counter() - t0) / reps


def compute_loop(study: Study, reps: int, cells: list[dict] | None = None) -> tuple[float, float, float]:
    """(seconds, generate seconds, fit seconds) of run_chunk over every cell's replicates, chunks of 250."""
    total = gen = fit = 0.0
    for i, cell in enumerate(cells or [CELL]):
        t0 = time.perf_counter()
        results = [run_chunk(study, Task(i, cell, s, min(s + CHUNK, reps + 1), study.seed))
                   for s in range(1, reps + 1, CHUNK)]
        total += time.perf_counter() - t0
        gen += sum(float(np.nansum(r.generate_seconds)) for r in results)
        fit += sum(float(np.nansum(r.fit_seconds)) for r in results)
    return total, gen, fit


def summary(values: list[float], scale: float = 1.0, unit: str = "") -> str:
    v = [x * scale for x in values]
    return f"{statistics.median(v):.3g}{unit} [{min(v):.3g}-{max(v):.3g}]"


# -------------------------------------------------------------------------------------------------------
def section_loop(rounds: int, reps: int) -> None:
    studies = {"ols": study_of({"ols": OLS(FORMULA)}), "lmm": study_of({"lmm": MixedLM(FORMULA, groups="group")})}
    for s in studies.values():  # warm up: imports, caches
        compute_loop(s, 20)
    times: dict[str, list[float]] = {"floor": [], "ols": [], "lmm": []}
    for _ in range(rounds):
        times["floor"].append(floor(reps))
        for name, s in studies.items():
            times[name].append(compute_loop(s, reps)[0] / reps)
    print(f"compute loop per replicate, one cell 30 x 20, {reps} replicates, {rounds} rounds: median [range]")
    print(f"  generation floor (plain numpy):     {summary(times['floor'], 1e6, ' us')}")
    for name, target in (("ols", 2.5), ("lmm", 3.5)):
        ratios = [t / f for t, f in zip(times[name], times["floor"])]
        print(f"  {name + '-only study':34s} {summary(times[name], 1e6, ' us')}  = {summary(ratios, 1, 'x')} "
              f"the floor (target <= {target}x)")


def section_overhead(rounds: int, reps: int) -> None:
    study = load_study(ROOT / "studies" / "cluster_trial.py")
    cells = study.validate()
    compute_loop(study, 5, cells[:1])  # imports excluded
    shares, totals, gens, fits = [], [], [], []
    for _ in range(rounds):
        total, gen, fit = compute_loop(study, reps, cells)
        shares.append((total - gen - fit) / total)
        totals.append(total / (reps * len(cells)))
        gens.append(gen / total)
        fits.append(fit / total)
    print(f"cluster_trial compute loop ({len(cells)} cells x {reps} replicates, {rounds} rounds): "
          f"{summary(totals, 1e6, ' us')} per replicate")
    print(f"  generation {summary(gens, 100, '%')}, fits {summary(fits, 100, '%')}, "
          f"everything else {summary(shares, 100, '%')} of compute (target <= 15%)")


WALL = """
import json, resource, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, {bench!r})
import bench_study as b
from simstudy.engine.runner import RunConfig, run_study
from threadpoolctl import threadpool_limits


def cpu(who):
    u = resource.getrusage(who)
    return u.ru_utime + u.ru_stime


study = b.study_of({{"ols": b.OLS(b.FORMULA), "lmm": b.MixedLM(b.FORMULA, groups="group")}}, {reps})
cpu0 = cpu(resource.RUSAGE_SELF)
with threadpool_limits(1), tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    run_study(study, RunConfig(out=Path(tmp) / "r", jobs={jobs}, in_process={in_process}, quiet=True))
    wall = time.perf_counter() - t0
    from joblib.externals.loky import reusable_executor
    if reusable_executor._executor is not None:  # join the workers: their CPU time then counts as ours
        reusable_executor._executor.shutdown(wait=True)
print(json.dumps({{"wall": wall, "cpu": cpu(resource.RUSAGE_SELF) + cpu(resource.RUSAGE_CHILDREN) - cpu0}}))
"""


def run_fresh(reps: int, jobs: int, in_process: bool = False, fork: str = "") -> dict[str, float]:
    """``run_study`` in a new process: its wall time after the imports, and the CPU seconds of the process
    (its imports excluded) and of its workers (theirs included). ``fork``: the ``SIMSTUDY_FORK`` setting
    ("" forked workers, as a command runs them; "0" loky's)."""
    code = WALL.format(bench=str(Path(__file__).resolve().parent), reps=reps, jobs=jobs, in_process=in_process)
    env = {**os.environ, "SIMSTUDY_FORK": fork} if fork else dict(os.environ)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def section_wall(rounds: int, reps: int) -> None:
    study = study_of({"ols": OLS(FORMULA), "lmm": MixedLM(FORMULA, groups="group")}, reps)
    compute_loop(study, 20)
    loop, walls, loky, inproc = [], [], [], []
    for _ in range(rounds):
        loop.append(compute_loop(study, reps)[0])
        walls.append(run_fresh(reps, 1)["wall"])
        loky.append(run_fresh(reps, 1, fork="0")["wall"])
        inproc.append(run_fresh(reps, 1, in_process=True)["wall"])
    print(f"OLS + mixed model, one cell, {reps} replicates, {rounds} rounds (wall after imports):")
    print(f"  compute loop (run_chunk in this process): {summary(loop, 1, ' s')}")
    for name, walls_of in (("1 job (a forked worker)", walls), ("1 job, loky's worker (SIMSTUDY_FORK=0)", loky),
                           ("in_process", inproc)):
        print(f"  run_study, {name}: {summary(walls_of, 1, ' s')} = "
              f"{summary([w / c for w, c in zip(walls_of, loop)], 1, 'x')} the loop (target <= 2x)")


def section_jobs(rounds: int, reps: int) -> None:
    for fork, what in (("", "forked workers"), ("0", "loky's workers")):
        one, two = [], []
        for _ in range(rounds):
            for jobs, into in ((1, one), (2, two)):
                into.append(run_fresh(reps, jobs, fork=fork)["cpu"] / reps)
        print(f"CPU seconds per replicate (the run's process, its imports excluded, and its workers), {reps} "
              f"replicates, {rounds} rounds, {what}:")
        print(f"  1 job {summary(one, 1e6, ' us')}, 2 jobs {summary(two, 1e6, ' us')}: "
              f"{summary([b / a for a, b in zip(one, two)], 1, 'x')} (target <= 1.15x)")


def notebook_way(reps: int) -> dict[str, float]:
    import pandas as pd
    import statsmodels.formula.api as smf

    dgp = RandomIntercept()
    ols, lmm = [], []
    for r in range(reps):
        df = pd.DataFrame(dgp.generate(np.random.default_rng(r), **CELL))
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


def section_notebook(rounds: int, reps: int) -> None:
    from simstudy.estimators.formula import Formula

    base = notebook_way(30)
    study = study_of({"ols": OLS(FORMULA), "lmm": MixedLM(FORMULA, groups="group")}, reps)
    compute_loop(study, 20)
    loop = [compute_loop(study, reps)[0] / reps for _ in range(rounds)]
    total = base["ols"] + base["lmm"]
    print(f"notebook loop (smf.ols {base['ols'] * 1e3:.1f} ms + smf.mixedlm {base['lmm'] * 1e3:.1f} ms): "
          f"{total * 1e3:.1f} ms per replicate; simstudy compute loop {summary(loop, 1e3, ' ms')}: "
          f"{summary([total / t for t in loop], 1, 'x')} faster")
    data = RandomIntercept().generate(np.random.default_rng(0), **CELL)
    y, X, _ = Formula(FORMULA).build(data)
    est, n = OLS(FORMULA), 2000
    t_ols = min(timeit.repeat(lambda: est.fit(data), number=n, repeat=5)) / n
    t_lstsq = min(timeit.repeat(lambda: np.linalg.lstsq(X, y, rcond=None), number=n, repeat=5)) / n
    t_build = min(timeit.repeat(lambda: Formula(FORMULA).build(data), number=n, repeat=5)) / n
    print(f"OLS per fit {t_ols * 1e6:.1f} us vs numpy lstsq on the same arrays {t_lstsq * 1e6:.1f} us: "
          f"{t_ols / t_lstsq:.2f}x (design matrix build {t_build * 1e6:.1f} us of it)")


SECTIONS = {"loop": section_loop, "overhead": section_overhead, "wall": section_wall, "jobs": section_jobs,
            "notebook": section_notebook}
DEFAULT_REPS = {"loop": 1000, "overhead": 250, "wall": 4000, "jobs": 20000, "notebook": 1000}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--reps", type=int, help="replicates (default per section: "
                        + ", ".join(f"{k} {v}" for k, v in DEFAULT_REPS.items()) + ")")
    args = parser.parse_args()
    keep_freed_memory()  # as in every worker
    with threadpool_limits(limits=1):
        for name in args.only:
            SECTIONS[name](args.rounds if name not in ("jobs", "wall") else min(args.rounds, 3),
                           args.reps or DEFAULT_REPS[name])
            sys.stdout.flush()


if __name__ == "__main__":
    main()
