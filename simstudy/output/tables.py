"""Tables of performance measures for a paper: a table model built from a summary, and three renderers.

:func:`paper_table` picks measures, parameters, estimators, factor levels and digits from a run's
``summary.nc`` and returns a :class:`PaperTable`: header rows (with column groups), body rows (with panel
headings), column alignment, caption and footnotes. The same model renders as

- LaTeX with booktabs (:func:`to_latex`): ``\\toprule``/``\\midrule``/``\\bottomrule``, ``\\multicolumn`` and
  ``\\cmidrule`` for grouped headers, plain numbers (no ``siunitx``), optionally in a ``table`` float;
- Markdown (:func:`to_markdown`): a pipe table with a pandoc ``Table:`` caption;
- HTML (:func:`to_html`): a ``<table>`` with ``<thead>`` (``colspan`` for groups) and numeric cells of
  class ``num``.

Layouts
-------
``"long"`` (the default): one row per design cell and estimator, one column per measure. Its width grows
with the number of measures only, so six measures with ``value (MCSE)`` entries fit a page (or a report)
without sideways scrolling; more cells only make it longer, and a page break is where a paper's table may
grow. Rows of one cell are set off by a little space, and repeated factor levels are left blank.

``"by_estimator"``: one row per design cell, the estimators as column groups (a two-level header) of the
chosen measures. It puts the estimators of one cell side by side, which is the comparison a paper makes,
but its width is estimators x measures: meant for one measure (the measure spans the estimators in the
header) or two (each estimator spans its measures). :func:`failures_table` lists the cells and
estimators with failed, non-converged or boundary fits.

Examples
--------
>>> table = paper_table(summary, ["bias", "coverage"], params="treat")          # doctest: +SKIP
>>> print(table.to_latex())                                                    # doctest: +SKIP
>>> paper_table(summary, "coverage", layout="by_estimator", where={"group_size": 20})   # doctest: +SKIP
"""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr

from simstudy.engine.store import json_attr
from simstudy.output.display import fmt, row_kind
from simstudy.stats.measures import MEASURES

__all__ = [
    "Cell", "Row", "PaperTable", "paper_table", "failures_table", "to_latex", "to_markdown", "to_html",
    "tex_escape", "MEASURE_LABELS", "PAPER_MEASURES", "FAILURE_COUNTS",
]

#: Readable names of the measures (and counts); a study's ``labels`` override them.
MEASURE_LABELS: dict[str, str] = {
    "bias": "Bias",
    "rel_bias": "Relative bias",
    "emp_se": "Empirical SE",
    "model_se": "Model SE",
    "rel_error": "Relative error (%)",
    "mse": "MSE",
    "rmse": "RMSE",
    "coverage": "Coverage",
    "be_coverage": "Bias-eliminated coverage",
    "power": "Power",
    "rel_precision": "Relative precision (%)",
    "n_rep": "Replicates",
    "n_valid": "Valid",
    "n_failed": "Failed",
    "n_fit_failed": "Fit failed",
    "n_nonconverged": "Not converged",
    "n_boundary": "Boundary",
}

#: The measures of a paper table when none are chosen (those with no value in the selection are left out).
PAPER_MEASURES: tuple[str, ...] = ("bias", "emp_se", "model_se", "coverage", "rmse", "power")

#: Counts of fits that went wrong, per cell and estimator, with their column headings.
FAILURE_COUNTS: dict[str, str] = {"n_fit_failed": "Fit failed", "n_nonconverged": "Not converged",
                                  "n_boundary": "Boundary"}

LAYOUTS: tuple[str, ...] = ("long", "by_estimator")

#: What a cell without a value shows (an en dash; ``--`` in LaTeX).
DASH = "\u2013"

#: What a row (or an estimator's group) of a parameter that is not estimable shows.
NOT_ESTIMABLE = "not estimable"

_NOT_FACTORS = ("estimator", "param", "rep")
_NOT_REPORTED = "not reported by this estimator"


# --- the model ----------------------------------------------------------------------------------------


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


def simple_table(stem: str, caption: str, header: Sequence[str], rows: Sequence[Sequence[str]],
                 numeric: Sequence[bool]) -> PaperTable:
    """A one-header-row table of plain text (e.g. the report's design or provenance tables).

    Parameters
    ----------
    stem, caption : str
        File stem and caption.
    header : sequence of str
        Column headings.
    rows : sequence of sequence of str
        Body rows, one text per column.
    numeric : sequence of bool
        Which columns hold numbers (right-aligned).

    Returns
    -------
    PaperTable
    """
    head = (tuple(Cell(str(h), numeric=n) for h, n in zip(header, numeric)),)
    body = tuple(Row(tuple(Cell(str(v), numeric=n) for v, n in zip(row, numeric))) for row in rows)
    return PaperTable(stem, caption, head, body, tuple("r" if n else "l" for n in numeric))


# --- building tables from a summary -------------------------------------------------------------------


def paper_table(
    summary: xr.Dataset,
    measures: str | Sequence[str] | None = None,
    *,
    params: str | Sequence[str] | None = None,
    estimators: str | Sequence[str] | None = None,
    digits: int | Mapping[str, int] = 3,
    mcse: bool | Literal["inline", "below"] = True,
    layout: Literal["long", "by_estimator"] = "long",
    where: Mapping[str, Any] | None = None,
    counts: bool = False,
    labels: Mapping[str, str] | None = None,
    caption: str | None = None,
    stem: str = "table",
    sparse: bool = True,
) -> PaperTable:
    """A table of performance measures for a paper, from a summary dataset.

    Parameters
    ----------
    summary : xarray.Dataset
        A run's ``summary.nc`` (dims: the design factors, ``estimator``, ``param``).
    measures : str or sequence of str, optional
        Measures in column order (see :data:`simstudy.stats.measures.MEASURES`), or counts such as
        ``n_valid``. Default: :data:`PAPER_MEASURES`, less those with no value in the selection.
    params : str or sequence of str, optional
        Parameters; several become panels (or a ``Parameter`` column when no factor varies). Default: the
        study's featured parameters (``show``), else all.
    estimators : str or sequence of str, optional
        Estimators, in order (default: all). An estimator that does not report a parameter gets no row.
    digits : int or mapping of str to int
        Decimals of each value and its MCSE: one number for all, or per measure (others: 3).
    mcse : bool or {"inline", "below"}
        ``True`` or ``"inline"``: ``value (MCSE)``; ``"below"``: the MCSE in parentheses in a row of its own
        under the values, which halves the width of the columns (for a page); ``False``: values only.
    layout : {"long", "by_estimator"}
        ``"long"``: rows are cells x estimators, columns the measures. ``"by_estimator"``: rows are cells,
        the estimators column groups of the measures (best with one or two measures).
    where : mapping of str to level or list of levels, optional
        Factor levels to keep, e.g. ``{"group_size": 20, "icc": [0.05, 0.2]}``. A factor left at one level
        goes into the caption instead of a column.
    counts : bool
        Add a ``Valid/reps`` column (long layout only): replicates with an estimate and its SE, of those run.
    labels : mapping of str to str, optional
        Readable names of factors, estimators, parameters and measures, over the summary's ``labels``
        attribute (from ``Study(labels=...)``). Defaults: factor names with spaces for underscores,
        estimator and parameter names as they are, measures as in :data:`MEASURE_LABELS`.
    caption : str, optional
        The caption's first sentence (default: says what the table holds). The factors held fixed and what
        the interval measures refer to are appended.
    stem : str
        File stem and LaTeX label (``tab:<stem>``).
    sparse : bool
        Leave a factor level blank where it repeats the row above (within a panel).

    Returns
    -------
    PaperTable
        Render it with :meth:`PaperTable.to_latex`, :meth:`~PaperTable.to_markdown` or
        :meth:`~PaperTable.to_html`. A parameter that is not estimable shows "not estimable" with the reason
        as a footnote; a value that is missing shows an en dash, with the summary's note as a footnote.

    Raises
    ------
    ValueError
        With one line, for an unknown measure, parameter, estimator, factor or level, or a bad option.

    Examples
    --------
    >>> paper_table(summary, ["bias", "coverage"], params="treat", digits={"bias": 4})   # doctest: +SKIP
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of: {', '.join(LAYOUTS)}")
    if mcse not in (True, False, "inline", "below"):
        raise ValueError(f"mcse must be True, False, 'inline' or 'below', got {mcse!r}")
    mcse = "inline" if mcse is True else ("" if mcse is False else mcse)
    if counts and layout != "long":
        raise ValueError("counts=True needs layout='long' (the by_estimator layout has no room for them)")
    _require_summary(summary)
    ds = _select(summary, params, estimators, where)
    names = _labels(summary, labels)
    chosen = _measures(ds, measures)
    decimals = _digits(digits, chosen)
    factors = _factors(ds)
    fixed = {f: ds.coords[f].values[0] for f in factors if ds.sizes[f] == 1}
    moving = [f for f in factors if ds.sizes[f] > 1]
    ds = ds.isel({f: 0 for f in fixed})  # a factor held at one level goes into the caption
    ps = [str(p) for p in ds.coords["param"].values]
    es = [str(e) for e in ds.coords["estimator"].values]
    panels = len(ps) > 1 and bool(moving)
    param_column = len(ps) > 1 and not moving
    notes = _Footnotes()
    build = _long if layout == "long" else _by_estimator
    header, body, align = build(ds, chosen, decimals, mcse, counts, names, moving, ps, es, panels, param_column,
                                notes, sparse)
    text = _caption(ds, chosen, names, layout, mcse, counts, ps, fixed, caption)
    return PaperTable(stem, text, header, body, align, notes.items())


def failures_table(
    summary: xr.Dataset,
    *,
    estimators: str | Sequence[str] | None = None,
    where: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
    stem: str = "failures",
) -> PaperTable | None:
    """The cells and estimators with any failed, non-converged or boundary fit, with their counts.

    Parameters
    ----------
    summary : xarray.Dataset
        A run's ``summary.nc``.
    estimators : str or sequence of str, optional
        Estimators to consider (default: all).
    where : mapping of str to level or list of levels, optional
        Factor levels to keep (as in :func:`paper_table`).
    labels : mapping of str to str, optional
        Readable names over the summary's ``labels`` attribute.
    stem : str
        File stem and LaTeX label.

    Returns
    -------
    PaperTable or None
        One row per (cell, estimator) with at least one failed, non-converged or boundary fit; columns: the
        factors that vary, the estimator, the replicates run and the three counts. ``None`` when there is
        no such row (or the summary has no failure counts).
    """
    _require_summary(summary)
    ds = _select(summary, None, estimators, where, all_params=True)
    keys = [k for k in FAILURE_COUNTS if k in ds]
    if not keys:
        return None
    names = _labels(summary, labels)
    factors = _factors(ds)
    fixed = {f: ds.coords[f].values[0] for f in factors if ds.sizes[f] == 1}
    moving = [f for f in factors if ds.sizes[f] > 1]
    reps = ds["n_rep"].max("param")
    body: list[Row] = []
    previous: tuple[int, ...] | None = None
    for index in itertools.product(*(range(ds.sizes[f]) for f in moving)):
        at = dict(zip(moving, index))
        for e in range(ds.sizes["estimator"]):
            one = {**at, "estimator": e}
            values = [int(ds[k].isel(_only(ds[k], one)).max()) for k in keys]
            if not any(values):
                continue
            estimator = str(ds.coords["estimator"].values[e])
            cells = [Cell(fmt(ds.coords[f].values[i])) for f, i in at.items()]
            cells += [Cell(names.get(estimator, estimator)), Cell(str(int(reps.isel(_only(reps, one)).max())),
                                                                   numeric=True)]
            cells += [Cell(str(v), numeric=True) for v in values]
            body.append(Row(tuple(cells), gap=previous is not None and index != previous))
            previous = index
    if not body:
        return None
    header = (tuple([Cell(_factor_label(f, names)) for f in moving] + [Cell("Estimator"),
                                                                        Cell("Replicates", numeric=True)]
                    + [Cell(FAILURE_COUNTS[k], numeric=True) for k in keys]),)
    align = tuple(["l"] * (len(moving) + 1) + ["r"] * (len(keys) + 1))
    caption = ("Fits that failed, did not converge or ended on the boundary, by design cell and estimator. "
               "Only the cells and estimators with at least one such fit are listed; all others had none.")
    if fixed:
        caption += f" Held fixed: {_held(fixed, names)}."
    return PaperTable(stem, caption, header, tuple(body), align)


# --- building: the two layouts ------------------------------------------------------------------------


def _long(ds: xr.Dataset, measures: list[str], digits: dict[str, int], mcse: str, counts: bool,
          names: dict[str, str], moving: list[str], ps: list[str], es: list[str], panels: bool,
          param_column: bool, notes: _Footnotes, sparse: bool
          ) -> tuple[tuple[tuple[Cell, ...], ...], tuple[Row, ...], tuple[str, ...]]:
    """Rows: (panel of a parameter) x cell x estimator; columns: factors, estimator, measures, counts."""
    stub = (["Parameter"] if param_column else []) + [_factor_label(f, names) for f in moving] + ["Estimator"]
    header = (tuple([Cell(s) for s in stub] + [Cell(_measure_label(m, names), numeric=True) for m in measures]
                    + ([Cell("Valid/reps", numeric=True)] if counts else [])),)
    width = len(stub) + len(measures) + int(counts)
    body: list[Row] = []
    for p, param in enumerate(ps):
        rows: list[_Line] = []
        where: list[tuple[int, ...]] = []  # the cell of each row
        for index in itertools.product(*(range(ds.sizes[f]) for f in moving)):
            first = True
            for e, estimator in enumerate(es):
                s = ds.isel({**dict(zip(moving, index)), "estimator": e, "param": p})
                kind = row_kind(s)
                if kind == "skip":
                    continue  # the estimator does not report this parameter
                parts = _note_parts(s)
                keys = ([_param_label(param, names)] if param_column else []) + \
                       [fmt(ds.coords[f].values[i]) for f, i in zip(moving, index)]
                label = Cell(names.get(estimator, estimator), marks=notes.marks(_row_notes(parts)))
                below: list[Cell] | None = None
                if kind == "not_estimable":
                    values = [_not_estimable(parts, len(measures), notes)]
                else:
                    values = [_value(s, m, digits[m], mcse == "inline", parts, notes) for m in measures]
                    if mcse == "below":
                        below = [Cell("")] + [_mcse(s, m, digits[m]) for m in measures]
                if counts:
                    values.append(Cell(f"{int(s['n_valid'])}/{int(s['n_rep'])}", numeric=True))
                    below = below + [Cell("", numeric=True)] if below else None
                rows.append(_Line(keys, [label, *values], first and bool(rows), below))
                where.append(index)
                first = False
        if not rows:
            continue
        if len(set(where)) == len(where):  # one estimator per cell: space between the outermost factor's levels
            rows = [replace(r, gap=i > 0 and len(moving) > 1 and where[i][0] != where[i - 1][0])
                    for i, r in enumerate(rows)]
        if panels:
            body.append(Row((Cell(_param_label(param, names), span=width),), section=True, gap=bool(body)))
        body += _stubbed(rows, sparse, gap=bool(body) and param_column)
    align = tuple(["l"] * len(stub) + ["r"] * (len(measures) + int(counts)))
    return header, tuple(body), align


def _by_estimator(ds: xr.Dataset, measures: list[str], digits: dict[str, int], mcse: str, counts: bool,
                  names: dict[str, str], moving: list[str], ps: list[str], es: list[str], panels: bool,
                  param_column: bool, notes: _Footnotes, sparse: bool
                  ) -> tuple[tuple[tuple[Cell, ...], ...], tuple[Row, ...], tuple[str, ...]]:
    """Rows: (panel of a parameter) x cell; columns: factors, then per estimator a group of measures."""
    if not measures:
        raise ValueError("the by_estimator layout needs at least one measure")
    cells = list(itertools.product(*(range(ds.sizes[f]) for f in moving)))
    kinds = {(p, c, e): row_kind(ds.isel({**dict(zip(moving, c)), "estimator": e, "param": p}))
             for p in range(len(ps)) for c in cells for e in range(len(es))}
    shown = [e for e in range(len(es)) if any(kinds[p, c, e] != "skip" for p in range(len(ps)) for c in cells)]
    if not shown:
        raise ValueError("no estimator reports the chosen parameters in the chosen cells")
    stub = (["Parameter"] if param_column else []) + [_factor_label(f, names) for f in moving]
    k = len(measures)
    blank = [Cell("", span=len(stub))] if stub else []
    if k == 1:
        top = blank + [Cell(_measure_label(measures[0], names), span=len(shown))]
        bottom = [Cell(s) for s in stub] + [Cell(names.get(es[e], es[e]), numeric=True) for e in shown]
    else:
        top = blank + [Cell(names.get(es[e], es[e]), span=k) for e in shown]
        bottom = [Cell(s) for s in stub] + [Cell(_measure_label(m, names), numeric=True) for e in shown
                                            for m in measures]
    header = (tuple(top), tuple(bottom))
    width = len(stub) + k * len(shown)
    body: list[Row] = []
    for p, param in enumerate(ps):
        rows: list[_Line] = []
        previous: tuple[int, ...] | None = None
        for c in cells:
            if all(kinds[p, c, e] == "skip" for e in shown):
                continue
            values: list[Cell] = []
            below: list[Cell] = []
            for e in shown:
                s = ds.isel({**dict(zip(moving, c)), "estimator": e, "param": p})
                kind, parts = kinds[p, c, e], _note_parts(s)
                if kind == "skip":
                    values += [Cell("", numeric=True)] * k
                    below += [Cell("", numeric=True)] * k
                elif kind == "not_estimable":
                    values.append(_not_estimable(parts, k, notes))
                    below += [Cell("", numeric=True)] * k
                else:
                    group = [_value(s, m, digits[m], mcse == "inline", parts, notes) for m in measures]
                    row_marks = notes.marks(_row_notes(parts))
                    if row_marks:
                        group[0] = replace(group[0], marks=group[0].marks + row_marks)
                    values += group
                    below += [_mcse(s, m, digits[m]) for m in measures]
            keys = ([_param_label(param, names)] if param_column else []) + \
                   [fmt(ds.coords[f].values[i]) for f, i in zip(moving, c)]
            gap = previous is not None and len(moving) > 1 and c[0] != previous[0]
            rows.append(_Line(keys, values, gap, below if mcse == "below" else None))
            previous = c
        if not rows:
            continue
        if panels:
            body.append(Row((Cell(_param_label(param, names), span=width),), section=True, gap=bool(body)))
        body += _stubbed(rows, sparse, gap=bool(body) and param_column)
    align = tuple(["l"] * len(stub) + ["r"] * (k * len(shown)))
    return header, tuple(body), align


@dataclass(frozen=True)
class _Line:
    """A body row in the making: its stub texts (factor levels), other cells, space above, MCSE row."""

    keys: list[str]
    cells: list[Cell]
    gap: bool
    below: list[Cell] | None = None


def _stubbed(rows: list[_Line], sparse: bool, gap: bool = False) -> list[Row]:
    """Body rows: a stub text that repeats the row above (and every stub text left of it does too) is left
    blank when ``sparse``; ``gap`` sets off the first row. A row of MCSEs follows its values (if any)."""
    out = []
    previous: list[str] | None = None
    for i, line in enumerate(rows):
        shown = list(line.keys)
        if sparse and previous is not None:
            for j in range(len(shown)):
                if line.keys[: j + 1] != previous[: j + 1]:
                    break
                shown[j] = ""
        out.append(Row(tuple([Cell(t) for t in shown] + line.cells), gap=line.gap or (gap and i == 0)))
        if line.below and any(c.text for c in line.below):
            out.append(Row(tuple([Cell("") for _ in shown] + line.below), mcse=True))
        previous = line.keys
    return out


# --- building: cells ----------------------------------------------------------------------------------


class _Footnotes:
    """Footnote texts in the order first used, with their marks ``a``, ``b``, ..., ``z``, ``aa``, ..."""

    def __init__(self) -> None:
        self._marks: dict[str, str] = {}

    def mark(self, text: str) -> str:
        if text not in self._marks:
            n, mark = len(self._marks), ""
            while True:
                n, r = divmod(n, 26)
                mark = chr(ord("a") + r) + mark
                if n == 0:
                    break
                n -= 1
            self._marks[text] = mark
        return self._marks[text]

    def marks(self, texts: Sequence[str]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.mark(t) for t in texts))

    def items(self) -> tuple[tuple[str, str], ...]:
        return tuple((m, t) for t, m in self._marks.items())


def _note_parts(s: xr.Dataset) -> list[str]:
    """The clauses of a row's ``note`` (``"; "``-separated), without "not reported by this estimator"."""
    if "note" not in s:
        return []
    return [p for p in str(s["note"].values).split("; ") if p and p != _NOT_REPORTED]


def _row_notes(parts: Sequence[str]) -> list[str]:
    """Notes about a row that has values: partly not estimable, replicates without an interval."""
    return [p for p in parts if p.startswith("not estimable in ") or "no interval" in p]


#: Notes (by their text before ``:``) that concern some measures only: those that need the SEs or a true value.
_NOTE_MEASURES: dict[str, frozenset[str]] = {
    "no standard errors": frozenset({"model_se", "rel_error", "coverage", "be_coverage", "power"}),
    "no true value": frozenset({"bias", "rel_bias", "mse", "rmse", "coverage"}),
}


def _missing_notes(parts: Sequence[str], measure: str) -> list[str]:
    """Notes that explain a missing value of ``measure`` (not a note that names, or concerns, other measures)."""
    out = []
    for p in parts:
        if p.startswith("not estimable") or "no interval" in p:
            continue
        first = p.split(" ", 1)[0]
        if first in MEASURES and first != measure:
            continue
        if measure not in _NOTE_MEASURES.get(p.split(":", 1)[0], frozenset({measure})):
            continue
        out.append(p)
    return out


def _not_estimable(parts: Sequence[str], span: int, notes: _Footnotes) -> Cell:
    reason = next((p for p in parts if p.startswith("not estimable")), "not estimable")
    return Cell(NOT_ESTIMABLE, span=span, marks=(notes.mark(reason),), center=True)


def _number(value: float, digits: int) -> str:
    """``value`` with ``digits`` decimals; no minus sign on a value that rounds to zero."""
    text = f"{value:.{digits}f}"
    if text.startswith("-") and not any(ch in "123456789" for ch in text):
        text = text[1:]
    return text


def _mcse(s: xr.Dataset, measure: str, digits: int) -> Cell:
    """``(MCSE)`` of one measure of one row, for the row under the values; empty if there is none."""
    if measure not in MEASURES or f"{measure}_mcse" not in s or not np.isfinite(float(s[measure])):
        return Cell("", numeric=True)
    err = float(s[f"{measure}_mcse"])
    return Cell(f"({_number(err, digits)})" if np.isfinite(err) else "", numeric=True)


def _value(s: xr.Dataset, measure: str, digits: int, mcse: bool, parts: Sequence[str],
           notes: _Footnotes) -> Cell:
    """``value (MCSE)`` of one measure of one row; an en dash with the reason's footnote if missing."""
    value = float(s[measure])
    if not np.isfinite(value):
        return Cell(DASH, numeric=True, marks=notes.marks(_missing_notes(parts, measure)))
    if measure not in MEASURES:  # a count
        return Cell(str(int(value)), numeric=True)
    text = _number(value, digits)
    if mcse and f"{measure}_mcse" in s:
        err = float(s[f"{measure}_mcse"])
        if np.isfinite(err):
            text += f" ({_number(err, digits)})"
    return Cell(text, numeric=True)


# --- building: checks, selection, labels, caption -----------------------------------------------------


def _require_summary(ds: Any) -> None:
    if not isinstance(ds, xr.Dataset):
        raise ValueError(f"a table needs an xarray Dataset (summary.nc), got {type(ds).__name__}")
    missing = [d for d in ("estimator", "param") if d not in ds.dims]
    if missing or "rep" in ds.dims or "n_rep" not in ds:
        raise ValueError("a table needs a summary dataset (summary.nc) with dimensions 'estimator' and 'param'"
                         + (f"; missing {', '.join(missing)}" if missing else ""))


def _factors(ds: xr.Dataset) -> list[str]:
    return [str(d) for d in ds["n_rep"].dims if d not in _NOT_FACTORS]


def _only(da: xr.DataArray, index: Mapping[str, int]) -> dict[str, int]:
    return {d: i for d, i in index.items() if d in da.dims}


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, np.ndarray, range)):
        return [value]
    return list(value)


def _select(summary: xr.Dataset, params: Any, estimators: Any, where: Mapping[str, Any] | None,
            all_params: bool = False) -> xr.Dataset:
    ds = summary
    if params is None and not all_params:
        show = json_attr(summary, "show", []) or []
        have = [str(p) for p in summary.coords["param"].values]
        featured = [p for p in _as_list(show) if str(p) in have]
        params = featured or None
    for dim, chosen in (("param", params), ("estimator", estimators)):
        if chosen is None:
            continue
        chosen = [str(c) for c in _as_list(chosen)]
        have = [str(v) for v in ds.coords[dim].values]
        if not chosen:
            raise ValueError(f"no {dim} chosen; choose from {', '.join(have)}")
        missing = [c for c in chosen if c not in have]
        if missing:
            raise ValueError(f"unknown {dim} {missing[0]!r}; choose from {', '.join(have)}")
        ds = ds.isel({dim: [have.index(c) for c in chosen]})
    factors = _factors(ds)
    for factor, level in (where or {}).items():
        if factor not in factors:
            raise ValueError(f"unknown factor {factor!r}; the design's factors are {', '.join(factors) or '(none)'}")
        levels = ds.coords[factor].values
        positions = []
        for wanted in _as_list(level):
            hits = [i for i, v in enumerate(levels) if _same(v, wanted)]
            if not hits:
                raise ValueError(f"{factor}={wanted!r} is not a level of {factor}; its levels are "
                                 + ", ".join(fmt(v) for v in levels))
            positions.append(hits[0])
        ds = ds.isel({factor: positions})
    return ds


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.generic):
        a = a.item()
    if isinstance(b, np.generic):
        b = b.item()
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return bool(np.isclose(float(a), float(b), rtol=1e-9, atol=1e-12))
    return a == b or str(a) == str(b)


def _measures(ds: xr.Dataset, measures: Any) -> list[str]:
    known = [m for m in MEASURES if m in ds] + sorted(str(v) for v in ds.data_vars if str(v).startswith("n_"))
    if measures is None:
        chosen = [m for m in PAPER_MEASURES if m in ds and bool(np.any(np.isfinite(ds[m].values)))]
        return chosen or [m for m in PAPER_MEASURES if m in ds]
    chosen = [str(m) for m in _as_list(measures)]
    if not chosen:
        raise ValueError(f"no measure chosen; choose from {', '.join(known)}")
    for m in chosen:
        if m not in known:
            raise ValueError(f"unknown measure {m!r}; choose from {', '.join(known)}")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"a measure is chosen twice: {', '.join(chosen)}")
    return chosen


def _digits(digits: int | Mapping[str, int], measures: Sequence[str]) -> dict[str, int]:
    given = dict(digits) if isinstance(digits, Mapping) else {m: digits for m in measures}
    out = {m: given.get(m, 3) for m in measures}
    for m, d in out.items():
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or not 0 <= d <= 12:
            raise ValueError(f"digits must be a whole number from 0 to 12, got {d!r} for {m}")
    return {m: int(d) for m, d in out.items()}


def _labels(summary: xr.Dataset, labels: Mapping[str, str] | None) -> dict[str, str]:
    stored = json_attr(summary, "labels", {}) or {}
    stored = stored if isinstance(stored, dict) else {}
    return {str(k): str(v) for k, v in {**stored, **dict(labels or {})}.items()}


def _factor_label(factor: str, names: Mapping[str, str]) -> str:
    return names.get(factor, factor.replace("_", " "))


def _param_label(param: str, names: Mapping[str, str]) -> str:
    return names.get(param, param)


def _measure_label(measure: str, names: Mapping[str, str]) -> str:
    return names.get(measure, MEASURE_LABELS.get(measure, measure))


def _held(fixed: Mapping[str, Any], names: Mapping[str, str]) -> str:
    return ", ".join(f"{_factor_label(f, names)} = {fmt(v)}" for f, v in fixed.items())


def _lower_first(text: str) -> str:
    """``Empirical SE`` -> ``empirical SE``; ``RMSE`` stays."""
    return text[0].lower() + text[1:] if len(text) > 1 and text[1].islower() else text


def _join(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _caption(ds: xr.Dataset, measures: list[str], names: dict[str, str], layout: str, mcse: str, counts: bool,
             ps: list[str], fixed: dict[str, Any], caption: str | None) -> str:
    labels = [_measure_label(m, names) for m in measures]
    subject = _join([_param_label(p, names) for p in ps])
    if caption is None:
        if layout == "long":
            caption = f"Performance of the estimators for {subject}"
        else:
            caption = f"{_join([labels[0]] + [_lower_first(t) for t in labels[1:]])} for {subject}, by estimator"
        caption += {"inline": ": estimate (Monte Carlo SE).",
                    "below": ": estimate, and its Monte Carlo SE in parentheses below."}.get(mcse, ".")
    text = caption.rstrip()
    if text and text[-1] not in ".!?":
        text += "."
    if fixed:
        text += f" Held fixed: {_held(fixed, names)}."
    if any(m in measures for m in ("coverage", "be_coverage", "power")):
        try:
            level = float(ds.attrs.get("level", 0.95))
        except (TypeError, ValueError):
            level = 0.95
        text += f" Intervals: nominal {100 * level:g}%"
        if "power" in measures:
            text += f"; power is the share of intervals that exclude {fmt(ds.attrs.get('null', 0.0))}"
        text += "."
    if counts:
        text += " Valid/reps: replicates with an estimate and its SE, of those run."
    return text


# --- rendering ----------------------------------------------------------------------------------------


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
