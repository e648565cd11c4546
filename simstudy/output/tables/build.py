"""Paper tables built from a summary: :func:`paper_table` in its two layouts, :func:`failures_table`, and
:func:`simple_table` for plain text."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import xarray as xr

from simstudy.output.display import fmt, row_kind
from simstudy.output.tables.captions import (
    caption_text,
    factor_label,
    held_text,
    measure_label,
    merged_labels,
    param_label,
)
from simstudy.output.tables.cells import Footnotes, mcse_cell, not_estimable_cell, note_parts, row_notes, value_cell
from simstudy.output.tables.model import Cell, PaperTable, Row
from simstudy.output.tables.selection import (
    choose_digits,
    choose_measures,
    design_factors,
    index_for,
    require_summary,
    select,
)

#: Counts of fits that went wrong, per cell and estimator, with their column headings.
FAILURE_COUNTS: dict[str, str] = {"n_fit_failed": "Fit failed", "n_nonconverged": "Not converged",
                                  "n_boundary": "Boundary"}

LAYOUTS: tuple[str, ...] = ("long", "by_estimator")


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
    require_summary(summary)
    ds = select(summary, params, estimators, where)
    names = merged_labels(summary, labels)
    chosen = choose_measures(ds, measures)
    decimals = choose_digits(digits, chosen)
    factors = design_factors(ds)
    fixed = {f: ds.coords[f].values[0] for f in factors if ds.sizes[f] == 1}
    moving = [f for f in factors if ds.sizes[f] > 1]
    ds = ds.isel({f: 0 for f in fixed})  # a factor held at one level goes into the caption
    ps = [str(p) for p in ds.coords["param"].values]
    es = [str(e) for e in ds.coords["estimator"].values]
    panels = len(ps) > 1 and bool(moving)
    param_column = len(ps) > 1 and not moving
    notes = Footnotes()
    build = _long if layout == "long" else _by_estimator
    header, body, align = build(ds, chosen, decimals, mcse, counts, names, moving, ps, es, panels, param_column,
                                notes, sparse)
    text = caption_text(ds, chosen, names, layout, mcse, counts, ps, fixed, caption)
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
    require_summary(summary)
    ds = select(summary, None, estimators, where, all_params=True)
    keys = [k for k in FAILURE_COUNTS if k in ds]
    if not keys:
        return None
    names = merged_labels(summary, labels)
    factors = design_factors(ds)
    fixed = {f: ds.coords[f].values[0] for f in factors if ds.sizes[f] == 1}
    moving = [f for f in factors if ds.sizes[f] > 1]
    reps = ds["n_rep"].max("param")
    body: list[Row] = []
    previous: tuple[int, ...] | None = None
    for index in itertools.product(*(range(ds.sizes[f]) for f in moving)):
        at = dict(zip(moving, index))
        for e in range(ds.sizes["estimator"]):
            one = {**at, "estimator": e}
            values = [int(ds[k].isel(index_for(ds[k], one)).max()) for k in keys]
            if not any(values):
                continue
            estimator = str(ds.coords["estimator"].values[e])
            cells = [Cell(fmt(ds.coords[f].values[i])) for f, i in at.items()]
            cells += [Cell(names.get(estimator, estimator)), Cell(str(int(reps.isel(index_for(reps, one)).max())),
                                                                  numeric=True)]
            cells += [Cell(str(v), numeric=True) for v in values]
            body.append(Row(tuple(cells), gap=previous is not None and index != previous))
            previous = index
    if not body:
        return None
    header = (tuple([Cell(factor_label(f, names)) for f in moving] + [Cell("Estimator"),
                                                                      Cell("Replicates", numeric=True)]
                    + [Cell(FAILURE_COUNTS[k], numeric=True) for k in keys]),)
    align = tuple(["l"] * (len(moving) + 1) + ["r"] * (len(keys) + 1))
    caption = ("Fits that failed, did not converge or ended on the boundary, by design cell and estimator. "
               "Only the cells and estimators with at least one such fit are listed; all others had none.")
    if fixed:
        caption += f" Held fixed: {held_text(fixed, names)}."
    return PaperTable(stem, caption, header, tuple(body), align)


# --- the two layouts ---------------------------------------------------------------------------------


def _long(ds: xr.Dataset, measures: list[str], digits: dict[str, int], mcse: str, counts: bool,
          names: dict[str, str], moving: list[str], ps: list[str], es: list[str], panels: bool,
          param_column: bool, notes: Footnotes, sparse: bool
          ) -> tuple[tuple[tuple[Cell, ...], ...], tuple[Row, ...], tuple[str, ...]]:
    """Rows: (panel of a parameter) x cell x estimator; columns: factors, estimator, measures, counts."""
    stub = (["Parameter"] if param_column else []) + [factor_label(f, names) for f in moving] + ["Estimator"]
    header = (tuple([Cell(s) for s in stub] + [Cell(measure_label(m, names), numeric=True) for m in measures]
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
                parts = note_parts(s)
                keys = ([param_label(param, names)] if param_column else []) + \
                       [fmt(ds.coords[f].values[i]) for f, i in zip(moving, index)]
                label = Cell(names.get(estimator, estimator), marks=notes.marks(row_notes(parts)))
                below: list[Cell] | None = None
                if kind == "not_estimable":
                    values = [not_estimable_cell(parts, len(measures), notes)]
                else:
                    values = [value_cell(s, m, digits[m], mcse == "inline", parts, notes) for m in measures]
                    if mcse == "below":
                        below = [Cell("")] + [mcse_cell(s, m, digits[m]) for m in measures]
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
            body.append(Row((Cell(param_label(param, names), span=width),), section=True, gap=bool(body)))
        body += _stubbed(rows, sparse, gap=bool(body) and param_column)
    align = tuple(["l"] * len(stub) + ["r"] * (len(measures) + int(counts)))
    return header, tuple(body), align


def _by_estimator(ds: xr.Dataset, measures: list[str], digits: dict[str, int], mcse: str, counts: bool,
                  names: dict[str, str], moving: list[str], ps: list[str], es: list[str], panels: bool,
                  param_column: bool, notes: Footnotes, sparse: bool
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
    stub = (["Parameter"] if param_column else []) + [factor_label(f, names) for f in moving]
    k = len(measures)
    blank = [Cell("", span=len(stub))] if stub else []
    if k == 1:
        top = blank + [Cell(measure_label(measures[0], names), span=len(shown))]
        bottom = [Cell(s) for s in stub] + [Cell(names.get(es[e], es[e]), numeric=True) for e in shown]
    else:
        top = blank + [Cell(names.get(es[e], es[e]), span=k) for e in shown]
        bottom = [Cell(s) for s in stub] + [Cell(measure_label(m, names), numeric=True) for e in shown
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
                kind, parts = kinds[p, c, e], note_parts(s)
                if kind == "skip":
                    values += [Cell("", numeric=True)] * k
                    below += [Cell("", numeric=True)] * k
                elif kind == "not_estimable":
                    values.append(not_estimable_cell(parts, k, notes))
                    below += [Cell("", numeric=True)] * k
                else:
                    group = [value_cell(s, m, digits[m], mcse == "inline", parts, notes) for m in measures]
                    row_marks = notes.marks(row_notes(parts))
                    if row_marks:
                        group[0] = replace(group[0], marks=group[0].marks + row_marks)
                    values += group
                    below += [mcse_cell(s, m, digits[m]) for m in measures]
            keys = ([param_label(param, names)] if param_column else []) + \
                   [fmt(ds.coords[f].values[i]) for f, i in zip(moving, c)]
            gap = previous is not None and len(moving) > 1 and c[0] != previous[0]
            rows.append(_Line(keys, values, gap, below if mcse == "below" else None))
            previous = c
        if not rows:
            continue
        if panels:
            body.append(Row((Cell(param_label(param, names), span=width),), section=True, gap=bool(body)))
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
