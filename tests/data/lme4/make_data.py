"""Generate the data sets whose lme4 fits are stored beside this script (run from anywhere).

Every data set comes from a fixed numpy seed; values are written with 10 significant digits, and R and the
tests read the same CSV files, so rounding does not matter. ``manifest.csv`` lists, per data set, the file,
the formula in simstudy's notation (``C(x)`` for categorical columns), the formula for lme4 and the grouping
columns (``centre/rep`` for nested random intercepts). Then run ``Rscript fit_lme4.R`` in this directory.

Data sets
---------
- ``ri10x5_s<seed>``: 10 groups x 5, y ~ x, group variance 0 (seeds 1-6: boundary-prone) or 0.3 (7-10).
- ``ri30x20``: 30 groups x 20, y ~ x + treat (cluster-level binary treatment).
- ``ri500x20``: 500 groups x 20, y ~ x.
- ``ri_unbalanced``: 40 groups of sizes 1 to 40 (five singletons), y ~ x + z.
- ``teaching``: students within 50 instructors (15-25 each), score ~ hs_gpa + C(method), 3 methods assigned
  to instructors, hs_gpa ~ N(3, 0.25) capped at 4.
- ``callcentre``: calls within reps within 10 centres (4-8 reps each, 5-30 calls each),
  call_CSAT ~ C(reason) + age, rep ids repeat across centres (nested, not crossed).
- ``callcentre_b``, ``callcentre_c``: the same design with centre variance 0 (boundary estimates: both
  REML and ML for ``_b``, ML only for ``_c``).
- ``rs30x20``: random intercept and slope, ``y ~ x + (1 + x | g)``, 30 groups x 20, x ~ N(0.5, 1),
  var(g) = 0.5, var(g:x) = 0.2, cov = 0.1.
- ``rs10x5_s<seed>``: 10 groups x 5, random slope variance 0 and small intercept variance (seeds 1-6:
  near-singular fits).
- ``rs_unbalanced``: 40 groups of sizes 2 to 41, ``y ~ x + z + (1 + x | g)``.

Near-boundary cases (small interior variances, where an optimiser can stop at a variance of 0 that is not
the optimum; the fast engine certifies every optimum, see ``simstudy/estimators/optimality.py``):

- ``cc_small_a``, ``cc_small_b``, ``cc_small_c``: the ``callcentre`` design with centre variance 0.3 and rep
  variance 0.003, 0.003, 0.05 (interior rep relative SDs of about 0.004 to 0.11), rep ids unique across
  centres (``centre * 100 + rep``).
- ``cc_study_r1``, ``cc_study_r3``: replicates 1 and 3 of the call-centre study (``studies/call_center.py``,
  seed 2) in the cell n_centres = 20, reps_per_centre = 10, rep_var = 0.1: 20 centres x 10 reps x 10 calls,
  ``call_CSAT ~ C(reason) + age`` (the cell where the optimiser on log theta reported var(rep) = 0 for a
  third of the replicates; replicate 3 is one of them).
- ``ri_near_a`` (12 unbalanced groups of sizes 1 to 12), ``ri_near_b`` (15 x 8): random intercept with a
  small group variance (interior relative SDs of about 0.01 to 0.13).
- ``rs_near_a`` to ``rs_near_d``: random slope designs whose optimum is at or next to a singular covariance
  matrix (slope variance 0, or intercept variance 0, or both small).

The ``slope`` column of the manifest names the random-slope covariate (empty: random intercept only).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def random_intercept(seed: int, sizes: list[int], var_u: float, treat: bool = False, z: bool = False):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(len(sizes)), sizes)
    n = g.size
    x = rng.normal(size=n)
    u = rng.normal(scale=np.sqrt(var_u), size=len(sizes))
    y = 1.0 + 0.5 * x + u[g] + rng.normal(size=n)
    df = {"g": g, "x": x}
    if treat:
        t = (np.arange(len(sizes)) % 2)[g].astype(float)
        y = y + 0.4 * t
        df["treat"] = t
    if z:
        zz = rng.uniform(size=n) * 2
        y = y - 0.3 * zz
        df["z"] = zz
    df["y"] = y
    return pd.DataFrame(df)


def teaching(seed: int = 11):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(15, 26, size=50)
    inst = np.repeat(np.arange(50), sizes)
    method = np.array(["a", "b", "c"])[np.arange(50) % 3]
    hs_gpa = np.minimum(rng.normal(3.0, 0.25, size=inst.size), 4.0)
    u = rng.normal(scale=2.0, size=50)
    effect = {"a": 0.0, "b": 2.0, "c": 4.0}
    score = (50 + 8 * hs_gpa + np.array([effect[m] for m in method])[inst] + u[inst]
             + rng.normal(scale=6.0, size=inst.size))
    return pd.DataFrame({"instructor": inst, "method": method[inst], "hs_gpa": hs_gpa, "score": score})


def callcentre(seed: int, var_c: float = 0.5, var_r: float = 0.8):
    rng = np.random.default_rng(seed)
    rows = []
    reasons = np.array(["billing", "complaint", "other", "tech"])
    for c in range(10):
        uc = rng.normal(scale=np.sqrt(var_c))
        for r in range(int(rng.integers(4, 9))):
            ur = rng.normal(scale=np.sqrt(var_r))
            m = int(rng.integers(5, 31))
            age = rng.uniform(18, 80, size=m)
            reason = reasons[rng.integers(0, 4, size=m)]
            eff = np.select([reason == "complaint", reason == "tech", reason == "other"], [-1.0, -0.5, 0.2], 0.0)
            y = 7 + 0.01 * age + eff + uc + ur + rng.normal(scale=1.2, size=m)
            rows.append(pd.DataFrame({"centre": c, "rep": r, "age": age, "reason": reason, "call_CSAT": y}))
    return pd.concat(rows, ignore_index=True)


def random_slope(seed: int, sizes: list[int], var: tuple[float, float, float], z: bool = False):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(len(sizes)), sizes)
    n = g.size
    x = rng.normal(loc=0.5, size=n)
    cov = np.array([[var[0], var[2]], [var[2], var[1]]])
    u = rng.multivariate_normal([0.0, 0.0], cov, size=len(sizes), method="eigh")
    y = 1.0 + 0.5 * x + u[g, 0] + u[g, 1] * x + rng.normal(size=n)
    df = {"g": g, "x": x}
    if z:
        zz = rng.uniform(size=n) * 2
        y = y - 0.3 * zz
        df["z"] = zz
    df["y"] = y
    return pd.DataFrame(df)


def datasets():
    """(name, frame, simstudy formula, lme4 formula, groups) for every reference data set."""
    out = []
    for seed in range(1, 11):
        var_u = 0.0 if seed <= 6 else 0.3
        out.append((f"ri10x5_s{seed}", random_intercept(seed, [5] * 10, var_u), "y ~ x", "y ~ x + (1|g)", "g"))
    out.append(("ri30x20", random_intercept(101, [20] * 30, 0.25, treat=True), "y ~ x + treat",
                "y ~ x + treat + (1|g)", "g"))
    out.append(("ri500x20", random_intercept(102, [20] * 500, 0.1), "y ~ x", "y ~ x + (1|g)", "g"))
    sizes = [1, 1, 1, 1, 1] + list(range(2, 37))
    out.append(("ri_unbalanced", random_intercept(103, sizes, 0.5, z=True), "y ~ x + z",
                "y ~ x + z + (1|g)", "g"))
    out.append(("teaching", teaching(), "score ~ hs_gpa + C(method)", "score ~ hs_gpa + method + (1|instructor)",
                "instructor"))
    out.append(("callcentre", callcentre(104), "call_CSAT ~ C(reason) + age",
                "call_CSAT ~ reason + age + (1|centre) + (1|centre:rep)", "centre/rep"))
    for name, seed in (("callcentre_b", 108), ("callcentre_c", 107)):
        out.append((name, callcentre(seed, var_c=0.0, var_r=0.3), "call_CSAT ~ C(reason) + age",
                    "call_CSAT ~ reason + age + (1|centre) + (1|centre:rep)", "centre/rep"))
    out = [o + ("",) for o in out]
    out.append(("rs30x20", random_slope(201, [20] * 30, (0.5, 0.2, 0.1)), "y ~ x", "y ~ x + (1 + x|g)", "g", "x"))
    for seed in range(1, 7):
        out.append((f"rs10x5_s{seed}", random_slope(210 + seed, [5] * 10, (0.1, 0.0, 0.0)), "y ~ x",
                    "y ~ x + (1 + x|g)", "g", "x"))
    out.append(("rs_unbalanced", random_slope(203, list(range(2, 42)), (0.4, 0.15, -0.05), z=True), "y ~ x + z",
                "y ~ x + z + (1 + x|g)", "g", "x"))
    out.extend(near_boundary())
    return out


CC_FORMULA = ("call_CSAT ~ C(reason) + age", "call_CSAT ~ reason + age + (1|centre) + (1|centre:rep)")


def call_center_replicate(rep: int) -> pd.DataFrame:
    """Replicate ``rep`` of the call-centre study (seed 2), cell 20 centres x 10 reps, rep_var 0.1."""
    from simstudy.dgp.call_center import CallCenter
    from simstudy.engine.rng import cell_key, replicate_rng

    cell = {"n_centres": 20, "reps_per_centre": 10, "rep_var": 0.1}
    d = CallCenter().generate(replicate_rng(2, cell_key(cell), rep), **cell)
    return pd.DataFrame({k: d[k] for k in ("centre", "rep", "reason", "age", "call_CSAT")})


def near_boundary():
    """The near-boundary data sets (module docstring), as ``datasets()`` rows."""
    out = []
    for name, seed, var_r in (("cc_small_a", 425, 0.003), ("cc_small_b", 422, 0.003), ("cc_small_c", 315, 0.05)):
        d = callcentre(seed, var_c=0.3, var_r=var_r)
        d["rep"] = d["centre"] * 100 + d["rep"]
        out.append((name, d, *CC_FORMULA, "centre/rep", ""))
    for r in (1, 3):
        out.append((f"cc_study_r{r}", call_center_replicate(r), *CC_FORMULA, "centre/rep", ""))
    ri = "y ~ x", "y ~ x + (1|g)", "g", ""
    out.append(("ri_near_a", random_intercept(664, [3, 1, 7, 2, 9, 4, 12, 2, 5, 6, 1, 8], 0.02), *ri))
    out.append(("ri_near_b", random_intercept(620, [8] * 15, 0.01), *ri))
    rs = "y ~ x", "y ~ x + (1 + x|g)", "g", "x"
    for name, seed, sizes, var in (("rs_near_a", 508, [5] * 10, (0.3, 0.0, 0.0)),
                                   ("rs_near_b", 528, [5] * 10, (0.3, 0.0, 0.0)),
                                   ("rs_near_c", 556, [4] * 12, (0.0, 0.2, 0.0)),
                                   ("rs_near_d", 527, [6] * 8, (0.01, 0.01, 0.0))):
        out.append((name, random_slope(seed, sizes, var), *rs))
    return out


def main() -> None:
    manifest = []
    for name, df, formula, rformula, groups, slope in datasets():
        df.to_csv(HERE / f"{name}.csv", index=False, float_format="%.10g")
        manifest.append({"name": name, "file": f"{name}.csv", "formula": formula, "rformula": rformula,
                         "groups": groups, "slope": slope})
    pd.DataFrame(manifest).to_csv(HERE / "manifest.csv", index=False)


if __name__ == "__main__":
    main()
