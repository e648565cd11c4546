"""Paper tables: the model built from a summary, and its LaTeX, Markdown and HTML renderings."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from decimal import ROUND_HALF_EVEN, Decimal
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from simstudy.output.results import Results
from simstudy.output.tables import (
    DASH,
    MEASURE_LABELS,
    PaperTable,
    failures_table,
    paper_table,
    tex_escape,
    to_html,
    to_latex,
    to_markdown,
)
from simstudy.stats.measures import MEASURES

ESTIMATORS = ["ols", "lmm", "fe"]
PARAMS = ["treat", "var(g)"]
N_GROUPS = [6, 12]
ICC = [0.05, 0.2]
REASON = "not estimable: treat is collinear with the fixed effects of g_1 & 50% {x} $y$ #2"
LABELS = {"n_groups": "Number of clusters", "lmm": "LMM (REML)", "treat": "Treatment effect"}
VOID = {"br", "hr", "img", "meta", "link", "col", "input", "wbr"}


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


# --- choosing: measures, params, estimators, digits, levels ---------------------------------------------


def test_long_layout_values_are_the_summarys_rounded_values():
    ds = make_summary()
    table = paper_table(ds, ["bias", "coverage", "rmse"], params="treat", digits=3, sparse=False)
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
        assert row[3:] == [expected(ds, m, sel, 3) for m in ("bias", "coverage", "rmse")]
        checked += 1
    assert checked == 8
    lmm = next(r for r in rows if r[:3] == ["12", "0.2", "LMM (REML)"])
    assert lmm[3].startswith("0.000 (")  # -0.0001: no minus sign on zero


def test_digits_per_measure_and_without_mcse():
    ds = make_summary()
    table = paper_table(ds, ["bias", "coverage"], params="treat", estimators="ols", digits={"bias": 5}, mcse=False)
    rows = body_texts(table)
    sel = {"n_groups": 6, "icc": 0.05, "estimator": "ols", "param": "treat"}
    assert rows[0][3:] == [expected(ds, "bias", sel, 5, mcse=False), expected(ds, "coverage", sel, 3, mcse=False)]
    assert "(" not in "".join(c for r in rows for c in r[3:])
    assert "Monte Carlo SE" not in table.caption


def test_mcse_below_puts_each_mcse_in_a_row_under_its_value():
    ds = make_summary()
    table = paper_table(ds, ["bias", "coverage"], params="treat", mcse="below", counts=True, sparse=False)
    rows = list(table.body)
    sel = {"n_groups": 6, "icc": 0.05, "estimator": "lmm", "param": "treat"}
    at = next(i for i, r in enumerate(rows) if [c.text for c in r.cells[:3]] == ["6", "0.05", "LMM (REML)"])
    values, below = [c.text for c in rows[at].cells], rows[at + 1]
    assert values[3:5] == [expected(ds, "bias", sel, 3, mcse=False), expected(ds, "coverage", sel, 3, mcse=False)]
    assert below.mcse and not rows[at].mcse
    one = ds.sel(sel).isel(group_size=0)
    errors = [f"({rounded(float(one[f'{m}_mcse']), 3)})" for m in ("bias", "coverage")]
    assert [c.text for c in below.cells] == ["", "", "", *errors, ""]
    # a not estimable row has no MCSE row: 4 cells x (2 estimators x 2 rows + 1 row)
    assert len(rows) == 4 * 5
    assert "Monte Carlo SE in parentheses below" in table.caption
    compact = paper_table(ds, ["coverage"], params="treat", layout="by_estimator", mcse="below")
    assert [r.mcse for r in compact.body] == [False, True] * 4
    assert '<tr class="mcse">' in to_html(compact)


def test_latex_options_size_column_space_and_two_line_headings():
    table = paper_table(make_summary(), ["emp_se", "rel_error"], params="treat")
    tex = to_latex(table)
    assert "\\small\n\\setlength{\\tabcolsep}{4pt}" in tex
    assert "\\begin{tabular}[b]{@{}r@{}}Empirical\\\\SE\\end{tabular}" in tex
    assert "\\begin{tabular}[b]{@{}r@{}}Relative\\\\error (\\%)\\end{tabular}" in tex
    plain = to_latex(table, size=None, colsep=None, wrap=None)
    assert "\\small\n" not in plain and "tabcolsep" not in plain and "Empirical SE" in plain
    assert "\\footnotesize\n" in to_latex(table, size="footnotesize")
    for bad in ({"size": "huge!"}, {"colsep": "4"}):
        with pytest.raises(ValueError, match="must be"):
            to_latex(table, **bad)


def test_chosen_estimators_params_and_measures_are_honoured():
    ds = make_summary()
    table = paper_table(ds, ["coverage", "bias"], params=["treat"], estimators=["lmm", "ols"], sparse=False)
    assert [c.text for c in table.header[0]][-2:] == ["Coverage", "Bias"]
    assert [r[2] for r in body_texts(table)] == ["LMM (REML)", "ols"] * 4  # in the order asked for
    # default params: the study's featured ones (show = treat)
    assert "Treatment effect" in paper_table(ds).caption and "var(g)" not in paper_table(ds).caption
    # default measures: the paper set less those with no value
    assert [c.text for c in paper_table(ds).header[0]][3:] == [MEASURE_LABELS[m] for m in
                                                               ("bias", "emp_se", "model_se", "coverage", "rmse",
                                                                "power")]


def test_labels_defaults_and_factors_held_fixed_go_to_the_caption():
    ds = make_summary()
    table = paper_table(ds, "bias", params="treat")
    header = [c.text for c in table.header[0]]
    assert header[:3] == ["Number of clusters", "icc", "Estimator"]  # a label, and a default
    assert "group size" not in header and "group_size" not in header
    assert "Held fixed: group size = 5." in table.caption
    assert "Treatment effect" in table.caption
    relabelled = paper_table(ds, "bias", params="treat", labels={"icc": "ICC", "bias": "Mean error"})
    assert [c.text for c in relabelled.header[0]] == ["Number of clusters", "ICC", "Estimator", "Mean error"]
    # where= holding a factor at one level moves it to the caption
    held = paper_table(ds, "bias", params="treat", where={"icc": 0.2})
    assert "icc" not in [c.text for c in held.header[0]]
    assert "group size = 5, icc = 0.2" in held.caption
    assert len(held.body) == 2 * 3


def test_where_keeps_levels_in_the_order_given():
    ds = make_summary()
    table = paper_table(ds, "bias", params="treat", estimators="ols", where={"n_groups": [12, 6]}, sparse=False)
    assert [r[0] for r in body_texts(table)] == ["12", "12", "6", "6"]


def test_several_params_become_panels_and_unreported_params_are_left_out():
    ds = make_summary()
    table = paper_table(ds, ["bias", "coverage"], params=["treat", "var(g)"], sparse=False)
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
    with_rel_bias = paper_table(ds, ["rel_bias"], params="var(g)")
    assert ("a", "rel_bias undefined: true value is 0") in with_rel_bias.footnotes


def test_not_estimable_rows_say_so_with_the_reason_as_a_footnote():
    ds = make_summary()
    table = paper_table(ds, ["bias", "coverage", "rmse"], params="treat", sparse=False)
    fe = [row for row in table.body if row.cells[2].text == "fe"]
    assert len(fe) == 4
    for row in fe:
        cell = row.cells[3]
        assert (cell.text, cell.span, cell.marks) == ("not estimable", 3, ("a",))
    assert table.footnotes == (("a", REASON),)
    assert "\\textsuperscript{a}~" + tex_escape(REASON) in to_latex(table)
    assert "\\multicolumn{3}{c}{not estimable\\textsuperscript{a}}" in to_latex(table)
    assert "^a^ " + REASON in to_markdown(table)
    assert "<sup>a</sup> not estimable: treat is collinear with the fixed effects of g_1 &amp; 50%" in to_html(table)
    compact = paper_table(ds, ["coverage", "bias"], params="treat", layout="by_estimator")
    spans = [c for row in compact.body for c in row.cells if c.text == "not estimable"]
    assert len(spans) == 4 and all(c.span == 2 and c.marks == ("a",) for c in spans)


def test_by_estimator_layout_groups_the_measures_under_each_estimator():
    ds = make_summary()
    two = paper_table(ds, ["bias", "coverage"], params="treat", layout="by_estimator", sparse=False)
    top, bottom = two.header
    assert [(c.text, c.span) for c in top] == [("", 2), ("ols", 2), ("LMM (REML)", 2), ("fe", 2)]
    assert [c.text for c in bottom] == ["Number of clusters", "icc"] + ["Bias", "Coverage"] * 3
    rows = body_texts(two)
    assert len(rows) == 4  # one per cell
    sel = {"n_groups": 12, "icc": 0.05, "estimator": "lmm", "param": "treat"}
    assert rows[2][:2] == ["12", "0.05"]
    assert rows[2][4:6] == [expected(ds, "bias", sel, 3), expected(ds, "coverage", sel, 3)]
    one = paper_table(ds, "coverage", params="treat", layout="by_estimator")
    assert [(c.text, c.span) for c in one.header[0]] == [("", 2), ("Coverage", 3)]
    assert [c.text for c in one.header[1]][2:] == ["ols", "LMM (REML)", "fe"]
    # an estimator that reports none of the parameters gets no columns
    var = paper_table(ds, "bias", params="var(g)", layout="by_estimator")
    assert [c.text for c in var.header[1]] == ["Number of clusters", "icc", "LMM (REML)"]


def test_sparse_stub_leaves_repeated_levels_blank():
    ds = make_summary()
    rows = body_texts(paper_table(ds, "bias", params="treat"))
    assert [r[:3] for r in rows[:4]] == [["6", "0.05", "ols"], ["", "", "LMM (REML)"], ["", "", "fe"],
                                         ["", "0.2", "ols"]]
    gaps = [row.gap for row in paper_table(ds, "bias", params="treat").body]
    assert gaps == [i in (3, 6, 9) for i in range(12)]  # a little space above each new cell


def test_bad_arguments_are_one_clear_line():
    ds = make_summary()
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
            paper_table(ds, **kwargs)
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="summary dataset"):
        paper_table(ds.rename({"estimator": "method"}))


# --- renderers ----------------------------------------------------------------------------------------


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


def split_tex_row(line: str) -> list[str]:
    """Cells of a LaTeX row (``a & b \\\\``), split at ``&`` that is not escaped."""
    body = line.rstrip()
    assert body.endswith("\\\\")
    return re.split(r"(?<!\\)&", body[:-2])


def tex_width(cells: list[str]) -> int:
    width = 0
    for cell in cells:
        m = re.match(r"\s*\\multicolumn\{(\d+)\}", cell)
        width += int(m.group(1)) if m else 1
    return width


def balanced_braces(text: str) -> bool:
    depth = 0
    for token in re.findall(r"\\[{}]|[{}]", text):
        if token in ("\\{", "\\}"):
            continue
        depth += 1 if token == "{" else -1
        if depth < 0:
            return False
    return depth == 0


def check_latex(tex: str, table: PaperTable, floating: bool = True) -> None:
    envs: list[str] = []
    for kind, name in re.findall(r"\\(begin|end)\{(\w+)\}", tex):
        if kind == "begin":
            envs.append(name)
        else:
            assert envs and envs.pop() == name, f"\\end{{{name}}} does not close an open environment"
    assert envs == []
    assert balanced_braces(tex)
    spec = re.search(r"\\begin\{tabular\}\{([lrc]+)\}", tex).group(1)
    assert spec == "".join(table.align)
    assert tex.count("\\toprule") == tex.count("\\midrule") == tex.count("\\bottomrule") == 1
    assert tex.index("\\toprule") < tex.index("\\midrule") < tex.index("\\bottomrule")
    assert ("\\begin{table}" in tex) == floating and ("\\caption{" in tex) == floating
    rows = [line for line in tex.splitlines() if line.rstrip().endswith("\\\\")]
    assert len(rows) == len(table.header) + len(table.body)
    for line in rows:
        assert tex_width(split_tex_row(line)) == len(spec), line
    for a, b in re.findall(r"\\cmidrule\(lr\)\{(\d+)-(\d+)\}", tex):
        assert 1 <= int(a) <= int(b) <= len(spec)
    assert "\\num" not in tex and "siunitx" not in tex
    # nothing special left unescaped in the text: every &, %, #, _ is a column separator or escaped
    text = re.sub(r"\$-\$|\\[A-Za-z]+|\\[&%$#_{}]|\\\\|\{|\}", "", tex.split("\\midrule", 1)[1])
    assert not re.search(r"[%#_$]", text)


def test_latex_is_well_formed_booktabs_with_escaped_text():
    for table in tables():
        check_latex(to_latex(table), table)
        check_latex(to_latex(table, floating=False), table, floating=False)
    two = tables()[3]
    tex = to_latex(two)
    assert "\\multicolumn{2}{c}{LMM (REML)}" in tex
    assert "\\cmidrule(lr){3-4} \\cmidrule(lr){5-6} \\cmidrule(lr){7-8}" in tex
    assert "\\label{tab:two}" in tex and "\\addlinespace" in tex
    assert "g\\_1 \\& 50\\% \\{x\\} \\$y\\$ \\#2" in tex  # the footnote's reason, escaped
    assert re.search(r"& \$-\$0\.\d{3} \(0\.\d{3}\)", tex)  # a minus sign, not a hyphen
    assert tex_escape("a_b & 50% {x} $y$ #1 ~ ^ \\ \u2013") == \
        "a\\_b \\& 50\\% \\{x\\} \\$y\\$ \\#1 \\textasciitilde{} \\textasciicircum{} \\textbackslash{} --"


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_latex_compiles_with_pdflatex(tmp_path: Path):
    body = "\n".join(to_latex(t) for t in tables())
    doc = "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n" + body + "\\end{document}\n"
    (tmp_path / "t.tex").write_text(doc, encoding="utf-8")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]


def md_cells(line: str) -> list[str]:
    assert line.startswith("|") and line.endswith("|")
    return [c.strip() for c in re.split(r"(?<!\\)\|", line[1:-1])]


def test_markdown_pipe_tables_have_the_same_number_of_cells_per_row():
    for table in tables():
        md = to_markdown(table)
        lines = [line for line in md.splitlines() if line.startswith("|")]
        widths = {len(md_cells(line)) for line in lines}
        assert widths == {table.n_columns}, md
        assert len(lines) == 2 + len(table.body)
        assert re.fullmatch(r"\|(:---\||---:\||:---:\|)+", lines[1])
        assert "\n\nTable: " + table.caption[:30] in md
        for mark, _ in table.footnotes:
            assert f"\n^{mark}^ " in md
    two = to_markdown(tables()[3])
    assert md_cells(two.splitlines()[0])[2:4] == ["ols: Bias", "ols: Power"]  # grouped header, flattened


class TableParser(HTMLParser):
    """Tag balance, and the columns each ``tr`` spans (by section)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.widths: dict[str, list[int]] = {"thead": [], "tbody": [], "tfoot": []}
        self.part = ""
        self.cells: list[tuple[str, dict, str]] = []  # tag, attrs, text of each cell
        self.rows: list[list[str]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in self.widths:
            self.part = tag
        if tag == "tr":
            self.widths[self.part].append(0)
            self.rows.append([])
        if tag in ("td", "th"):
            self.widths[self.part][-1] += int(attrs.get("colspan", 1))
            self.cells.append((tag, attrs, ""))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()
        if tag in ("td", "th"):
            self.rows[-1].append(self.cells[-1][2])

    def handle_data(self, data):
        if self.cells and self.stack and self.stack[-1] in ("td", "th", "sup"):
            tag, attrs, text = self.cells[-1]
            self.cells[-1] = (tag, attrs, text + data)


def test_html_tables_parse_with_balanced_tags_and_matching_colspans():
    for table in tables():
        parser = TableParser()
        parser.feed(to_html(table, table_id=f"t-{table.stem}", css="measures"))
        parser.close()
        assert parser.errors == [] and parser.stack == []
        for part, widths in parser.widths.items():
            assert all(w == table.n_columns for w in widths), (part, widths)
        assert len(parser.widths["thead"]) == len(table.header)
        assert len(parser.widths["tbody"]) == len(table.body)
        assert len(parser.widths["tfoot"]) == len(table.footnotes)
        value = r"-?\d+\.\d{3}( \(\d+\.\d{3}\))?|\(\d+\.\d{3}\)"  # value (MCSE), value, (MCSE); not a level
        numbers = [(a, t) for tag, a, t in parser.cells if tag == "td" and re.fullmatch(value, t)]
        assert numbers and all("num" in a.get("class", "").split() for a, _ in numbers)
    html = to_html(tables()[3])
    assert '<th colspan="2" class="span group" scope="colgroup">LMM (REML)</th>' in html
    assert '<tr class="section gap"><th colspan="8" scope="rowgroup">var(g)</th></tr>' in html


def test_the_three_renderings_hold_the_same_content():
    for table in tables():
        expected_rows = []
        for row in table.body:
            if row.section:
                continue
            texts = []
            for c in row.cells:
                texts += [c.text + ("".join(c.marks) if c.marks else "")] + [""] * (c.span - 1)
            expected_rows.append(texts)
        md_rows = [md_cells(line) for line in to_markdown(table).splitlines()[2:] if line.startswith("|")]
        md_rows = [[re.sub(r"\^([a-z,]+)\^", lambda m: m.group(1).replace(",", ""), c).replace("\\", "")
                    for c in r] for r in md_rows if not r[0].startswith("*")]
        assert md_rows == expected_rows
        parser = TableParser()
        parser.feed(to_html(table))
        body = parser.rows[len(table.header):len(table.header) + len(table.body)]
        html_rows = []
        for cells, row in zip(body, table.body):
            if row.section:
                continue
            flat = []
            for text, c in zip(cells, row.cells):
                flat += [text.replace(",", "") if c.marks else text] + [""] * (c.span - 1)
            html_rows.append(flat)
        assert html_rows == expected_rows
        tex_rows = [split_tex_row(line) for line in to_latex(table).split("\\midrule", 1)[1].splitlines()
                    if line.rstrip().endswith("\\\\") and not line.startswith("\\multicolumn{" + str(table.n_columns))]
        flat_tex = []
        for cells in tex_rows:
            flat = []
            for cell in cells:
                m = re.match(r"\s*\\multicolumn\{(\d+)\}\{c\}\{(.*)\}\s*$", cell)
                text = m.group(2) if m else cell.strip()
                text = re.sub(r"\\textsuperscript\{([a-z,]+)\}", lambda g: g.group(1).replace(",", ""), text)
                text = text.replace("\\_", "_").replace("--", DASH).replace("$-$", "-")
                flat += [text] + [""] * ((int(m.group(1)) - 1) if m else 0)
            flat_tex.append(flat)
        assert flat_tex == expected_rows


def test_write_chooses_the_format_by_suffix(tmp_path: Path):
    table = tables()[0]
    assert table.write(tmp_path / "t.tex").read_text() == to_latex(table)
    assert table.write(tmp_path / "t.md").read_text() == to_markdown(table)
    assert table.write(tmp_path / "t.html").read_text() == to_html(table)
    with pytest.raises(ValueError, match="cannot tell the format"):
        table.write(tmp_path / "t.docx")
    assert table._repr_html_().startswith("<table>")


# --- failures -----------------------------------------------------------------------------------------


def test_failures_table_lists_exactly_the_cells_and_estimators_with_failures():
    ds = make_summary()
    assert failures_table(ds) is None  # no failure anywhere: no table
    known = {(6, 0.05, "lmm"): (0, 2, 0), (12, 0.2, "lmm"): (0, 0, 7), (12, 0.2, "fe"): (3, 0, 0),
             (6, 0.2, "ols"): (1, 1, 1)}
    for (g, icc, est), values in known.items():
        for key, value in zip(("n_fit_failed", "n_nonconverged", "n_boundary"), values):
            ds[key].loc[{"n_groups": g, "group_size": 5, "icc": icc, "estimator": est}] = value
    table = failures_table(ds)
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
    only_lmm = failures_table(ds, estimators="lmm")
    assert len(only_lmm.body) == 2


# --- Results ------------------------------------------------------------------------------------------


def test_results_paper_table_delegates_with_the_studys_labels(tmp_path: Path):
    ds = make_summary()
    ds.attrs.pop("labels")
    res = Results(tmp_path, ds, {"name": "synthetic", "labels": {"ols": "OLS"}})
    table = res.paper_table(["bias"], params="treat", labels={"fe": "Fixed effects"}, icc=0.05)
    assert isinstance(table, PaperTable)
    assert [r[1] for r in body_texts(table)] == ["OLS", "lmm", "Fixed effects"] * 2
    assert "icc = 0.05" in table.caption
    sel = {"n_groups": 6, "icc": 0.05, "estimator": "ols", "param": "treat"}
    assert body_texts(table)[0][2] == expected(ds, "bias", sel, 3)
