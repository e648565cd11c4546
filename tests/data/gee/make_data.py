"""Write the data sets of the GEE reference (run from this directory with the project's Python, then
``Rscript fit_gee.R``).

Two-arm cluster-randomised trials from :class:`simstudy.dgp.BinaryTrial` and :class:`simstudy.dgp.CountTrial`
(few clusters, equal and unequal sizes), some with a unit-level covariate ``x`` (rounded to 6 decimals so that
the CSV files hold it exactly) that enters the outcome model through an extra linear-predictor term for the
binary sets; ``cluster`` is written 1-based. ``manifest.csv`` lists each set with its family and formula.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simstudy.dgp import BinaryTrial, CountTrial

#: name: (family, seed, factors, with covariate x)
CASES = {
    "bin6": ("binomial", 1, dict(n_clusters=6, cluster_size=15, icc=0.1, odds_ratio=2.0), False),
    "bin8_unequal": ("binomial", 2, dict(n_clusters=8, cluster_size=20, size_spread=0.6, icc=0.05,
                                         odds_ratio=1.5, prevalence=0.2), False),
    "bin12_x": ("binomial", 3, dict(n_clusters=12, cluster_size=25, size_spread=0.4, icc=0.15,
                                    odds_ratio=0.6, prevalence=0.4), True),
    "bin20": ("binomial", 4, dict(n_clusters=20, cluster_size=10, icc=0.2, odds_ratio=1.0), False),
    "pois6": ("poisson", 5, dict(n_clusters=6, cluster_size=12, icc=0.1, rate=2.0, rate_ratio=0.7), False),
    "pois10_x": ("poisson", 6, dict(n_clusters=10, cluster_size=20, size_spread=0.5, icc=0.15, rate=0.8,
                                    rate_ratio=1.3), True),
}


def make(family: str, seed: int, factors: dict, covariate: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dgp = BinaryTrial() if family == "binomial" else CountTrial()
    d = dgp.generate(rng, **factors)
    frame = pd.DataFrame({"cluster": d["cluster"] + 1, "treat": d["treat"], "y": d["y"].astype(int)})
    if covariate:
        x = np.round(rng.normal(size=len(frame)), 6)
        # make x matter: redraw y with 0.5 x added on the linear predictor for the binary set
        if family == "binomial":
            shift = rng.random(len(frame)) < 1 / (1 + np.exp(-0.5 * x))
            frame["y"] = np.where(rng.random(len(frame)) < 0.3, shift.astype(int), frame["y"])
        frame["x"] = x
    return frame


if __name__ == "__main__":
    rows = []
    for name, (family, seed, factors, covariate) in CASES.items():
        make(family, seed, factors, covariate).to_csv(f"{name}.csv", index=False)
        rows.append({"name": name, "file": f"{name}.csv", "family": family,
                     "formula": "y ~ treat + x" if covariate else "y ~ treat"})
    pd.DataFrame(rows).to_csv("manifest.csv", index=False)
