"""A summary with known contents, shared by the paper-table tests, and tables of every shape made from it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from simstudy.output.tables import PaperTable, paper_table
from simstudy.stats.measures import MEASURES

ESTIMATORS = ["ols", "lmm", "fe"]
PARAMS = ["treat", "var(g)"]
N_GROUPS = [6, 12]
ICC = [0.05, 0.2]
REASON = "not estimable: treat is collinear with the fixed effects of g_1 & 50% {x} $y$ #2"
LABELS = {"n_groups": "Number of clusters", "lmm": "LMM (REML)", "treat": "Treatment effect"}


def make_summary(seed: int = 1) -> xr.Dataset:
    """A summary with known contents: 2 x 2 cells (group_size held at 5), 3 estimators, 2 params.

    ``fe`` cannot estimate ``treat`` (REASON); only ``lmm`` reports ``var(g)``, which has no standard errors;
    ``lmm``'s bias of ``treat`` at (12, 0.2) rounds to zero from below.
    """
    rng = np.random.default_rng(seed)
    dims = ("n_groups", "group_size", "icc", "estimator", "param")
    shape = (2, 1, 2, 3, 2)
    data: dict[str, tuple] = {}
    for m in MEASURES:
        data[m] = (dims, rng.uniform(-1, 1, shape).round(6))
        data[f"{m}_mcse"] = (dims, rng.uniform(0.001, 0.1, shape).round(6))
    note = np.full(shape, "", dtype=object)
    n_valid = np.full(shape, 100)
    note[..., 2, 0] = REASON  # fe, treat
    n_valid[..., 2, 0] = 0
    note[..., [0, 2], 1] = "not reported by this estimator"
    note[..., 1, 1] = "no standard errors: estimate-only measures; rel_bias undefined: true value is 0"
    for m in MEASURES:
        data[m][1][..., 2, 0] = np.nan
        data[f"{m}_mcse"][1][..., 2, 0] = np.nan
        if m not in ("bias", "emp_se", "mse", "rmse"):  # var(g): estimate-only measures
            data[m][1][..., 1, 1] = np.nan
            data[f"{m}_mcse"][1][..., 1, 1] = np.nan
    data["bias"][1][1, 0, 1, 1, 0] = -0.0001
    data["note"] = (dims, note.astype(str))
    data["n_rep"] = (dims, np.full(shape, 100))
    data["n_valid"] = (dims, n_valid)
    counts = dims[:-1]
    for k in ("n_fit_failed", "n_nonconverged", "n_boundary"):
        data[k] = (counts, np.zeros(shape[:-1], dtype=int))
    ds = xr.Dataset(data, coords={"n_groups": N_GROUPS, "group_size": [5], "icc": ICC, "estimator": ESTIMATORS,
                                  "param": PARAMS})
    ds.attrs.update(level=0.95, null=0.0, show=json.dumps(["treat"]), labels=json.dumps(LABELS))
    return ds


@pytest.fixture
def summary() -> xr.Dataset:
    """A fresh copy of the known summary (tests may change it)."""
    return make_summary()


@pytest.fixture
def reason() -> str:
    """Why ``fe`` cannot estimate ``treat``: the summary's note, full of LaTeX's special characters."""
    return REASON


@pytest.fixture
def tables() -> list[PaperTable]:
    """Tables of every shape: long with counts, panels, by_estimator with one and two measures, footnotes."""
    ds = make_summary()
    return [
        paper_table(ds, ["bias", "coverage", "rmse"], params="treat", counts=True, stem="long"),
        paper_table(ds, ["bias", "coverage"], params=["treat", "var(g)"], stem="panels"),
        paper_table(ds, "coverage", params="treat", layout="by_estimator", stem="one"),
        paper_table(ds, ["bias", "power"], params=["treat", "var(g)"], layout="by_estimator", stem="two"),
        paper_table(ds, "bias", params=["treat", "var(g)"], where={"n_groups": 6, "icc": 0.2}, stem="no_factors"),
        paper_table(ds, ["bias", "emp_se"], params=["treat", "var(g)"], mcse="below", counts=True, stem="below"),
        paper_table(ds, ["coverage", "rmse"], params="treat", layout="by_estimator", mcse="below", stem="below2"),
    ]


@pytest.fixture
def body_cells():
    """``body_cells(table)``: the body's rows (panel headings left out) as the texts a renderer must show,
    one per column: a cell's text with its footnote marks, then blanks for the other columns it spans."""

    def cells(table: PaperTable) -> list[list[str]]:
        rows = []
        for row in table.body:
            if row.section:
                continue
            texts = []
            for c in row.cells:
                texts += [c.text + ("".join(c.marks) if c.marks else "")] + [""] * (c.span - 1)
            rows.append(texts)
        return rows

    return cells
