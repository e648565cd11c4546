"""Text tables of a summary."""

from __future__ import annotations

import numpy as np
import xarray as xr

from simstudy.output.display import cell, format_compact, format_wide
from simstudy.stats.measures import summarize


def summary():
    rng = np.random.default_rng(0)
    est = rng.normal(size=(2, 2, 50))
    ds = xr.Dataset({"estimate": (("n", "estimator", "rep"), est), "se": (("n", "estimator", "rep"), np.ones_like(est)),
                     "true": 0.0}, coords={"n": [10, 20], "estimator": ["ols", "lmm"]})
    return summarize(ds, ref="ols")


def test_cell_format():
    assert cell(0.123456, 0.0012) == "0.1235 (0.0012)"
    assert cell(np.nan, 0.1) == "-"


def test_wide_has_a_block_per_cell_and_a_column_per_method():
    text = format_wide(summary())
    blocks = text.split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == ["n=10", "n=20"]
    header = blocks[0].splitlines()[1].split()
    assert header == ["measure", "ols", "lmm"]
    assert any(line.startswith("rel_precision") for line in blocks[0].splitlines())


def test_compact_has_a_row_per_cell_and_method():
    s = summary()
    lines = format_compact(s).splitlines()
    assert len(lines) == 2 + 4
    bias = float(s["bias"].sel({"n": 10, "estimator": "ols"}))
    assert f"{bias:.4f}" in lines[2]


def test_not_estimable_rows_are_shown_with_their_reason():
    s = summary()
    note = s["note"].values.astype(object)
    note[0, 1] = "not estimable: x is collinear with the fixed effects of g"
    s["note"] = (s["note"].dims, note.astype(str))
    s["n_valid"][0, 1] = 0
    s["bias"][0, 1] = np.nan
    text = format_compact(s)
    lines = text.splitlines()
    assert any(line.endswith("[1]") and "lmm" in line for line in lines)
    assert lines[-1] == "[1] not estimable: x is collinear with the fixed effects of g"


def test_parameters_an_estimator_does_not_report_are_left_out():
    s = summary()
    note = s["note"].values.astype(object)
    note[0, 1] = "not reported by this estimator"
    s["note"] = (s["note"].dims, note.astype(str))
    assert len(format_compact(s).splitlines()) == 2 + 3
