"""LaTeX (booktabs) rendering of a :class:`~simstudy.output.tables.model.PaperTable`."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simstudy.output.tables.model import Cell, PaperTable

_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
        ">": r"\textgreater{}", "\u2013": "--", "\u2014": "---", "\u2212": r"\textminus{}",
        "\u00d7": r"\texttimes{}", "\u00b1": r"\textpm{}", "\u00a0": "~"}


def tex_escape(text: str) -> str:
    """Escape LaTeX's special characters (and write an en dash as ``--``)."""
    return "".join(_TEX.get(ch, ch) for ch in text)


def _two_lines(text: str, align: str) -> str:
    """``Empirical SE`` as two lines (a ``tabular`` aligned at its bottom line), broken at the space nearest
    the middle."""
    spaces = [i for i, ch in enumerate(text) if ch == " "]
    cut = min(spaces, key=lambda i: abs(2 * i - len(text)))
    return (f"\\begin{{tabular}}[b]{{@{{}}{align}@{{}}}}{tex_escape(text[:cut])}\\\\"
            f"{tex_escape(text[cut + 1:])}\\end{{tabular}}")


def _tex_cell(cell: Cell, align: str = "l", wrap: int | None = None) -> str:
    if wrap is not None and cell.span == 1 and not cell.marks and len(cell.text) > wrap and " " in cell.text:
        return _two_lines(cell.text, align)
    text = tex_escape(cell.text)
    if cell.numeric and re.match(r"-\d", text):
        text = "$-$" + text[1:]  # a minus sign, not a hyphen
    if cell.marks:
        text += "\\textsuperscript{" + ",".join(cell.marks) + "}"
    if cell.span > 1 and not text:
        return " & ".join([""] * cell.span)
    if cell.span > 1 or cell.center:
        return f"\\multicolumn{{{cell.span}}}{{c}}{{{text}}}"
    return text


_SIZES = ("tiny", "scriptsize", "footnotesize", "small", "normalsize")


def to_latex(table: PaperTable, *, floating: bool = True, label: str | None = None,
             placement: str = "htbp", size: str | None = "small", wrap: int | None = 8,
             colsep: str | None = "4pt") -> str:
    """A booktabs ``tabular``, in a ``table`` float with caption and label unless ``floating=False``.

    Parameters
    ----------
    table : PaperTable
        The table.
    floating : bool
        Wrap it in ``\\begin{table}...\\end{table}`` with ``\\caption`` and ``\\label``; otherwise the bare
        ``tabular`` (the caption as a comment), e.g. to ``\\input`` into a float of one's own.
    label : str, optional
        The label (default ``tab:<stem>``).
    placement : str
        The float's placement specifier.
    size : str, optional
        A font size command for the float (``"small"``, ``"footnotesize"``, ...; ``None``: the text's size).
    wrap : int, optional
        Set a column heading longer than this (with a space) on two lines, to keep columns narrow
        (``None``: never).
    colsep : str, optional
        ``\\tabcolsep`` in the float (half the space between columns; LaTeX's default is 6pt); ``None``: as
        it is.

    Returns
    -------
    str
        LaTeX source; needs ``\\usepackage{booktabs}``. Column groups are ``\\multicolumn`` headings
        underlined by ``\\cmidrule``; numbers are plain text (a leading minus as ``$-$``); footnotes follow
        the ``tabular``.
    """
    if size is not None and size not in _SIZES:
        raise ValueError(f"size must be one of {', '.join(_SIZES)} or None, got {size!r}")
    if colsep is not None and not re.fullmatch(r"\d+(\.\d+)?(pt|em|ex|mm)", colsep):
        raise ValueError(f"colsep must be a length such as '4pt', got {colsep!r}")
    n = table.n_columns
    lines = ["% simstudy table; needs \\usepackage{booktabs}"]
    if floating:
        lines += [f"\\begin{{table}}[{placement}]", "\\centering", f"\\caption{{{tex_escape(table.caption)}}}",
                  f"\\label{{{label or 'tab:' + table.stem}}}"] + ([f"\\{size}"] if size else [])
        lines += [f"\\setlength{{\\tabcolsep}}{{{colsep}}}"] if colsep else []
    else:
        lines.append("% " + tex_escape(table.caption).replace("\n", " "))
    lines += [f"\\begin{{tabular}}{{{''.join(table.align)}}}", "\\toprule"]
    for i, row in enumerate(table.header):
        cells, j = [], 0
        for c in row:
            cells.append(_tex_cell(c, table.align[j], wrap if i == len(table.header) - 1 else None))
            j += c.span
        lines.append(" & ".join(cells) + " \\\\")
        if i < len(table.header) - 1:
            rules, start = [], 1
            for c in row:
                if c.span > 1 and c.text:
                    rules.append(f"\\cmidrule(lr){{{start}-{start + c.span - 1}}}")
                start += c.span
            if rules:
                lines.append(" ".join(rules))
    lines.append("\\midrule")
    for row in table.body:
        if row.gap:
            lines.append("\\addlinespace")
        if row.section:
            lines.append(f"\\multicolumn{{{n}}}{{l}}{{\\textit{{{tex_escape(row.cells[0].text)}}}}} \\\\")
            continue
        lines.append(" & ".join(_tex_cell(c) for c in row.cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    if table.footnotes:
        lines += ["\\par\\smallskip", "{\\raggedright\\footnotesize"]
        lines += [f"\\textsuperscript{{{m}}}~{tex_escape(t)}\\par" for m, t in table.footnotes]
        lines.append("}")
    if floating:
        lines.append("\\end{table}")
    return "\n".join(lines) + "\n"
