"""Drawing helpers: the targets of the measures and their Monte Carlo band, lines per estimator, colours."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from simstudy.output.plots.draw import (
    Z95,
    cell_reps,
    contrast,
    draw_estimators,
    draw_reference,
    mc_halfwidth,
    target,
)


def test_targets_of_the_measures():
    assert target("bias", 0.95) == 0.0 and target("rel_error", 0.95) == 0.0
    assert target("coverage", 0.9) == 0.9 and target("rmse", 0.95) is None
    np.testing.assert_allclose(mc_halfwidth(0.95, np.array([100, 0])), [Z95 * np.sqrt(0.95 * 0.05 / 100), np.nan])


def test_the_reference_of_coverage_is_the_nominal_level_with_its_band(summary):
    ax = Figure().subplots()
    draw_reference(ax, summary, "coverage", np.array([0.0, 1.0, 2.0]), np.array([40.0, 10.0]), 0.95)
    assert {line.get_gid() for line in ax.lines} == {"nominal"}
    assert [c.get_gid() for c in ax.collections] == ["mc_band"]
    ax = Figure().subplots()
    draw_reference(ax, summary, "bias", np.array([0.0, 1.0]), np.array([40.0]), 0.95)
    assert [line.get_gid() for line in ax.lines] == ["reference"] and len(ax.collections) == 0


def test_one_line_per_estimator_with_a_value(summary):
    panel = summary.sel(param="treat").isel(group_size=0, icc=0, treatment_effect=0)
    ax = Figure().subplots()
    x = np.asarray(panel.coords["n_groups"].values, dtype=float)
    drawn = draw_estimators(ax, summary, panel, "coverage", "n_groups", [x, x], ["ols", "lmm"], mcse=True)
    assert drawn == 2 and [c.get_label() for c in ax.containers] == ["ols", "lmm"]
    assert cell_reps(panel, ["ols", "lmm"], ["n_groups"]).shape == (2,)


def test_text_on_a_colour_is_black_or_white():
    assert contrast((1.0, 1.0, 0.8)) == "black" and contrast((0.1, 0.1, 0.3)) == "white"
