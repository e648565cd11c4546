"""Readable names in a table and its caption."""

from __future__ import annotations

from simstudy.output.tables.captions import (
    caption_text,
    factor_label,
    measure_label,
    merged_labels,
    nominal_level,
)


def test_labels_come_from_the_study_then_the_defaults(summary):
    names = merged_labels(summary, {"icc": "ICC"})
    assert names["icc"] == "ICC" and names["lmm"] == "LMM (REML)"  # given, and the summary's own
    assert factor_label("group_size", names) == "group size"
    assert measure_label("emp_se", names) == "Empirical SE"
    assert measure_label("emp_se", {"emp_se": "SD of estimates"}) == "SD of estimates"


def test_the_caption_says_what_the_table_holds_and_what_is_held_fixed(summary):
    names = merged_labels(summary, None)
    text = caption_text(summary, ["bias", "coverage"], names, "long", "inline", True, ["treat"], {"group_size": 5},
                        None)
    assert text == ("Performance of the estimators for Treatment effect: estimate (Monte Carlo SE). Held fixed: "
                    "group size = 5. Intervals: nominal 95%. Valid/reps: replicates with an estimate and its SE, "
                    "of those run.")
    text = caption_text(summary, ["emp_se", "power"], names, "by_estimator", "", False, ["treat", "var(g)"], {},
                        None)
    assert text.startswith("Empirical SE and power for Treatment effect and var(g), by estimator. ")
    assert text.endswith("power is the share of intervals that exclude 0.")
    assert caption_text(summary, ["bias"], names, "long", "", False, ["treat"], {}, "My table") == "My table."


def test_the_nominal_level_defaults_to_95_percent(summary):
    assert nominal_level(summary) == 0.95
    summary.attrs["level"] = "not a number"
    assert nominal_level(summary) == 0.95
    summary.attrs["level"] = 0.9
    assert nominal_level(summary) == 0.9
