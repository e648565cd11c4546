"""The cells of a table's body: footnote marks, rounding, values with their MCSE, and which notes explain a
missing value."""

from __future__ import annotations

import numpy as np
import xarray as xr

from simstudy.output.tables.cells import DASH, Footnotes, mcse_cell, not_estimable_cell, note_parts, value_cell


def row(**values: float | str) -> xr.Dataset:
    """One row of a summary: scalar variables."""
    return xr.Dataset({k: ((), v) for k, v in values.items()})


def test_footnote_marks_run_a_to_z_then_aa_and_are_given_once_per_text():
    notes = Footnotes()
    marks = [notes.mark(f"note {k}") for k in range(28)]
    assert marks[:3] == ["a", "b", "c"] and marks[25:] == ["z", "aa", "ab"]
    assert notes.mark("note 1") == "b"
    assert notes.marks(["note 2", "note 2", "note 0"]) == ("c", "a")
    assert notes.items()[:2] == (("a", "note 0"), ("b", "note 1"))


def test_values_round_with_their_mcse_and_without_a_minus_zero():
    notes = Footnotes()
    s = row(bias=-0.0001, bias_mcse=0.01234, n_valid=97.0)
    assert value_cell(s, "bias", 3, True, [], notes).text == "0.000 (0.012)"
    assert value_cell(s, "bias", 2, False, [], notes).text == "0.00"
    assert value_cell(s, "n_valid", 3, True, [], notes).text == "97"  # a count: a whole number
    assert mcse_cell(s, "bias", 4).text == "(0.0123)"
    assert mcse_cell(s, "n_valid", 4).text == ""
    assert value_cell(s, "bias", 3, True, [], notes).numeric


def test_a_missing_value_is_a_dash_with_the_notes_that_explain_it():
    notes = Footnotes()
    parts = note_parts(row(note="no standard errors: estimate-only measures; not reported by this estimator; "
                                "rel_bias undefined: true value is 0"))
    assert parts == ["no standard errors: estimate-only measures", "rel_bias undefined: true value is 0"]
    s = row(coverage=np.nan, rel_bias=np.nan, bias=np.nan)
    coverage = value_cell(s, "coverage", 3, True, parts, notes)
    assert (coverage.text, coverage.marks) == (DASH, ("a",))  # no SEs: no coverage
    assert value_cell(s, "rel_bias", 3, True, parts, notes).marks == ("b",)  # the note that names it
    assert value_cell(s, "bias", 3, True, parts, notes).marks == ()  # neither note concerns the bias


def test_not_estimable_spans_the_columns_with_its_reason():
    notes = Footnotes()
    cell = not_estimable_cell(["not estimable: treat is collinear with g"], 3, notes)
    assert (cell.text, cell.span, cell.center, cell.marks) == ("not estimable", 3, True, ("a",))
    assert notes.items() == (("a", "not estimable: treat is collinear with g"),)
