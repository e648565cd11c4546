"""Per-replicate times of GLMM (batched and single fits) against lme4's glmer and statsmodels' Bayesian GLMMs.

Run: ``python benchmarks/bench_glmm.py [--quick] [--rounds N]``. BLAS is pinned to one thread (environment
variables before numpy is imported, ``threadpool_limits``, and the same variables for R). Methods are
interleaved: every round runs each method on each case in turn; the table gives the median over rounds and
the range [min, max] of the per-replicate time.

- ``GLMM batch``: one ``fit_batch`` call on all replicates of the case, divided by the number of replicates
  (it includes building the design matrices from the data dicts);
- ``GLMM fit``: ``fit`` one replicate at a time;
- ``glmer``: ``lme4::glmer(..., nAGQ = q)`` with its default control, timed inside R (``proc.time`` around a
  loop over replicates read from a CSV written once, so R's start-up and reading are excluded). Skipped with
  a message where ``Rscript`` or lme4 is not available;
- ``statsmodels VB``: ``BinomialBayesMixedGLM`` / ``PoissonBayesMixedGLM`` ``fit_vb()`` (variational Bayes: a
  different estimator, timed only, its estimates are not compared). Not for successes out of trials.

Data: y ~ x + treat + (1 | g), x within clusters, treat by cluster, random-intercept SD 0.7.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from simstudy.estimators.glmm import GLMM  # noqa: E402


def make(rng, G, n, family="binomial", trials=None, b0=-0.5, sd=0.7):
    g = np.repeat(np.arange(G), n)
    x = rng.normal(size=g.size)
    treat = (np.arange(G) % 2)[g]
    eta = b0 + 0.5 * x + 0.4 * treat + rng.normal(scale=sd, size=G)[g]
    if family == "poisson":
        return {"g": g, "x": x, "treat": treat, "y": rng.poisson(np.exp(eta))}
    if trials is not None:
        m = rng.integers(trials[0], trials[1] + 1, size=g.size)
        return {"g": g, "x": x, "treat": treat, "y": rng.binomial(m, 1 / (1 + np.exp(-eta))), "n": m}
    return {"g": g, "x": x, "treat": treat, "y": rng.binomial(1, 1 / (1 + np.exp(-eta)))}


# label, G, n, family, trials, nAGQ, replicates (batch), single fits, glmer fits, statsmodels fits
CASES = [
    ("binary 0/1, 30 x 20, Laplace", 30, 20, "binomial", None, 1, 300, 30, 20, 5),
    ("binary 0/1, 30 x 20, nAGQ = 10", 30, 20, "binomial", None, 10, 300, 30, 20, 0),
    ("successes of 1-12 trials, 20 x 5, Laplace", 20, 5, "binomial", (1, 12), 1, 300, 30, 20, 0),
    ("Poisson, 30 x 10, Laplace", 30, 10, "poisson", None, 1, 300, 30, 20, 5),
    ("Poisson, 30 x 10, nAGQ = 10", 30, 10, "poisson", None, 10, 300, 30, 20, 0),
    ("binary 0/1, 100 x 50 (5,000 rows), Laplace", 100, 50, "binomial", None, 1, 60, 10, 5, 2),
]

R_SCRIPT = r"""
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1]); fam <- args[2]; nagq <- as.integer(args[3]); k <- as.integer(args[4])
reps <- split(d, d$rep)[seq_len(k)]
for (r in seq_along(reps)) reps[[r]]$g <- factor(reps[[r]]$g)
form <- if ("n" %in% names(d)) cbind(y, n - y) ~ x + treat + (1 | g) else y ~ x + treat + (1 | g)
family <- if (fam == "poisson") poisson else binomial
t0 <- proc.time()[["elapsed"]]
for (dd in reps) suppressWarnings(suppressMessages(glmer(form, data = dd, family = family, nAGQ = nagq)))
cat(sprintf("%.6f\n", (proc.time()[["elapsed"]] - t0) / length(reps)))
"""


def r_available() -> str:
    if shutil.which("Rscript") is None:
        return "Rscript not found"
    ok = subprocess.run(["Rscript", "-e", "suppressPackageStartupMessages(library(lme4))"], capture_output=True)
    return "" if ok.returncode == 0 else "R package lme4 not installed"


def time_glmer(csv: Path, script: Path, family: str, nagq: int, k: int) -> float:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run(["Rscript", str(script), str(csv), family, str(nagq), str(k)], capture_output=True,
                         text=True, env=env, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def time_statsmodels(data: list[dict], family: str) -> float:
    from scipy import sparse
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM, PoissonBayesMixedGLM

    cls = PoissonBayesMixedGLM if family == "poisson" else BinomialBayesMixedGLM
    t0 = time.perf_counter()
    for d in data:
        n = d["y"].size
        G = int(d["g"].max()) + 1
        X = np.column_stack([np.ones(n), d["x"], d["treat"]])
        Z = sparse.csr_matrix((np.ones(n), (np.arange(n), d["g"])), shape=(n, G))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cls(d["y"].astype(float), X, Z, np.zeros(G, dtype=int), vcp_p=1.0, fe_p=2.0).fit_vb()
    return (time.perf_counter() - t0) / len(data)


def fmt(times: list[float]) -> str:
    if not times:
        return "n/a"
    a = np.array(times) * 1000
    return f"{np.median(a):8.3f} [{a.min():.3f}, {a.max():.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer replicates and 3 rounds")
    ap.add_argument("--rounds", type=int, default=None, help="rounds of interleaved timings (default 5, quick 3)")
    args = ap.parse_args()
    rounds = args.rounds or (3 if args.quick else 5)
    why_no_r = r_available()
    if why_no_r:
        print(f"glmer skipped: {why_no_r}")
    rng = np.random.default_rng(20240611)
    tmp = Path(tempfile.mkdtemp(prefix="bench_glmm_"))
    script = tmp / "glmer_time.R"
    script.write_text(R_SCRIPT)
    prepared = []
    for label, G, n, family, trials, nagq, n_batch, n_single, n_r, n_sm in CASES:
        if args.quick:
            n_batch, n_single, n_r, n_sm = max(20, n_batch // 5), max(5, n_single // 3), max(3, n_r // 4), min(n_sm, 2)
        data = [make(rng, G, n, family, trials) for _ in range(n_batch)]
        csv = tmp / f"case{len(prepared)}.csv"
        if not why_no_r:
            pd.concat([pd.DataFrame({**d, "rep": r}) for r, d in enumerate(data[:n_r])]).to_csv(csv, index=False)
        est = GLMM("y ~ x + treat", groups="g", family=family, nagq=nagq, trials="n" if trials else None)
        est.fit_batch(data[:3])  # warm-up
        prepared.append((label, family, nagq, data, est, csv, n_single, n_r, n_sm, {k: [] for k in "bfrs"}))
    with threadpool_limits(limits=1):
        for _ in range(rounds):
            for label, family, nagq, data, est, csv, n_single, n_r, n_sm, t in prepared:
                t0 = time.perf_counter()
                fits = est.fit_batch(data)
                t["b"].append((time.perf_counter() - t0) / len(data))
                t0 = time.perf_counter()
                for d in data[:n_single]:
                    est.fit(d)
                t["f"].append((time.perf_counter() - t0) / n_single)
                if not why_no_r:
                    t["r"].append(time_glmer(csv, script, family, nagq, n_r))
                if n_sm:
                    t["s"].append(time_statsmodels(data[:n_sm], family))
                t.setdefault("status", [f.status for f in fits])
    print(f"\nms per replicate: median over {rounds} interleaved rounds [min, max]; BLAS on one thread\n")
    head = (f"{'case':44s} {'GLMM batch':>24s} {'GLMM fit':>24s} {'glmer':>24s} {'statsmodels VB':>24s}"
            "  glmer/batch  VB/batch")
    print(head)
    print("-" * len(head))
    for label, family, nagq, data, est, csv, n_single, n_r, n_sm, t in prepared:
        med = {k: np.median(v) if v else np.nan for k, v in t.items() if k != "status"}
        ratio_r = f"{med['r'] / med['b']:10.0f}x" if t["r"] else "       n/a"
        ratio_s = f"{med['s'] / med['b']:8.0f}x" if t["s"] else "     n/a"
        print(f"{label:44s} {fmt(t['b']):>24s} {fmt(t['f']):>24s} {fmt(t['r']):>24s} {fmt(t['s']):>24s}  "
              f"{ratio_r}  {ratio_s}")
        counts = pd.Series(t["status"]).value_counts().to_dict()
        print(f"{'':44s} ({len(data)} replicates batched; statuses {counts})")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
