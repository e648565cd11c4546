"""The table model: cells, rows and a :class:`PaperTable` that renders as LaTeX, Markdown or HTML."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from simstudy.output.tables.html import to_html
from simstudy.output.tables.latex import to_latex
from simstudy.output.tables.markdown import to_markdown


@dataclass(frozen=True)
class Cell:
    """One entry of a header or body row.

    Attributes
    ----------
    text : str
        Plain text (renderers escape it).
    span : int
        Columns it spans (a column group in a header, "not estimable" across an estimator's measures).
    numeric : bool
        A number: right-aligned.
    marks : tuple of str
        Footnote marks (``"a"``, ``"b"``, ...) set as superscripts after the text.
    center : bool
        Centre it (a text such as "not estimable" among numbers); a column group's heading is always centred.
    """

    text: str
    span: int = 1
    numeric: bool = False
    marks: tuple[str, ...] = ()
    center: bool = False


@dataclass(frozen=True)
class Row:
    """A body row: its cells, or a panel heading (``section``: one cell across the table).

    ``gap`` asks for a little space above the row (a new block, e.g. the next design cell); ``mcse`` marks
    the row of Monte Carlo SEs under a row of values (``mcse="below"``).
    """

    cells: tuple[Cell, ...]
    section: bool = False
    gap: bool = False
    mcse: bool = False


@dataclass(frozen=True)
class PaperTable:
    """A table ready to render as LaTeX, Markdown or HTML.

    Attributes
    ----------
    stem : str
        File stem and LaTeX label (``tab:<stem>``).
    caption : str
        The caption, plain text.
    header : tuple of tuple of Cell
        Header rows, top first; a cell spanning several columns is a column group.
    body : tuple of Row
        Body rows.
    align : tuple of str
        ``"l"`` or ``"r"`` per column.
    footnotes : tuple of (str, str)
        ``(mark, text)`` pairs, e.g. ``("a", "not estimable: ...")``.
    """

    stem: str
    caption: str
    header: tuple[tuple[Cell, ...], ...]
    body: tuple[Row, ...]
    align: tuple[str, ...]
    footnotes: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        n = len(self.align)
        if n == 0 or any(a not in ("l", "r", "c") for a in self.align):
            raise ValueError(f"align must be a non-empty sequence of 'l', 'r' or 'c', got {self.align!r}")
        for kind, row in [("header", r) for r in self.header] + [("body", r.cells) for r in self.body]:
            width = sum(c.span for c in row)
            if any(c.span < 1 for c in row) or width != n:
                raise ValueError(f"a {kind} row spans {width} columns, the table has {n}: "
                                 + " | ".join(c.text for c in row))

    @property
    def n_columns(self) -> int:
        """Number of columns."""
        return len(self.align)

    def to_latex(self, *, floating: bool = True, label: str | None = None, placement: str = "htbp",
                 size: str | None = "small", wrap: int | None = 8, colsep: str | None = "4pt") -> str:
        """LaTeX (booktabs); see :func:`to_latex`."""
        return to_latex(self, floating=floating, label=label, placement=placement, size=size, wrap=wrap,
                        colsep=colsep)

    def to_markdown(self) -> str:
        """A Markdown pipe table; see :func:`to_markdown`."""
        return to_markdown(self)

    def to_html(self, *, table_id: str | None = None, css: str = "") -> str:
        """An HTML table; see :func:`to_html`."""
        return to_html(self, table_id=table_id, css=css)

    def write(self, path: str | Path) -> Path:
        """Write the table to ``path`` as LaTeX (``.tex``), Markdown (``.md``) or HTML (``.html``).

        Parameters
        ----------
        path : str or Path
            Where to write; its suffix chooses the format.

        Returns
        -------
        Path
            ``path``.
        """
        path = Path(path)
        render = {".tex": to_latex, ".md": to_markdown, ".html": to_html, ".htm": to_html}.get(path.suffix.lower())
        if render is None:
            raise ValueError(f"cannot tell the format of {str(path)!r}: use a .tex, .md or .html file name")
        path.write_text(render(self), encoding="utf-8")
        return path

    def __str__(self) -> str:
        return to_markdown(self)

    def _repr_html_(self) -> str:
        return to_html(self)
