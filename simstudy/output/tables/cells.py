"""The cells of a paper table's body: values with their MCSE, en dashes and "not estimable" with the
reasons as footnotes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from simstudy.engine.assemble import NOT_REPORTED
from simstudy.output.tables.model import Cell
from simstudy.stats.measures import MEASURES

#: What a cell without a value shows (an en dash; ``--`` in LaTeX).
DASH = "\u2013"

#: What a row (or an estimator's group) of a parameter that is not estimable shows.
NOT_ESTIMABLE = "not estimable"


class Footnotes:
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


def note_parts(s: xr.Dataset) -> list[str]:
    """The clauses of a row's ``note`` (``"; "``-separated), without "not reported by this estimator"."""
    if "note" not in s:
        return []
    return [p for p in str(s["note"].values).split("; ") if p and p != NOT_REPORTED]


def row_notes(parts: Sequence[str]) -> list[str]:
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


def not_estimable_cell(parts: Sequence[str], span: int, notes: Footnotes) -> Cell:
    """"not estimable" across ``span`` columns, with the reason as a footnote."""
    reason = next((p for p in parts if p.startswith("not estimable")), "not estimable")
    return Cell(NOT_ESTIMABLE, span=span, marks=(notes.mark(reason),), center=True)


def _number(value: float, digits: int) -> str:
    """``value`` with ``digits`` decimals; no minus sign on a value that rounds to zero."""
    text = f"{value:.{digits}f}"
    if text.startswith("-") and not any(ch in "123456789" for ch in text):
        text = text[1:]
    return text


def mcse_cell(s: xr.Dataset, measure: str, digits: int) -> Cell:
    """``(MCSE)`` of one measure of one row, for the row under the values; empty if there is none."""
    if measure not in MEASURES or f"{measure}_mcse" not in s or not np.isfinite(float(s[measure])):
        return Cell("", numeric=True)
    err = float(s[f"{measure}_mcse"])
    return Cell(f"({_number(err, digits)})" if np.isfinite(err) else "", numeric=True)


def value_cell(s: xr.Dataset, measure: str, digits: int, mcse: bool, parts: Sequence[str],
               notes: Footnotes) -> Cell:
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
