"""Markdown rendering: pipe tables with one header row, the caption as a pandoc ``Table:`` line, footnotes."""

from __future__ import annotations

import re

from simstudy.output.tables import to_markdown


def md_cells(line: str) -> list[str]:
    assert line.startswith("|") and line.endswith("|")
    return [c.strip() for c in re.split(r"(?<!\\)\|", line[1:-1])]


def test_markdown_pipe_tables_have_the_same_number_of_cells_per_row(tables):
    for table in tables:
        md = to_markdown(table)
        lines = [line for line in md.splitlines() if line.startswith("|")]
        widths = {len(md_cells(line)) for line in lines}
        assert widths == {table.n_columns}, md
        assert len(lines) == 2 + len(table.body)
        assert re.fullmatch(r"\|(:---\||---:\||:---:\|)+", lines[1])
        assert "\n\nTable: " + table.caption[:30] in md
        for mark, _ in table.footnotes:
            assert f"\n^{mark}^ " in md
    two = to_markdown(tables[3])
    assert md_cells(two.splitlines()[0])[2:4] == ["ols: Bias", "ols: Power"]  # grouped header, flattened


def test_markdown_holds_the_tables_content(tables, body_cells):
    for table in tables:
        md_rows = [md_cells(line) for line in to_markdown(table).splitlines()[2:] if line.startswith("|")]
        md_rows = [[re.sub(r"\^([a-z,]+)\^", lambda m: m.group(1).replace(",", ""), c).replace("\\", "")
                    for c in r] for r in md_rows if not r[0].startswith("*")]
        assert md_rows == body_cells(table)


def test_footnotes_follow_the_table(tables, reason):
    assert "^a^ " + reason in to_markdown(tables[0])
