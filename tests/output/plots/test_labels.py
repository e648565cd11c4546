"""Readable names on the figures: defaults, the study's labels, no titles unless asked for; and the text
helpers that wrap labels to the room there is."""

from __future__ import annotations

import json

import matplotlib as mpl

from simstudy.output.plots import (
    STYLE,
    plot_failures,
    plot_forest,
    plot_heatmap,
    plot_nested_loop,
    plot_performance,
    plot_power,
    plot_zip,
)
from simstudy.output.plots.labels import MEASURE_LABELS, cell_text, factor_label, label, text_width, wrap
from simstudy.output.tables import MEASURE_LABELS as TABLE_LABELS

CELL = {"n_groups": 6, "group_size": 5, "icc": 0.2}


def test_default_labels_are_readable(summary):
    fig = plot_performance(summary, measure="coverage", param="treat", select={"icc": 0.2})
    assert fig.get_supxlabel() == "n groups"
    assert fig.axes[0].get_ylabel() == "Coverage"
    assert [ax.get_title() for ax in fig.axes] == ["group size = 5", "group size = 10"]
    for measure, text in (("bias", "Bias"), ("emp_se", "Empirical SE"),
                          ("rel_error", "Relative error of model SE (%)")):
        fig = plot_performance(summary, measure=measure, param="treat", select={"icc": 0.2, "group_size": 5})
        assert fig.axes[0].get_ylabel().replace("\n", " ") == text  # wrapped to the height of the axes


def test_the_studys_labels_name_factors_estimators_params_and_measures(summary, variants):
    labels = {"icc": "ICC", "n_groups": "Number of clusters", "lmm_t": "LMM, t (between-within df)",
              "treat": "treatment effect", "coverage": "Coverage of 95% CI"}
    named = variants.with_labels(summary, labels)
    fig = plot_performance(named, param="treat", select={"group_size": 5}, title=True)
    assert [ax.get_title() for ax in fig.axes] == ["ICC = 0.05", "ICC = 0.2"]
    assert fig.get_supxlabel() == "Number of clusters" and fig.axes[0].get_ylabel() == "Coverage of 95% CI"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:4] == ["ols", "ols_cluster", "lmm", "LMM, t (between-within df)"]
    assert "treatment effect" in fig.get_suptitle() and "group size = 5" in fig.get_suptitle()
    nested = plot_nested_loop(named, param="treat")
    assert "ICC: 0.05, 0.2" in [t.get_text() for t in nested.axes[1].get_yticklabels()]
    failures = plot_failures(named)
    assert failures.axes[0].get_yticklabels()[0].get_text() == "Number of clusters = 6, group size = 5, ICC = 0.05"
    assert "LMM, t (between-within df)" in [t.get_text() for t in failures.axes[0].get_xticklabels()]
    forest = plot_forest(named, param="treat")
    assert forest.axes[0].get_yticklabels()[-1].get_text() == "Number of clusters = 20, group size = 10, ICC = 0.2"


def test_no_titles_inside_figures_by_default(summary, estimates):
    figures = [plot_performance(summary), plot_power(summary), plot_nested_loop(summary), plot_failures(summary),
               plot_forest(summary), plot_heatmap(summary, select={"group_size": 5}),
               plot_zip(estimates, cell=CELL)]
    assert [fig.get_suptitle() for fig in figures] == [""] * len(figures)
    assert plot_power(summary, title="Figure 2").get_suptitle() == "Figure 2"


def test_labels_of_names_and_cells(summary):
    named = summary.copy()
    named.attrs = {**summary.attrs, "labels": json.dumps({"icc": "ICC", "lmm": "LMM", "bias": "Mean error"})}
    assert label(named, "lmm") == "LMM" and label(named, "bias") == "Mean error"
    assert label(summary, "emp_se") == "Empirical SE" and label(summary, "treat") == "treat"
    assert factor_label(summary, "group_size") == "group size" and factor_label(named, "icc") == "ICC"
    assert cell_text(named, {"n_groups": 6, "icc": 0.2}) == "n groups = 6, ICC = 0.2"


def test_the_measures_are_named_as_in_the_tables_but_where_a_figure_needs_more():
    differ = {m for m in MEASURE_LABELS if TABLE_LABELS.get(m) != MEASURE_LABELS[m]}
    assert differ == {"rel_error", "se"}
    assert MEASURE_LABELS["rel_error"] == "Relative error of model SE (%)"


def test_wrap_breaks_at_spaces_and_keeps_a_level_with_its_factor():
    with mpl.rc_context(STYLE):
        text = "Number of clusters randomised per trial, ICC = 0.2"
        lines = wrap(text, 1.2, 8.0).split("\n")
        assert len(lines) > 1 and " ".join(lines) == text
        assert all(text_width(line, 8.0) <= 1.2 for line in lines if " " in line)
        assert any(line.endswith("ICC = 0.2") for line in lines)  # "ICC = 0.2" stays on one line
        assert wrap("short", 1.2, 8.0) == "short"
