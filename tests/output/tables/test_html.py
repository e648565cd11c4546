"""HTML rendering: balanced tags, colspans that add up, classes for numbers, groups, panels and MCSE rows."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from simstudy.output.tables import to_html

VOID = {"br", "hr", "img", "meta", "link", "col", "input", "wbr"}


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


def test_html_tables_parse_with_balanced_tags_and_matching_colspans(tables):
    for table in tables:
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
    html = to_html(tables[3])
    assert '<th colspan="2" class="span group" scope="colgroup">LMM (REML)</th>' in html
    assert '<tr class="section gap"><th colspan="8" scope="rowgroup">var(g)</th></tr>' in html


def test_html_holds_the_tables_content(tables, body_cells):
    for table in tables:
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
        assert html_rows == body_cells(table)


def test_footnotes_and_rows_of_mcse(tables):
    footnote = "<sup>a</sup> not estimable: treat is collinear with the fixed effects of g_1 &amp; 50%"
    assert footnote in to_html(tables[0])
    assert '<tr class="mcse">' in to_html(tables[6])
