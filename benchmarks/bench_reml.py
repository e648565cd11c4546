"""Per-fit times of FastMixedLM (single fits and fit_batch per replicate) against statsmodels MixedLM.

Run: ``python benchmarks/bench_reml.py [--quick]``. One BLAS thread. Medians over repeats; statsmodels is
repeated only a few times on large data (it takes seconds). statsmodels gets arrays for the random-intercept
models (no formula cost) and its formula interface for the nested model (variance components need it).
Data: random intercept y ~ x (30 x 20, 500 x 20); the teaching design score ~ hs_gpa + C(method),
50 instructors x 20 students = 1000 students; the call-centre design call_CSAT ~ C(reason) + age with reps
in centres (20 centres x 20 reps x 50 calls = 20,000; 50 centres x 40 reps x 100 calls = 200,000).
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from simstudy.estimators.fast_mixedlm import FastMixedLM  # noqa: E402


def ri_data(rng, G, m, var_u=0.3):
    g = np.repeat(np.arange(G), m)
    x = rng.normal(size=g.size)
    y = 1 + 0.5 * x + rng.normal(scale=np.sqrt(var_u), size=G)[g] + rng.normal(size=g.size)
    return {"g": g, "x": x, "y": y}


def teaching_data(rng, G=50, m=20):
    g = np.repeat(np.arange(G), m)
    method = np.array(["a", "b", "c"])[np.arange(G) % 3][g]
    gpa = np.minimum(rng.normal(3, 0.25, size=g.size), 4)
    score = 50 + 8 * gpa + np.select([method == "b", method == "c"], [2.0, 4.0], 0.0)
    score = score + rng.normal(scale=2, size=G)[g] + rng.normal(scale=6, size=g.size)
    return {"instructor": g, "method": method, "hs_gpa": gpa, "score": score}


def callcentre_data(rng, C, R, m):
    centre = np.repeat(np.arange(C), R * m)
    rep = np.tile(np.repeat(np.arange(R), m), C)
    reason = np.array(["billing", "complaint", "other", "tech"])[rng.integers(0, 4, size=centre.size)]
    age = rng.uniform(18, 80, size=centre.size)
    y = (7 + 0.01 * age - 1.0 * (reason == "complaint") + rng.normal(scale=0.7, size=C)[centre]
         + rng.normal(scale=0.9, size=(C, R))[centre, rep] + rng.normal(scale=1.2, size=centre.size))
    return {"centre": centre, "rep": rep, "reason": reason, "age": age, "call_CSAT": y}


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def sm_ri(data, formula_cols, group):
    import statsmodels.api as sm

    from simstudy.formula import Formula

    y, X, _ = Formula(formula_cols).build(data)

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sm.MixedLM(y, X, groups=data[group]).fit(reml=True)

    return run


def sm_nested(data):
    import statsmodels.formula.api as smf

    df = pd.DataFrame(data)

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            smf.mixedlm("call_CSAT ~ C(reason) + age", df, groups="centre", re_formula="1",
                        vc_formula={"rep": "0 + C(rep)"}).fit(reml=True)

    return run


def main(quick: bool = False) -> None:
    rng = np.random.default_rng(20240601)
    cases = [
        ("random intercept 30 x 20", lambda: ri_data(rng, 30, 20), "y ~ x", "g", 1000, 5),
        ("random intercept 500 x 20", lambda: ri_data(rng, 500, 20), "y ~ x", "g", 100, 3),
        ("teaching 50 instructors x 20 (1000 students)", lambda: teaching_data(rng),
         "score ~ hs_gpa + C(method)", "instructor", 300, 3),
        ("nested centre/rep, 20,000 calls", lambda: callcentre_data(rng, 20, 20, 50),
         "call_CSAT ~ C(reason) + age", ["centre", "rep"], 5, 2),
        ("nested centre/rep, 200,000 calls", lambda: callcentre_data(rng, 50, 40, 100),
         "call_CSAT ~ C(reason) + age", ["centre", "rep"], 2, 1),
    ]
    rows = []
    for label, make, formula, groups, n_batch, sm_reps in cases:
        if quick:
            n_batch, sm_reps = min(n_batch, 50), 1
        data = make()
        est = FastMixedLM(formula, groups=groups)
        est.fit(data)  # warm-up
        t_fit = median_time(lambda: est.fit(data), 7 if len(data["y" if "y" in data else list(data)[-1]]) < 50_000 else 3)
        batch = [make() for _ in range(n_batch)]
        t0 = time.perf_counter()
        est.fit_batch(batch)
        t_batch = (time.perf_counter() - t0) / n_batch
        run = sm_nested(data) if isinstance(groups, list) else sm_ri(data, formula, groups)
        t_sm = median_time(run, sm_reps)
        rows.append((label, t_sm, t_fit, t_batch))
        print(f"{label}: statsmodels {t_sm * 1e3:.1f} ms, fit {t_fit * 1e3:.2f} ms, "
              f"fit_batch {t_batch * 1e3:.3f} ms/replicate", flush=True)
    print()
    print("| data | statsmodels MixedLM | FastMixedLM.fit | fit_batch per replicate | ratio fit | ratio batch |")
    print("|---|---|---|---|---|---|")
    for label, t_sm, t_fit, t_batch in rows:
        print(f"| {label} | {t_sm * 1e3:.1f} ms | {t_fit * 1e3:.2f} ms | {t_batch * 1e3:.3f} ms | "
              f"{t_sm / t_fit:.0f}x | {t_sm / t_batch:.0f}x |")


if __name__ == "__main__":
    with threadpool_limits(limits=1):
        main(quick="--quick" in sys.argv)
