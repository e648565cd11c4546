"""The table model: its checks, and writing or showing a table in the format its use asks for."""

from __future__ import annotations

from pathlib import Path

import pytest

from simstudy.output.tables import Cell, PaperTable, Row, to_html, to_latex, to_markdown


def test_write_chooses_the_format_by_suffix(tables, tmp_path: Path):
    table = tables[0]
    assert table.write(tmp_path / "t.tex").read_text() == to_latex(table)
    assert table.write(tmp_path / "t.md").read_text() == to_markdown(table)
    assert table.write(tmp_path / "t.html").read_text() == to_html(table)
    with pytest.raises(ValueError, match="cannot tell the format"):
        table.write(tmp_path / "t.docx")
    assert table._repr_html_().startswith("<table>")


def test_str_is_markdown_and_notebooks_show_html(tables):
    table = tables[0]
    assert str(table) == to_markdown(table) == table.to_markdown()
    assert table._repr_html_() == to_html(table)
    assert table.to_latex(floating=False) == to_latex(table, floating=False)


def test_rows_must_span_the_columns():
    head = ((Cell("a"), Cell("b", numeric=True)),)
    table = PaperTable("t", "A table.", head, (Row((Cell("x", span=2),)),), ("l", "r"))
    assert table.n_columns == 2
    with pytest.raises(ValueError, match="a body row spans 1 columns, the table has 2"):
        PaperTable("t", "A table.", head, (Row((Cell("x"),)),), ("l", "r"))
    with pytest.raises(ValueError, match="align must be"):
        PaperTable("t", "A table.", head, (), ("l", "x"))
