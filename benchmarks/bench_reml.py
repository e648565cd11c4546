"""Per-fit times of FastMixedLM (single fits and fit_batch per replicate) against statsmodels MixedLM.

Run: ``python benchmarks/bench_reml.py [--quick]``. One BLAS thread. Medians over repeats; statsmodels is
repeated only a few times on large data (it takes seconds). statsmodels gets arrays for the random-intercept
models (no formula cost) and its formula interface for the nested model (variance components need it).
Data: random intercept y ~ x (30 x 20, 500 x 20); the teaching design score ~ hs_gpa + C(method),
50 instructors x 20 students = 1000 students; the call-centre design call_CSAT ~ C(reason) + age with reps
in centres (20 centres x 20 reps x 50 calls = 20,000; 50 centres x 40 reps x 100 calls = 200,000); random
intercept and slope y ~ x + (1 + x | g), 30 x 20 (statsmodels with ``exog_re = [1, x]``).

``fit_batch`` per replicate is the median over repeats of (time of one ``fit_batch`` call) / (replicates);
it includes building the design matrices from the data dicts. ``Formula.build`` alone (the design-matrix
cost inside it) is reported separately, per replicate.
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
    # rep ids unique across centres (the nested models' default, nested_ids="unique")
    return {"centre": centre, "rep": centre * R + rep, "reason": reason, "age": age, "call_CSAT": y}


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def sm_ri(data, formula_cols, group):
    import statsmodels.api as sm

    from simstudy.estimators.formula import Formula

    y, X, _ = Formula(formula_cols).build(data)

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sm.MixedLM(y, X, groups=data[group]).fit(reml=True)

    return run


def sm_slope(data):
    import statsmodels.api as sm

    exog = np.column_stack([np.ones_like(data["x"]), data["x"]])

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sm.MixedLM(data["y"], exog, groups=data["g"], exog_re=exog).fit(reml=True)

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
    from simstudy.estimators.formula import Formula

    rng = np.random.default_rng(20240601)
    # label, data maker, formula, groups, slope, replicates per batch, statsmodels repeats, batch repeats
    cases = [
        ("random intercept 30 x 20", lambda: ri_data(rng, 30, 20), "y ~ x", "g", None, 1000, 5, 5),
        ("random intercept 500 x 20", lambda: ri_data(rng, 500, 20), "y ~ x", "g", None, 100, 3, 3),
        ("teaching 50 instructors x 20 (1000 students)", lambda: teaching_data(rng),
         "score ~ hs_gpa + C(method)", "instructor", None, 300, 3, 3),
        ("random intercept + slope 30 x 20", lambda: rs_data(rng, 30, 20), "y ~ x", "g", "x", 50, 3, 3),
        ("nested centre/rep, 20,000 calls", lambda: callcentre_data(rng, 20, 20, 50),
         "call_CSAT ~ C(reason) + age", ["centre", "rep"], None, 10, 2, 3),
        ("nested centre/rep, 200,000 calls", lambda: callcentre_data(rng, 50, 40, 100),
         "call_CSAT ~ C(reason) + age", ["centre", "rep"], None, 3, 1, 1),
    ]
    rows = []
    for label, make, formula, groups, slope, n_batch, sm_reps, b_reps in cases:
        if quick:
            n_batch, sm_reps, b_reps = min(n_batch, 50), 1, 1
        data = make()
        nrows = len(next(iter(data.values())))
        est = FastMixedLM(formula, groups=groups, slope=slope)
        est.fit(data)  # warm-up
        t_fit = median_time(lambda: est.fit(data), 7 if nrows < 50_000 else 3)
        batch = [make() for _ in range(n_batch)]
        t_batch = median_time(lambda: est.fit_batch(batch), b_reps) / n_batch
        f = Formula(formula)
        t_build = median_time(lambda: [f.build(d) for d in batch], b_reps) / n_batch
        if slope is not None:
            run = sm_slope(data)
        elif isinstance(groups, list):
            run = sm_nested(data)
        else:
            run = sm_ri(data, formula, groups)
        t_sm = median_time(run, sm_reps)
        rows.append((label, t_sm, t_fit, t_batch, t_build))
        print(f"{label}: statsmodels {t_sm * 1e3:.1f} ms, fit {t_fit * 1e3:.2f} ms, "
              f"fit_batch {t_batch * 1e3:.3f} ms/replicate (Formula.build {t_build * 1e3:.3f} ms of it)",
              flush=True)
    print()
    print("| data | statsmodels MixedLM | FastMixedLM.fit | fit_batch per replicate | of which Formula.build "
          "| ratio fit | ratio batch |")
    print("|---|---|---|---|---|---|---|")
    for label, t_sm, t_fit, t_batch, t_build in rows:
        print(f"| {label} | {t_sm * 1e3:.1f} ms | {t_fit * 1e3:.2f} ms | {t_batch * 1e3:.3f} ms | "
              f"{t_build * 1e3:.3f} ms | {t_sm / t_fit:.0f}x | {t_sm / t_batch:.0f}x |")


if __name__ == "__main__":
    with threadpool_limits(limits=1):
        main(quick="--quick" in sys.argv)
