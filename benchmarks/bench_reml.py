"""Per-replicate times of FastMixedLM (fit_batch, single fits) against statsmodels MixedLM and lme4 (lmer, refit).

Run: ``python benchmarks/bench_reml.py [--quick] [--rounds N] [--big]``. BLAS pinned to one thread
(threadpoolctl here; ``OPENBLAS_NUM_THREADS=1`` etc. for R). Contenders are interleaved: every round runs each
case's contenders one after the other (fit_batch, single fits, Formula.build, statsmodels, lme4), and the
rounds are repeated (3 by default); the tables give medians over rounds with [min-max] ranges, and ratios of
medians.

- ``fit_batch``: one ``FastMixedLM.fit_batch`` call on the case's batch of replicates, divided by the number
  of replicates; it includes building every design matrix from its data dict (``Formula.build``, reported
  separately: for string columns such as the call reason its ``np.unique`` dominates at 20,000 rows).
- ``fit``: ``FastMixedLM.fit`` of single replicates (a few per round).
- statsmodels: ``MixedLM(...).fit(reml=True)`` on one replicate per round (arrays for random intercepts and
  the random slope, ``exog_re = [1, x]``; its formula interface with a variance component for nested reps).
- lme4 (where ``Rscript`` and lme4 are installed; otherwise skipped with a message): one ``Rscript`` process
  per case and round reads the replicates from CSV files and times, inside R, ``lmer`` on each of a few
  replicates (model frame and fit) and ``refit(fit, newresp)`` with the other replicates' responses (lme4's
  fastest path for simulation: the model is built once); R start-up and package loading are not timed.

Data: random intercept ``y ~ x`` (30 x 20, 500 x 20); the teaching design (``simstudy.dgp.teaching.
TeachingMethods``, 5 methods x 100 instructors x 100 students = 50,000 rows, ``score ~ hs_gpa + C(method)``,
instructor as group); random intercept and slope ``y ~ x + (1 + x | g)``, 30 groups x 20; the call-centre
design (``simstudy.dgp.call_center.CallCenter``, ``call_CSAT ~ C(reason) + age``, reps in centres): the
study's cell 20 centres x 10 reps x 10 calls (2,000 rows, rep_var 0.1) and 20 x 20 x 50 (20,000 rows);
with ``--big`` also 50 x 40 x 100 (200,000 rows).
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from simstudy.dgp.call_center import CallCenter  # noqa: E402
from simstudy.dgp.teaching import TeachingMethods  # noqa: E402
from simstudy.estimators.fast_mixedlm import FastMixedLM  # noqa: E402
from simstudy.estimators.formula import Formula  # noqa: E402


def rs_data(rng, G, m):
    g = np.repeat(np.arange(G), m)
    x = rng.normal(loc=0.5, size=g.size)
    u = rng.multivariate_normal([0, 0], [[0.5, 0.1], [0.1, 0.2]], size=G)
    y = 1 + 0.5 * x + u[g, 0] + u[g, 1] * x + rng.normal(size=g.size)
    return {"g": g, "x": x, "y": y}


def ri_data(rng, G, m, var_u=0.3):
    g = np.repeat(np.arange(G), m)
    x = rng.normal(size=g.size)
    y = 1 + 0.5 * x + rng.normal(scale=np.sqrt(var_u), size=G)[g] + rng.normal(size=g.size)
    return {"g": g, "x": x, "y": y}


def teaching_data(rng):
    """TeachingMethods, 5 methods x 100 instructors x 100 students (50,000 rows)."""
    return TeachingMethods().generate(rng, n_methods=5, instructors_per_method=100, students_per_instructor=100,
                                      method_effects_pct=(0.0, 5.0, 10.0, 15.0, 20.0))


def callcentre_data(rng, C, R, m, rep_var=0.3):
    """CallCenter: C centres x R reps x m calls (rep ids unique across centres)."""
    return CallCenter().generate(rng, n_centres=C, reps_per_centre=R, calls_per_rep=m, rep_var=rep_var)


@dataclass
class Case:
    label: str
    make: Callable[[np.random.Generator], dict]
    formula: str
    groups: str | list[str]
    slope: str | None
    rformula: str  # lme4
    factors: tuple[str, ...]  # columns R reads as factors
    n_batch: int  # replicates per fit_batch call
    n_single: int  # single fits per round
    n_r: int  # replicates for lmer / refit per round
    sm: bool = True  # run statsmodels
    batch: list = field(default_factory=list)


def cases(rng: np.random.Generator, quick: bool, big: bool) -> list[Case]:
    cc = ("centre", "rep", "reason")
    out = [
        Case("random intercept 30 x 20", lambda r: ri_data(r, 30, 20), "y ~ x", "g", None, "y ~ x + (1|g)", ("g",),
             1000, 20, 40),
        Case("random intercept 500 x 20", lambda r: ri_data(r, 500, 20), "y ~ x", "g", None, "y ~ x + (1|g)", ("g",),
             100, 5, 10),
        Case("teaching 500 instructors x 100 (50,000 rows)", teaching_data, "score ~ hs_gpa + C(method)",
             "instructor", None, "score ~ hs_gpa + method + (1|instructor)", ("instructor", "method"), 20, 2, 4),
        Case("random intercept + slope 30 x 20", lambda r: rs_data(r, 30, 20), "y ~ x", "g", "x",
             "y ~ x + (1 + x|g)", ("g",), 200, 5, 30),
        Case("nested call-centre cell 20 x 10 x 10 (2,000 calls)", lambda r: callcentre_data(r, 20, 10, 10, 0.1),
             "call_CSAT ~ C(reason) + age", ["centre", "rep"], None,
             "call_CSAT ~ reason + age + (1|centre) + (1|rep)", cc, 200, 5, 20),
        Case("nested call-centre 20 x 20 x 50 (20,000 calls)", lambda r: callcentre_data(r, 20, 20, 50),
             "call_CSAT ~ C(reason) + age", ["centre", "rep"], None,
             "call_CSAT ~ reason + age + (1|centre) + (1|rep)", cc, 20, 2, 5),
    ]
    if big:
        out.append(Case("nested call-centre 50 x 40 x 100 (200,000 calls)", lambda r: callcentre_data(r, 50, 40, 100),
                        "call_CSAT ~ C(reason) + age", ["centre", "rep"], None,
                        "call_CSAT ~ reason + age + (1|centre) + (1|rep)", cc, 3, 1, 2, sm=False))
    for c in out:
        if quick:
            c.n_batch, c.n_single, c.n_r = min(c.n_batch, 20), 1, min(c.n_r, 3)
        c.batch = [c.make(rng) for _ in range(max(c.n_batch, c.n_r + 1))]
    return out


def seconds(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def statsmodels_run(case: Case, data: dict) -> Callable[[], object]:
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    if case.slope is not None:
        exog = np.column_stack([np.ones_like(data["x"]), data["x"]])
        return lambda: sm.MixedLM(data["y"], exog, groups=data["g"], exog_re=exog).fit(reml=True)
    if isinstance(case.groups, list):
        df = pd.DataFrame(data)
        return lambda: smf.mixedlm(case.formula, df, groups="centre", re_formula="1",
                                   vc_formula={"rep": "0 + C(rep)"}).fit(reml=True)
    y, X, _ = Formula(case.formula).build(data)
    return lambda: sm.MixedLM(y, X, groups=data[case.groups]).fit(reml=True)


R_SCRIPT = r"""
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]; form <- as.formula(args[2]); n <- as.integer(args[3])
factors <- strsplit(args[4], ",")[[1]]
read <- function(i) {
  d <- read.csv(file.path(dir, sprintf("d%d.csv", i)))
  for (f in factors) d[[f]] <- factor(d[[f]])
  d
}
ds <- lapply(0:n, read)
resp <- all.vars(form)[1]
quiet <- function(e) suppressMessages(suppressWarnings(e))
t0 <- proc.time()[["elapsed"]]
for (i in 1:n) quiet(lmer(form, data = ds[[i]]))
t1 <- proc.time()[["elapsed"]]
fit <- quiet(lmer(form, data = ds[[n + 1]]))
t2 <- proc.time()[["elapsed"]]
for (i in 1:n) quiet(refit(fit, newresp = ds[[i]][[resp]]))
t3 <- proc.time()[["elapsed"]]
cat(sprintf("%.6f %.6f\n", (t1 - t0) / n, (t3 - t2) / n))
"""


class LME4:
    """lme4 timings through Rscript (None when R or lme4 is missing)."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.ok = False
        self.why = ""
        rscript = shutil.which("Rscript")
        if rscript is None:
            self.why = "Rscript not found: lme4 columns skipped"
            return
        self.script = workdir / "time_lme4.R"
        self.script.write_text(R_SCRIPT)
        probe = subprocess.run([rscript, "-e", "suppressPackageStartupMessages(library(lme4))"],
                               capture_output=True, text=True)
        if probe.returncode != 0:
            self.why = "R package lme4 not installed: lme4 columns skipped"
            return
        self.rscript, self.ok = rscript, True

    def write(self, case: Case, k: int) -> Path:
        d = self.dir / f"case{k}"
        d.mkdir(exist_ok=True)
        for i, data in enumerate(case.batch[: case.n_r + 1]):
            pd.DataFrame(data).to_csv(d / f"d{i}.csv", index=False)
        return d

    def time(self, case: Case, d: Path) -> tuple[float, float]:
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        out = subprocess.run([self.rscript, str(self.script), str(d), case.rformula, str(case.n_r),
                              ",".join(case.factors)], capture_output=True, text=True, env=env, check=True)
        lmer, refit = (float(v) for v in out.stdout.split())
        return lmer, refit


def fmt(values: list[float], scale: float = 1e3, digits: int = 2) -> str:
    v = np.asarray(values) * scale
    if v.size == 0:
        return "-"
    if v.size == 1:
        return f"{v[0]:.{digits}f}"
    return f"{np.median(v):.{digits}f} [{v.min():.{digits}f}-{v.max():.{digits}f}]"


def main(quick: bool = False, rounds: int = 3, big: bool = False) -> None:
    rng = np.random.default_rng(20240601)
    todo = cases(rng, quick, big)
    tmp = Path(tempfile.mkdtemp(prefix="bench_reml_"))
    lme4 = LME4(tmp)
    if not lme4.ok:
        print(lme4.why, flush=True)
    dirs = {k: lme4.write(c, k) for k, c in enumerate(todo)} if lme4.ok else {}
    times: dict[tuple[int, str], list[float]] = {}
    ests = [FastMixedLM(c.formula, groups=c.groups, slope=c.slope) for c in todo]
    for k, (c, est) in enumerate(zip(todo, ests)):
        est.fit_batch(c.batch[:2])  # warm-up
    for rnd in range(rounds):
        for k, (c, est) in enumerate(zip(todo, ests)):
            b = c.batch[: c.n_batch]
            rec = lambda name, v: times.setdefault((k, name), []).append(v)  # noqa: E731
            rec("batch", seconds(lambda: est.fit_batch(b)) / len(b))
            rec("fit", seconds(lambda: [est.fit(d) for d in c.batch[: c.n_single]]) / c.n_single)
            f = Formula(c.formula)
            rec("build", seconds(lambda: [f.build(d) for d in b]) / len(b))
            if c.sm and (not quick or rnd == 0):
                run = statsmodels_run(c, c.batch[rnd % len(c.batch)])
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    rec("statsmodels", seconds(run))
            if lme4.ok:
                lmer, refit = lme4.time(c, dirs[k])
                rec("lmer", lmer)
                rec("refit", refit)
            print(f"round {rnd + 1}/{rounds}: {c.label}: fit_batch {times[(k, 'batch')][-1] * 1e3:.3f} ms/replicate"
                  + (f", refit {times[(k, 'refit')][-1] * 1e3:.1f} ms" if lme4.ok else ""), flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(f"Per replicate, ms: median [min-max] over {rounds} rounds; one BLAS thread. fit_batch includes "
          "Formula.build (its share in the next column).")
    print()
    print("| data | fit_batch | of which Formula.build | FastMixedLM.fit | statsmodels | lme4 lmer | lme4 refit |")
    print("|---|---|---|---|---|---|---|")
    for k, c in enumerate(todo):
        cols = [fmt(times.get((k, n), []), digits=3 if n in ("batch", "build") else 2)
                for n in ("batch", "build", "fit", "statsmodels", "lmer", "refit")]
        print(f"| {c.label} | " + " | ".join(cols) + " |")
    print()
    print("Ratios of medians (how many times faster fit_batch is; 'fitting only' leaves Formula.build out):")
    print()
    print("| data | vs statsmodels | vs lme4 lmer | vs lme4 refit | vs refit, fitting only | single fit vs refit |")
    print("|---|---|---|---|---|---|")
    for k, c in enumerate(todo):
        med = {n: float(np.median(times[(k, n)])) for n in ("batch", "build", "fit", "statsmodels", "lmer", "refit")
               if (k, n) in times}
        b, fit_only = med["batch"], med["batch"] - med["build"]

        def ratio(n: str, base: float) -> str:
            return f"{med[n] / base:.0f}x" if n in med and base > 0 else "-"

        print(f"| {c.label} | {ratio('statsmodels', b)} | {ratio('lmer', b)} | {ratio('refit', b)} | "
              f"{ratio('refit', fit_only)} | {ratio('refit', med['fit'])} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small batches, one statsmodels fit")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--big", action="store_true", help="also 200,000 calls (nested)")
    args = parser.parse_args()
    with threadpool_limits(limits=1):
        main(quick=args.quick, rounds=args.rounds, big=args.big)
    sys.exit(0)
