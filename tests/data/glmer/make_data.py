"""Write the glmer reference data sets (*.csv) and manifest.csv.

Run in this directory: ``python make_data.py`` (then ``Rscript fit_glmer.R``). Columns: ``g`` (cluster),
``x`` (varies within clusters), ``treat`` (cluster level, 0/1), ``y`` (0/1, successes or counts) and, for
successes out of trials, ``n`` (trials).
"""

from __future__ import annotations

import csv

import numpy as np


def design(rng, sizes):
    G = len(sizes)
    g = np.repeat(np.arange(G), sizes)
    x = np.round(rng.normal(size=g.size), 6)
    treat = (np.arange(G) % 2)[g]
    return g, x, treat


def binary(seed, sizes, b0=-0.5, sd=0.8, trials=None):
    rng = np.random.default_rng(seed)
    g, x, treat = design(rng, sizes)
    eta = b0 + 0.5 * x + 0.4 * treat + rng.normal(scale=sd, size=len(sizes))[g]
    pr = 1.0 / (1.0 + np.exp(-eta))
    if trials is None:
        return {"g": g, "x": x, "treat": treat, "y": rng.binomial(1, pr)}
    n = rng.integers(trials[0], trials[1] + 1, size=g.size)
    return {"g": g, "x": x, "treat": treat, "y": rng.binomial(n, pr), "n": n}


def counts(seed, sizes, b0=0.5, sd=0.6):
    rng = np.random.default_rng(seed)
    g, x, treat = design(rng, sizes)
    eta = b0 + 0.5 * x + 0.4 * treat + rng.normal(scale=sd, size=len(sizes))[g]
    return {"g": g, "x": x, "treat": treat, "y": rng.poisson(np.exp(eta))}


def unbalanced(seed, G, lo, hi):
    return list(np.random.default_rng(seed).integers(lo, hi + 1, size=G))


SETS = [
    # name, family, kind (binary / trials / counts), data, what it tests
    ("bin_bal", "binomial", "binary", binary(1, [20] * 30), "balanced 30 x 20"),
    ("bin_unbal", "binomial", "binary", binary(2, unbalanced(2, 25, 3, 40), sd=1.0), "unbalanced, 25 clusters of 3-40"),
    ("bin_small", "binomial", "binary", binary(3, [10] * 6, sd=1.0), "6 clusters x 10"),
    ("bin_small_b", "binomial", "binary", binary(17, [10] * 6, sd=0.1), "6 clusters x 10, boundary"),
    ("bin_rare", "binomial", "binary", binary(4, [25] * 40, b0=-4.0, sd=1.0), "rare events: many all-0 clusters"),
    ("bin_bound", "binomial", "binary", binary(6, [15] * 20, sd=0.0), "var 0 in the DGP: boundary"),
    ("bin_extreme", "binomial", "binary", binary(6, [8] * 20, b0=0.0, sd=3.0), "large var: all-0 and all-1 clusters"),
    ("bin_sep", "binomial", "binary", None, "treated clusters all 0: quasi-complete separation"),
    ("tri_bal", "binomial", "trials", binary(7, [5] * 20, trials=(1, 12)), "successes of 1-12 trials, 20 x 5"),
    ("tri_unbal", "binomial", "trials", binary(8, unbalanced(8, 15, 1, 8), sd=1.2, trials=(1, 6)),
     "successes of 1-6 trials, 15 clusters of 1-8 rows"),
    ("tri_small", "binomial", "trials", binary(9, [4] * 6, trials=(2, 10)), "successes, 6 clusters x 4"),
    ("poi_bal", "poisson", "counts", counts(10, [10] * 30), "balanced 30 x 10"),
    ("poi_unbal", "poisson", "counts", counts(11, unbalanced(11, 25, 2, 30), sd=0.8), "unbalanced, 25 of 2-30"),
    ("poi_small", "poisson", "counts", counts(12, [8] * 6), "6 clusters x 8"),
    ("poi_rare", "poisson", "counts", counts(13, [12] * 30, b0=-2.5, sd=1.0), "rare counts: many all-0 clusters"),
    ("poi_bound", "poisson", "counts", counts(5, [10] * 20, sd=0.0), "var 0 in the DGP: boundary"),
    ("poi_near", "poisson", "counts", counts(14, [10] * 20, sd=0.0), "var 0 in the DGP, estimate near 0 (0.007)"),
    ("poi_sep", "poisson", "counts", None, "treated clusters all 0: separation"),
]


def separated(kind, seed):
    if kind == "binary":
        d = binary(seed, [10] * 12, b0=-1.0)
    else:
        d = counts(seed, [10] * 12, b0=-0.5)
    d["y"] = np.where(d["treat"] == 1, 0, d["y"])
    return d


def main() -> None:
    with open("manifest.csv", "w", newline="") as fh:
        man = csv.writer(fh)
        man.writerow(["name", "file", "family", "kind", "description"])
        for name, family, kind, data, what in SETS:
            if data is None:
                data = separated(kind, 15 if kind == "binary" else 16)
            cols = list(data)
            with open(f"{name}.csv", "w", newline="") as out:
                w = csv.writer(out)
                w.writerow(cols)
                for row in zip(*(data[c] for c in cols)):
                    w.writerow([repr(float(v)) if isinstance(v, (float, np.floating)) else int(v) for v in row])
            man.writerow([name, f"{name}.csv", family, kind, what])


if __name__ == "__main__":
    main()
