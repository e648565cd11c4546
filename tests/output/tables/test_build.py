"""Building paper tables from a summary: the values, the two layouts, panels, footnotes, the caption, the
choices and their errors; the failures table; and Results.paper_table."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest
import xarray as xr

from simstudy.output.results import Results
from simstudy.output.tables import DASH, MEASURE_LABELS, PaperTable, failures_table, paper_table


def rounded(value: float, digits: int) -> str:
    """The text a value should have, computed apart from the module: exact decimal rounding, no '-0'."""
    q = Decimal(value).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_EVEN)
    if q == 0:
        q = abs(q)
    return f"{q:f}"


def expected(ds: xr.Dataset, measure: str, sel: dict, digits: int, mcse: bool = True) -> str:
    s = ds.sel(sel).isel(group_size=0)
    text = rounded(float(s[measure]), digits)
    return text + f" ({rounded(float(s[f'{measure}_mcse']), digits)})" if mcse else text


def body_texts(table: PaperTable) -> list[list[str]]:
    return [[c.text for c in row.cells] for row in table.body if not row.section]


def test_long_layout_values_are_the_summarys_rounded_values(summary):
    table = paper_table(summary, ["bias", "coverage", "rmse"], params="treat", digits=3, sparse=False)
    assert [c.text for c in table.header[-1]] == ["Number of clusters", "icc", "Estimator", "Bias", "Coverage",
                                                   "RMSE"]
    rows = body_texts(table)
    assert len(rows) == 2 * 2 * 3  # cells x estimators (fe is shown, as not estimable)
    by_label = {"ols": "ols", "LMM (REML)": "lmm", "fe": "fe"}
    checked = 0
    for row in rows:
        sel = {"n_groups": int(row[0]), "icc": float(row[1]), "estimator": by_label[row[2]], "param": "treat"}
        if sel["estimator"] == "fe":
            assert row[3:] == ["not estimable"]
            continue
        assert row[3:] == [expected(summary, m, sel, 3) for m in ("bias", "coverage", "rmse")]
        checked += 1
    assert checked == 8
    lmm = next(r for r in rows if r[:3] == ["12", "0.2", "LMM (REML)"])
    assert lmm[3].startswith("0.000 (")  # -0.0001: no minus sign on zero


def test_digits_per_measure_and_without_mcse(summary):
    table = paper_table(summary, ["bias", "coverage"], params="treat", estimators="ols", digits={"bias": 5}, mcse=False)
    rows = body_texts(table)
    sel = {"n_groups": 6, "icc": 0.05, "estimator": "ols", "param": "treat"}
    assert rows[0][3:] == [expected(summary, "bias", sel, 5, mcse=False),
                           expected(summary, "coverage", sel, 3, mcse=False)]
    assert "(" not in "".join(c for r in rows for c in r[3:])
    assert "Monte Carlo SE" not in table.caption


def test_mcse_below_puts_each_mcse_in_a_row_under_its_value(summary):
    table = paper_table(summary, ["bias", "coverage"], params="treat", mcse="below", counts=True, sparse=False)
    rows = list(table.body)
    sel = {"n_groups": 6, "icc": 0.05, "estimator": "lmm", "param": "treat"}
    at = next(i for i, r in enumerate(rows) if [c.text for c in r.cells[:3]] == ["6", "0.05", "LMM (REML)"])
    values, below = [c.text for c in rows[at].cells], rows[at + 1]
    assert values[3:5] == [expected(summary, "bias", sel, 3, mcse=False),
                           expected(summary, "coverage", sel, 3, mcse=False)]
    assert below.mcse and not rows[at].mcse
    one = summary.sel(sel).isel(group_size=0)
    errors = [f"({rounded(float(one[f'{m}_mcse']), 3)})" for m in ("bias", "coverage")]
    assert [c.text for c in below.cells] == ["", "", "", *errors, ""]
    # a not estimable row has no MCSE row: 4 cells x (2 estimators x 2 rows + 1 row)
    assert len(rows) == 4 * 5
    assert "Monte Carlo SE in parentheses below" in table.caption
    compact = paper_table(summary, ["coverage"], params="treat", layout="by_estimator", mcse="below")
    assert [r.mcse for r in compact.body] == [False, True] * 4


def test_chosen_estimators_params_and_measures_are_honoured(summary):
    table = paper_table(summary, ["coverage", "bias"], params=["treat"], estimators=["lmm", "ols"], sparse=False)
    assert [c.text for c in table.header[0]][-2:] == ["Coverage", "Bias"]
    assert [r[2] for r in body_texts(table)] == ["LMM (REML)", "ols"] * 4  # in the order asked for
    # default params: the study's featured ones (show = treat)
    assert "Treatment effect" in paper_table(summary).caption and "var(g)" not in paper_table(summary).caption
    # default measures: the paper set less those with no value
    assert [c.text for c in paper_table(summary).header[0]][3:] == [MEASURE_LABELS[m] for m in
                                                               ("bias", "emp_se", "model_se", "coverage", "rmse",
                                                                "power")]


def test_labels_defaults_and_factors_held_fixed_go_to_the_caption(summary):
    table = paper_table(summary, "bias", params="treat")
    header = [c.text for c in table.header[0]]
    assert header[:3] == ["Number of clusters", "icc", "Estimator"]  # a label, and a default
    assert "group size" not in header and "group_size" not in header
    assert "Held fixed: group size = 5." in table.caption
    assert "Treatment effect" in table.caption
    relabelled = paper_table(summary, "bias", params="treat", labels={"icc": "ICC", "bias": "Mean error"})
    assert [c.text for c in relabelled.header[0]] == ["Number of clusters", "ICC", "Estimator", "Mean error"]
    # where= holding a factor at one level moves it to the caption
    held = paper_table(summary, "bias", params="treat", where={"icc": 0.2})
    assert "icc" not in [c.text for c in held.header[0]]
    assert "group size = 5, icc = 0.2" in held.caption
    assert len(held.body) == 2 * 3


def test_where_keeps_levels_in_the_order_given(summary):
    table = paper_table(summary, "bias", params="treat", estimators="ols", where={"n_groups": [12, 6]}, sparse=False)
    assert [r[0] for r in body_texts(table)] == ["12", "12", "6", "6"]


def test_several_params_become_panels_and_unreported_params_are_left_out(summary):
    table = paper_table(summary, ["bias", "coverage"], params=["treat", "var(g)"], sparse=False)
    sections = [row.cells[0].text for row in table.body if row.section]
    assert sections == ["Treatment effect", "var(g)"]
    start = next(i for i, row in enumerate(table.body) if row.section and row.cells[0].text == "var(g)")
    var_rows = [[c.text for c in row.cells] for row in table.body[start + 1:]]
    assert {r[2] for r in var_rows} == {"LMM (REML)"}  # ols and fe do not report var(g): no rows
    assert len(var_rows) == 4
    assert all(r[4] == DASH for r in var_rows)  # no coverage without standard errors ...
    mark = dict((t, m) for m, t in table.footnotes)["no standard errors: estimate-only measures"]
    cov = [row.cells[4] for row in table.body[start + 1:]]
    assert all(c.marks == (mark,) for c in cov)  # ... and why, as a footnote
    assert all("rel_bias undefined" not in t for _, t in table.footnotes)  # rel_bias is not in this table
    with_rel_bias = paper_table(summary, ["rel_bias"], params="var(g)")
    assert ("a", "rel_bias undefined: true value is 0") in with_rel_bias.footnotes


def test_not_estimable_rows_say_so_with_the_reason_as_a_footnote(summary, reason):
    table = paper_table(summary, ["bias", "coverage", "rmse"], params="treat", sparse=False)
    fe = [row for row in table.body if row.cells[2].text == "fe"]
    assert len(fe) == 4
    for row in fe:
        cell = row.cells[3]
        assert (cell.text, cell.span, cell.marks) == ("not estimable", 3, ("a",))
    assert table.footnotes == (("a", reason),)
    compact = paper_table(summary, ["coverage", "bias"], params="treat", layout="by_estimator")
    spans = [c for row in compact.body for c in row.cells if c.text == "not estimable"]
    assert len(spans) == 4 and all(c.span == 2 and c.marks == ("a",) for c in spans)


def test_by_estimator_layout_groups_the_measures_under_each_estimator(summary):
    two = paper_table(summary, ["bias", "coverage"], params="treat", layout="by_estimator", sparse=False)
    top, bottom = two.header
    assert [(c.text, c.span) for c in top] == [("", 2), ("ols", 2), ("LMM (REML)", 2), ("fe", 2)]
    assert [c.text for c in bottom] == ["Number of clusters", "icc"] + ["Bias", "Coverage"] * 3
    rows = body_texts(two)
    assert len(rows) == 4  # one per cell
    sel = {"n_groups": 12, "icc": 0.05, "estimator": "lmm", "param": "treat"}
    assert rows[2][:2] == ["12", "0.05"]
    assert rows[2][4:6] == [expected(summary, "bias", sel, 3), expected(summary, "coverage", sel, 3)]
    one = paper_table(summary, "coverage", params="treat", layout="by_estimator")
    assert [(c.text, c.span) for c in one.header[0]] == [("", 2), ("Coverage", 3)]
    assert [c.text for c in one.header[1]][2:] == ["ols", "LMM (REML)", "fe"]
    # an estimator that reports none of the parameters gets no columns
    var = paper_table(summary, "bias", params="var(g)", layout="by_estimator")
    assert [c.text for c in var.header[1]] == ["Number of clusters", "icc", "LMM (REML)"]


def test_sparse_stub_leaves_repeated_levels_blank(summary):
    rows = body_texts(paper_table(summary, "bias", params="treat"))
    assert [r[:3] for r in rows[:4]] == [["6", "0.05", "ols"], ["", "", "LMM (REML)"], ["", "", "fe"],
                                         ["", "0.2", "ols"]]
    gaps = [row.gap for row in paper_table(summary, "bias", params="treat").body]
    assert gaps == [i in (3, 6, 9) for i in range(12)]  # a little space above each new cell


def test_bad_arguments_are_one_clear_line(summary):
    cases = [
        ({"measures": "bogus"}, "unknown measure 'bogus'"),
        ({"params": "nope"}, "unknown param 'nope'"),
        ({"estimators": ["ols", "gee"]}, "unknown estimator 'gee'"),
        ({"where": {"size": 3}}, "unknown factor 'size'"),
        ({"where": {"icc": 0.3}}, "icc=0.3 is not a level of icc"),
        ({"layout": "wide"}, "unknown layout 'wide'"),
        ({"digits": -1}, "digits must be a whole number"),
        ({"layout": "by_estimator", "counts": True}, "counts=True needs layout='long'"),
        ({"mcse": "above"}, "mcse must be True, False, 'inline' or 'below'"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)) as info:
            paper_table(summary, **kwargs)
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="summary dataset"):
        paper_table(summary.rename({"estimator": "method"}))


def test_failures_table_lists_exactly_the_cells_and_estimators_with_failures(summary):
    assert failures_table(summary) is None  # no failure anywhere: no table
    known = {(6, 0.05, "lmm"): (0, 2, 0), (12, 0.2, "lmm"): (0, 0, 7), (12, 0.2, "fe"): (3, 0, 0),
             (6, 0.2, "ols"): (1, 1, 1)}
    for (g, icc, est), values in known.items():
        for key, value in zip(("n_fit_failed", "n_nonconverged", "n_boundary"), values):
            summary[key].loc[{"n_groups": g, "group_size": 5, "icc": icc, "estimator": est}] = value
    table = failures_table(summary)
    assert [c.text for c in table.header[0]] == ["Number of clusters", "icc", "Estimator", "Replicates",
                                                  "Fit failed", "Not converged", "Boundary"]
    by_label = {"ols": "ols", "LMM (REML)": "lmm", "fe": "fe"}
    listed = {(int(r[0]), float(r[1]), by_label[r[2]]): tuple(int(v) for v in r[4:]) for r in body_texts(table)}
    assert listed == known
    assert all(r[3] == "100" for r in body_texts(table))
    assert "Only the cells and estimators with at least one such fit are listed" in table.caption
    assert "Held fixed: group size = 5." in table.caption
    assert [r[:3] for r in body_texts(table)] == [["6", "0.05", "LMM (REML)"], ["6", "0.2", "ols"],
                                                  ["12", "0.2", "LMM (REML)"], ["12", "0.2", "fe"]]
    only_lmm = failures_table(summary, estimators="lmm")
    assert len(only_lmm.body) == 2


def test_results_paper_table_delegates_with_the_studys_labels(summary, tmp_path: Path):
    summary.attrs.pop("labels")
    res = Results(tmp_path, summary, {"name": "synthetic", "labels": {"ols": "OLS"}})
    table = res.paper_table(["bias"], params="treat", labels={"fe": "Fixed effects"}, icc=0.05)
    assert isinstance(table, PaperTable)
    assert [r[1] for r in body_texts(table)] == ["OLS", "lmm", "Fixed effects"] * 2
    assert "icc = 0.05" in table.caption
    sel = {"n_groups": 6, "icc": 0.05, "estimator": "ols", "param": "treat"}
    assert body_texts(table)[0][2] == expected(summary, "bias", sel, 3)
