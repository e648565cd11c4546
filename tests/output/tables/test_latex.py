"""LaTeX rendering: well-formed booktabs, escaped text, the options, the table's content, and (where pdflatex is
installed) a document that compiles."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from simstudy.output.tables import DASH, PaperTable, paper_table, tex_escape, to_latex


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


def test_latex_options_size_column_space_and_two_line_headings(summary):
    table = paper_table(summary, ["emp_se", "rel_error"], params="treat")
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


def test_latex_is_well_formed_booktabs_with_escaped_text(tables):
    for table in tables:
        check_latex(to_latex(table), table)
        check_latex(to_latex(table, floating=False), table, floating=False)
    two = tables[3]
    tex = to_latex(two)
    assert "\\multicolumn{2}{c}{LMM (REML)}" in tex
    assert "\\cmidrule(lr){3-4} \\cmidrule(lr){5-6} \\cmidrule(lr){7-8}" in tex
    assert "\\label{tab:two}" in tex and "\\addlinespace" in tex
    assert "g\\_1 \\& 50\\% \\{x\\} \\$y\\$ \\#2" in tex  # the footnote's reason, escaped
    assert re.search(r"& \$-\$0\.\d{3} \(0\.\d{3}\)", tex)  # a minus sign, not a hyphen
    assert tex_escape("a_b & 50% {x} $y$ #1 ~ ^ \\ \u2013") == \
        "a\\_b \\& 50\\% \\{x\\} \\$y\\$ \\#1 \\textasciitilde{} \\textasciicircum{} \\textbackslash{} --"


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_latex_compiles_with_pdflatex(tables, tmp_path: Path):
    body = "\n".join(to_latex(t) for t in tables)
    doc = "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n" + body + "\\end{document}\n"
    (tmp_path / "t.tex").write_text(doc, encoding="utf-8")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]


def test_latex_holds_the_tables_content(tables, body_cells):
    for table in tables:
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
        assert flat_tex == body_cells(table)


def test_not_estimable_spans_its_columns_with_the_reason_below(tables, reason):
    tex = to_latex(tables[0])
    assert "\\multicolumn{3}{c}{not estimable\\textsuperscript{a}}" in tex
    assert "\\textsuperscript{a}~" + tex_escape(reason) in tex
