"""Write the data sets of the lmerTest Satterthwaite reference (run from this directory, then fit_lmertest.R).

Random-intercept data ``y = 1 + 0.5 x + 0.3 treat + u_g + e`` with ``x`` varying within groups and ``treat``
constant within groups (alternating by group), ``var(e) = 1`` and ``var(u) = icc / (1 - icc)``; values
rounded to 6 decimals so that the CSV files hold them exactly. The seeds were picked so that the set has
interior fits, near-boundary interior fits (variance ratio 1.8e-5 and 2.5e-4) and boundary (singular) fits,
balanced and unbalanced.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: name: (seed, group sizes, icc)
UNBALANCED = [15, 9, 12, 10, 5, 9, 15, 15, 15, 10, 7, 10]
CASES = {
    **{f"ri6x10_s{s}": (s, [10] * 6, 0.01) for s in (1, 2, 3, 4, 8, 9, 566, 1457)},
    **{f"unbal12_s{s}": (s, UNBALANCED, 0.02) for s in (1, 2, 3, 5)},
    "ri16x8": (1, [8] * 16, 0.3),
    "unbal20": (7, list(range(2, 15)) + list(range(2, 9)), 0.2),
}


def make(seed: int, sizes: list[int], icc: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    G = len(sizes)
    g = np.repeat(np.arange(G), sizes)
    treat = (np.arange(G) % 2)[g].astype(float)
    x = np.round(rng.normal(size=g.size), 6)
    u = np.sqrt(icc / (1 - icc)) * rng.normal(size=G)
    y = np.round(1 + 0.5 * x + 0.3 * treat + u[g] + rng.normal(size=g.size), 6)
    return pd.DataFrame({"g": g + 1, "x": x, "treat": treat, "y": y})


if __name__ == "__main__":
    rows = []
    for name, (seed, sizes, icc) in CASES.items():
        make(seed, sizes, icc).to_csv(f"{name}.csv", index=False)
        rows.append({"name": name, "file": f"{name}.csv", "formula": "y ~ x + treat",
                     "rformula": "y ~ x + treat + (1|g)", "groups": "g"})
    pd.DataFrame(rows).to_csv("manifest.csv", index=False)
