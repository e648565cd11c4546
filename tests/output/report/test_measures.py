"""The report's tables of measures: value (MCSE) in the page, the MCSE under the value in the files, the other
measures folded away, LaTeX escaped, and the failures listed exactly."""

from __future__ import annotations

import re
from pathlib import Path

from simstudy.engine.store import read_netcdf
from simstudy.output.report import MORE_MEASURES, TABLE_DIGITS, TABLE_MEASURES, tex_escape
from simstudy.output.report.measures import measures_table
from simstudy.output.tables import MEASURE_LABELS

METHODS = ["ols", "ols_cluster", "lmm", "lmm_t"]


def failing(summary) -> dict[tuple[int, float, str], tuple[int, int, int]]:
    """(n_groups, icc, estimator) -> (fit failed, not converged, boundary), for those with any."""
    out = {}
    for g in summary.coords["n_groups"].values:
        for icc in summary.coords["icc"].values:
            for m in METHODS:
                one = summary.sel({"n_groups": g, "icc": icc, "estimator": m}).isel(group_size=0, treatment_effect=0)
                counts = tuple(int(one[k]) for k in ("n_fit_failed", "n_nonconverged", "n_boundary"))
                if any(counts):
                    out[(int(g), float(icc), m)] = counts
    return out


def fill_down(rows: list[list[str]], stub: int) -> list[list[str]]:
    """Undo the blank repeated levels of a sparse table's first ``stub`` columns."""
    out, above = [], [""] * stub
    for row in rows:
        row = [v or above[i] if i < stub else v for i, v in enumerate(row)]
        above = row[:stub]
        out.append(row)
    return out


def md_rows(markdown: str) -> list[list[str]]:
    lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in line[1:-1].split(" | ")] for line in lines]


def html_rows(page: str, table_id: str) -> list[list[str]]:
    """The text of each cell of each row of one table of the page."""
    table = re.search(rf'<table id="{table_id}".*?</table>', page, re.S).group(0)
    return [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row) for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table)]


def test_tables_hold_measures_with_mcse(tables_run: Path, tables_page: str):
    summary = read_netcdf(tables_run / "summary.nc")
    one = summary.sel({"param": "treat", "estimator": "lmm"}).isel(n_groups=1, icc=1, group_size=0, treatment_effect=0)
    d = TABLE_DIGITS
    value, mcse = f"{float(one['coverage']):.{d}f}", f"({float(one['coverage_mcse']):.{d}f})"
    column = 3 + TABLE_MEASURES.index("coverage")
    # the page: value (MCSE)
    header, *rows = html_rows(tables_page, "table-measures_treat")
    assert header == ["n groups", "icc", "Estimator", *(MEASURE_LABELS[m] for m in TABLE_MEASURES), "Valid/reps"]
    assert len(rows) == 16
    row = next(r for r in fill_down(rows, 2) if r[:3] == ["12", "0.2", "lmm"])
    assert row[column] == f"{value} {mcse}"
    # the files: the MCSE in the row under the value
    markdown = (tables_run / "tables" / "measures_treat.md").read_text()
    header, *rows = md_rows(markdown)
    assert header == ["n groups", "icc", "Estimator", *(MEASURE_LABELS[m] for m in TABLE_MEASURES), "Valid/reps"]
    assert "group size" not in header  # one level only: in the caption instead
    assert len(rows) == 2 * 16
    at = [r[:3] for r in fill_down(rows, 2)].index(["12", "0.2", "lmm"])
    assert rows[at][column] == value and rows[at + 1][column] == mcse and rows[at + 1][:3] == ["", "", ""]
    assert "Table: Performance of the estimators for treat" in markdown
    assert "Held fixed: group size = 5, treatment effect = 0.3." in markdown
    more = md_rows((tables_run / "tables" / "measures_treat_more.md").read_text())[0]
    assert more[3:] == [MEASURE_LABELS[m] for m in MORE_MEASURES]


def test_report_tables_fit_without_sideways_scrolling(tables_run: Path, tables_page: str):
    header, *rows = html_rows(tables_page, "table-measures_treat")
    assert len(header) <= 11  # 2 factors, the estimator, 6 measures, valid/reps: not 13 columns
    assert max(sum(len(c) for c in r) for r in rows) < 120  # characters of the widest row
    # the other measures are folded away under the main table
    folded = re.search(r"<details>\s*<summary>More measures: ([^<]*)</summary>\s*<div class=\"scroll\">\s*"
                       r'<table id="table-measures_treat_more"', tables_page)
    assert folded and folded.group(1) == ", ".join(MEASURE_LABELS[m] for m in MORE_MEASURES)


def test_latex_tables_are_escaped_booktabs(tables_run: Path):
    tex = (tables_run / "tables" / "measures_treat.tex").read_text()
    # n_groups, icc, estimator; 6 measures and valid/reps
    assert "\\begin{tabular}{lll" + "r" * 7 + "}" in tex
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "ols\\_cluster" in tex and "lmm\\_t" in tex
    assert tex.count(" \\\\") == 1 + 2 * 16  # header, and a row of values and one of MCSEs per cell and method
    for line in tex.splitlines():
        if line.endswith(" \\\\"):
            assert len(re.split(r"(?<!\\)&", line)) == 10
    assert tex.count("\\begin{table}") == tex.count("\\end{table}") == 1
    assert "\\label{tab:measures_treat}" in tex
    failures = (tables_run / "tables" / "failures.tex").read_text()
    assert "Boundary" in failures and "\\label{tab:failures}" in failures
    assert tex_escape("a_b & 50% {x} $y$ #1 ~ ^ \\") == \
        "a\\_b \\& 50\\% \\{x\\} \\$y\\$ \\#1 \\textasciitilde{} \\textasciicircum{} \\textbackslash{}"


def test_failures_table_lists_exactly_the_cells_with_failures(tables_run: Path, tables_page: str):
    summary = read_netcdf(tables_run / "summary.nc")
    markdown = (tables_run / "tables" / "failures.md").read_text()
    header, *rows = md_rows(markdown)
    assert header == ["n groups", "icc", "Estimator", "Replicates", "Fit failed", "Not converged", "Boundary"]
    listed = {(int(r[0]), float(r[1]), r[2]): tuple(int(v) for v in r[4:]) for r in rows}
    assert listed == failing(summary)
    assert "Only the cells and estimators with at least one such fit are listed" in markdown
    assert "Only the cells and estimators with at least one such fit are listed" in tables_page
    assert len(html_rows(tables_page, "table-failures")) == 1 + len(listed)  # the header, and a row each


def test_the_second_table_is_left_out_when_none_of_its_measures_has_a_value(tables_run: Path):
    summary = read_netcdf(tables_run / "summary.nc")
    for m in MORE_MEASURES:
        summary[m] = summary[m] * float("nan")
    assert measures_table(summary, "treat", "measures_treat_more", MORE_MEASURES) is None
    for m in TABLE_MEASURES:
        summary[m] = summary[m] * float("nan")
    main = measures_table(summary, "treat", "measures_treat")  # the main table is made all the same
    assert main is not None and main.stem == "measures_treat"
