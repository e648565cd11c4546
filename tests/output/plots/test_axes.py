"""The x axis of a design factor: to scale (log for geometric levels) or as categories, estimators dodged,
ticks at the levels when they fit and round numbers that never run together when they do not."""

from __future__ import annotations

import numpy as np
import pytest

from simstudy.output.plots import plot_performance, plot_power
from simstudy.output.plots.axes import dodge, edges, limits, positions, x_scale
from support import errorbar_lines


def visible_ticks(fig, ax):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.canvas.draw()
    lo, hi = ax.get_xlim()
    return [float(t) for t in ax.get_xticks() if lo <= t <= hi], [t.get_text() for t in ax.get_xticklabels()
                                                                   if t.get_text()]


def test_numeric_factor_to_scale_with_the_levels_as_ticks_when_few(summary, variants):
    fig = plot_power(summary, param="treat")
    ticks, labels = visible_ticks(fig, fig.axes[2])  # bottom left: the panels share x
    assert ticks == [6, 20] and labels == ["6", "20"]
    assert fig.axes[0].get_xscale() == "linear"


def test_many_levels_get_round_ticks_that_do_not_overlap(summary, variants, check_layout):
    # defect: tick labels of power curves ran together ("61014182226")
    many = variants.widen(summary, "n_groups", list(range(6, 40, 4)))
    fig = check_layout(plot_power(many, param="treat"))
    ticks, _ = visible_ticks(fig, fig.axes[2])
    assert len(ticks) < 9 and all(t == round(t) for t in ticks)
    line = errorbar_lines(fig.axes[0])[0]
    assert len(line.get_xdata()) == 9  # every level is still drawn


def test_geometric_levels_on_a_log_axis(summary, variants, check_layout):
    geometric = variants.widen(summary, "n_groups", [5, 10, 20, 40, 80])
    fig = check_layout(plot_performance(geometric, param="treat", select={"icc": 0.2, "group_size": 5}))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    ticks, labels = visible_ticks(fig, ax)
    assert ticks == [5, 10, 20, 40, 80] and labels == ["5", "10", "20", "40", "80"]
    even = plot_performance(geometric, param="treat", select={"icc": 0.2, "group_size": 5}, xscale="category")
    assert even.axes[0].get_xscale() == "linear"
    np.testing.assert_allclose(sorted(errorbar_lines(even.axes[0])[0].get_xdata()), np.arange(5), atol=0.2)
    with pytest.raises(ValueError, match="xscale must be one of"):
        plot_performance(summary, xscale="sqrt")


def test_the_scale_of_a_factor(summary, variants):
    assert x_scale(summary, "n_groups", "auto") == "linear"  # two levels: no geometric sequence to see
    geometric = variants.widen(summary, "n_groups", [5, 10, 20, 40, 80])
    assert x_scale(geometric, "n_groups", "auto") == "log"
    assert x_scale(variants.widen(summary, "n_groups", [5, 10, 15, 20]), "n_groups", "auto") == "linear"
    assert x_scale(geometric, "n_groups", "category") == "category"
    words = summary.assign_coords(icc=["small", "large"])
    assert x_scale(words, "icc", "auto") == "category"
    with pytest.raises(ValueError, match="is not numeric"):
        x_scale(words, "icc", "log")
    np.testing.assert_array_equal(positions(words, "icc", "category"), [0.0, 1.0])


def test_dodge_limits_and_edges():
    pos = np.array([5.0, 10.0, 20.0])
    shifted = dodge(pos, 3, "linear")
    np.testing.assert_allclose(shifted[1], pos)  # the middle estimator stays on the level
    assert np.all(shifted[0] < pos) and np.all(shifted[2] > pos)
    assert np.max(np.abs(shifted[2] - pos)) <= 0.24 * 5 / 2
    assert dodge(pos, 1, "linear")[0] is pos
    lo, hi = limits(pos, "linear")
    assert lo == pytest.approx(5 - 0.08 * 15) and hi == pytest.approx(20 + 0.08 * 15)
    np.testing.assert_allclose(edges(pos, "linear", (lo, hi)), [lo, 7.5, 15.0, hi])
    np.testing.assert_allclose(edges(pos, "log", (4.0, 25.0))[1:3], [np.sqrt(50), np.sqrt(200)])
    assert limits(np.array([0.0, 1.0]), "category") == (-0.5, 1.5)
