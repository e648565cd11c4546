"""Make ``callcentre_pilot.csv``: a small call-centre pilot drawn once from :class:`simstudy.dgp.CallCenter`.

Run from the repository root: ``.venv/bin/python tests/data/pilot/make_callcentre.py``. 12 centres x 5
representatives x 8 calls (480 rows), the DGP's default variances (centre 0.2, rep 0.3, residual 1.5),
no treatment. Stored as a pilot would arrive: centre labels as strings (``C01`` ...), representatives
numbered within their centre (1..5, so fits need ``nested_ids="within"``), CSAT to 3 decimals, age to 1.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from simstudy.dgp import CallCenter

HERE = Path(__file__).resolve().parent
FACTORS = {"n_centres": 12, "reps_per_centre": 5, "calls_per_rep": 8}

data = CallCenter().generate(np.random.default_rng(20240611), **FACTORS)
frame = pd.DataFrame({
    "centre": [f"C{c + 1:02d}" for c in data["centre"]],
    "rep": data["rep"] % FACTORS["reps_per_centre"] + 1,
    "reason": data["reason"],
    "age": np.round(data["age"], 1),
    "call_CSAT": np.round(data["call_CSAT"], 3),
})
frame.to_csv(HERE / "callcentre_pilot.csv", index=False)
print(f"wrote {HERE / 'callcentre_pilot.csv'}: {len(frame)} rows")
