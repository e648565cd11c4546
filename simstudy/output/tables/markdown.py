"""Markdown (pipe table) rendering of a :class:`~simstudy.output.tables.model.PaperTable`."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simstudy.output.tables.model import Cell, PaperTable


def _md_escape(text: str) -> str:
    return re.sub(r"([\\|*^`])", r"\\\1", text.replace("\n", " "))


def _md_cell(cell: Cell) -> str:
    text = _md_escape(cell.text)
    if cell.marks:
        text += "^" + ",".join(cell.marks) + "^"
    return text


def to_markdown(table: PaperTable) -> str:
    """A pipe table (GitHub, pandoc), the caption as a pandoc ``Table:`` line, then the footnotes.

    Pipe tables have one header row: a column group's heading is joined to each of its columns' headings
    (``OLS: Bias``). A cell spanning columns keeps its text in the first and leaves the rest empty; a panel
    heading is an italic first cell; footnote marks are pandoc superscripts (``^a^``).

    Parameters
    ----------
    table : PaperTable
        The table.

    Returns
    -------
    str
        Markdown.
    """
    n = table.n_columns
    heads: list[list[str]] = [[] for _ in range(n)]
    for row in table.header:
        j = 0
        for c in row:
            if c.text:
                for k in range(j, j + c.span):
                    heads[k].append(_md_cell(c))
            j += c.span
    lines = ["| " + " | ".join(": ".join(h) for h in heads) + " |",
             "|" + "|".join({"l": ":---", "r": "---:", "c": ":---:"}[a] for a in table.align) + "|"]
    for row in table.body:
        if row.section:
            texts = [f"*{_md_escape(row.cells[0].text)}*"] + [""] * (n - 1)
        else:
            texts = []
            for c in row.cells:
                texts += [_md_cell(c)] + [""] * (c.span - 1)
        lines.append("| " + " | ".join(texts) + " |")
    out = "\n".join(lines) + f"\n\nTable: {_md_escape(table.caption)}\n"
    for mark, text in table.footnotes:
        out += f"\n^{mark}^ {_md_escape(text)}\n"
    return out
