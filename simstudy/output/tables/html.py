"""HTML rendering of a :class:`~simstudy.output.tables.model.PaperTable`."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simstudy.output.tables.model import Cell, PaperTable


def _html_cell(tag: str, cell: Cell, extra: str = "") -> str:
    e = html.escape
    classes = [c for c in ("num" if cell.numeric and cell.span == 1 else "", "span" if cell.span > 1 else "",
                           "center" if cell.center else "", extra) if c]
    attrs = f' colspan="{cell.span}"' if cell.span > 1 else ""
    attrs += f' class="{" ".join(classes)}"' if classes else ""
    if tag == "th" and cell.text:
        attrs += ' scope="colgroup"' if cell.span > 1 else ' scope="col"'
    sup = f"<sup>{e(','.join(cell.marks))}</sup>" if cell.marks else ""
    return f"<{tag}{attrs}>{e(cell.text)}{sup}</{tag}>"


def to_html(table: PaperTable, *, table_id: str | None = None, css: str = "") -> str:
    """An HTML ``<table>``: caption, ``<thead>`` (column groups with ``colspan``), ``<tbody>``, footnotes in
    ``<tfoot>``.

    Parameters
    ----------
    table : PaperTable
        The table.
    table_id : str, optional
        The table's ``id``.
    css : str
        Classes for the ``<table>`` element.

    Returns
    -------
    str
        HTML. Numeric cells carry class ``num`` (to right-align them), cells spanning columns ``span`` (and
        ``group`` in the header), centred ones ``center``,
        panel headings are ``<tr class="section">``, the first row of a block ``<tr class="gap">`` and a
        row of MCSEs ``<tr class="mcse">``.
    """
    e = html.escape
    n = table.n_columns
    attrs = (f' id="{e(table_id)}"' if table_id else "") + (f' class="{e(css)}"' if css else "")
    out = [f"<table{attrs}>", f"<caption>{e(table.caption)}</caption>", "<thead>"]
    for i, row in enumerate(table.header):
        group = "group" if i < len(table.header) - 1 else ""
        out.append("<tr>" + "".join(_html_cell("th", c, group if c.span > 1 else "") for c in row) + "</tr>")
    out += ["</thead>", "<tbody>"]
    for row in table.body:
        cls = " ".join(c for c in ("section" if row.section else "", "gap" if row.gap else "",
                                   "mcse" if row.mcse else "") if c)
        tr = f'<tr class="{cls}">' if cls else "<tr>"
        if row.section:
            out.append(f'{tr}<th colspan="{n}" scope="rowgroup">{e(row.cells[0].text)}</th></tr>')
        else:
            out.append(tr + "".join(_html_cell("td", c) for c in row.cells) + "</tr>")
    out.append("</tbody>")
    if table.footnotes:
        out.append('<tfoot class="notes">')
        out += [f'<tr><td colspan="{n}"><sup>{e(m)}</sup> {e(t)}</td></tr>' for m, t in table.footnotes]
        out.append("</tfoot>")
    out.append("</table>")
    return "\n".join(out)
