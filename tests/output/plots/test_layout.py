"""No clipped or overlapping text, for every figure kind: drawn on Agg, every text inside the figure.

Defects this guards against: single-panel figures that clipped their titles on both sides, a zip plot
whose legend ran off the figure, power-curve tick labels that ran together ("61014182226"), facet titles
of long labels that ran into each other. Each kind is checked as it comes, with one panel, with six
estimators and long labels, and with many facets or levels.
"""

from __future__ import annotations

import pytest

from simstudy.output.plots import (
    plot_bland_altman,
    plot_estimates,
    plot_failures,
    plot_forest,
    plot_heatmap,
    plot_nested_loop,
    plot_performance,
    plot_power,
    plot_zip,
)

CELL = {"n_groups": 6, "group_size": 5, "icc": 0.2}
ONE_PANEL = {"icc": 0.2, "group_size": 5}


def long(v, ds):
    """Six estimators and the long labels."""
    return v.with_labels(v.six_estimators(ds), v.LONG_LABELS)


CASES = {
    # kind: (which dataset, how to draw it)
    "performance": ("summary", lambda ds, v: plot_performance(ds, param="treat")),
    "performance one panel, titled": ("summary", lambda ds, v: plot_performance(
        ds, param="treat", select=ONE_PANEL, title=True)),
    "performance long labels": ("summary", lambda ds, v: plot_performance(long(v, ds), param="treat")),
    "performance long labels, one panel, titled": ("summary", lambda ds, v: plot_performance(
        long(v, ds), param="treat", select=ONE_PANEL, title=True)),
    "performance many facets": ("summary", lambda ds, v: plot_performance(v.widen(v.widen(
        ds, "icc", [0.01, 0.02, 0.05, 0.1, 0.2]), "group_size", [2, 5, 10, 20]), param="treat")),
    "performance categories with long names": ("summary", lambda ds, v: plot_performance(ds.assign_coords(
        icc=["small between-cluster variance", "large between-cluster variance"]), x="icc", param="treat")),
    "se": ("summary", lambda ds, v: plot_performance(ds, measure="se", param="treat")),
    "se long labels": ("summary", lambda ds, v: plot_performance(long(v, ds), measure="se", param="treat",
                                                                 select={"icc": 0.2})),
    "bias one panel": ("summary", lambda ds, v: plot_performance(ds, measure="bias", param="treat",
                                                                 select=ONE_PANEL)),
    "power": ("summary", lambda ds, v: plot_power(ds, param="treat", title=True)),
    "power many levels": ("summary", lambda ds, v: plot_power(v.widen(ds, "n_groups", list(range(6, 40, 4))),
                                                              param="treat")),
    "power geometric levels": ("summary", lambda ds, v: plot_power(v.widen(ds, "n_groups", [4, 8, 16, 32, 64,
                                                                                          128, 256]), param="treat")),
    "power long labels": ("summary", lambda ds, v: plot_power(long(v, ds), param="treat")),
    "nested loop": ("summary", lambda ds, v: plot_nested_loop(ds, param="treat", title=True)),
    "nested loop long labels": ("summary", lambda ds, v: plot_nested_loop(long(v, ds), param="treat")),
    "nested loop many cells": ("summary", lambda ds, v: plot_nested_loop(v.widen(ds, "n_groups", list(range(
        4, 40, 3))), param="treat")),
    "zip": ("estimates", lambda ds, v: plot_zip(ds, cell=CELL, param="treat", title=True)),
    "zip one estimator": ("estimates", lambda ds, v: plot_zip(ds, cell=CELL, param="treat", estimators=["lmm"])),
    "zip long labels": ("estimates", lambda ds, v: plot_zip(long(v, ds), cell=CELL, param="treat")),
    "failures": ("summary", lambda ds, v: plot_failures(ds, title=True)),
    "failures long labels": ("summary", lambda ds, v: plot_failures(long(v, ds))),
    "forest": ("summary", lambda ds, v: plot_forest(ds, param="treat", title=True)),
    "forest long labels": ("summary", lambda ds, v: plot_forest(long(v, ds), measure="coverage", param="treat")),
    "forest facets, lolly": ("summary", lambda ds, v: plot_forest(long(v, ds), param="treat", layout="facet",
                                                                  lolly=True)),
    "forest one cell": ("summary", lambda ds, v: plot_forest(ds, param="treat", select=CELL)),
    "heat map": ("summary", lambda ds, v: plot_heatmap(ds, param="treat", select={"group_size": 5}, mcse=True,
                                                       title=True)),
    "heat map long labels": ("summary", lambda ds, v: plot_heatmap(long(v, ds), measure="coverage",
                                                                   param="treat", select={"group_size": 5})),
    "heat map many levels": ("summary", lambda ds, v: plot_heatmap(v.widen(v.widen(ds, "n_groups", list(range(
        4, 40, 3))), "icc", [0.01, 0.02, 0.05, 0.1, 0.2, 0.3]), param="treat", select={"group_size": 5})),
    "estimates": ("estimates", lambda ds, v: plot_estimates(ds, cell=CELL, param="treat", title=True)),
    "estimates long labels": ("estimates", lambda ds, v: plot_estimates(long(v, ds), cell=CELL, param="treat",
                                                                        estimators=["ols_cluster", "bayes"])),
    "estimates se": ("estimates", lambda ds, v: plot_estimates(ds, cell=CELL, param="treat", what="se",
                                                               estimators=["ols", "lmm"])),
    "bland-altman": ("estimates", lambda ds, v: plot_bland_altman(ds, cell=CELL, param="treat",
                                                                  estimators=["ols", "lmm"], title=True)),
    "bland-altman identical": ("estimates", lambda ds, v: plot_bland_altman(ds, cell=CELL, param="treat")),
    "bland-altman long labels": ("estimates", lambda ds, v: plot_bland_altman(long(v, ds), cell=CELL,
                                                                              param="treat",
                                                                              estimators=["lmm_t", "bayes"])),
}


@pytest.mark.parametrize("case", list(CASES))
def test_no_text_is_clipped_or_overlaps(case, summary, estimates, variants, check_layout):
    data, draw = CASES[case]
    fig = draw(summary if data == "summary" else estimates, variants)
    check_layout(fig)


def test_every_figure_kind_is_checked():
    from simstudy.output.results import PLOTS

    names = {"performance": "performance", "nested_loop": "nested loop", "power": "power", "failures": "failures",
             "zip": "zip", "forest": "forest", "heatmap": "heat map", "estimates": "estimates",
             "bland_altman": "bland-altman"}
    assert set(PLOTS) == set(names)
    assert all(name in CASES for name in names.values())


def test_the_check_finds_clipped_and_overlapping_text(summary, variants):
    # the checker itself: a title wider than the figure, tick labels on top of each other
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2), layout="constrained")
    ax = fig.subplots()
    ax.set_title("a title far too long to fit above one small panel of two inches")
    ax.set_xticks([0, 0.01, 0.02], ["61014", "182226", "3034"])
    problems = variants.layout_problems(fig)
    assert any("clipped" in p and "title" in p for p in problems)
    assert any("overlaps" in p and "tick" in p for p in problems)
