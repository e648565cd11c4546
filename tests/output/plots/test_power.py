"""plot_power: power curves against the number of groups with the target power line."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer

from simstudy.output.plots import plot_power
from support import CLUSTER_TRIAL_METHODS as METHODS
from support import errorbar_lines as method_lines


def test_curves_against_number_of_groups(summary):
    fig = plot_power(summary, param="treat")
    assert len(fig.axes) == 4
    for ax in fig.axes:
        lines = method_lines(ax)
        assert len(lines) == len(METHODS)
        for line in lines:  # x to scale at the design's numbers of groups (estimators slightly shifted)
            np.testing.assert_allclose(line.get_xdata(), [6, 20], atol=0.5)
        bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        assert len(bars) == len(METHODS) and all(b.has_yerr for b in bars)
        assert ax.get_ylim() == pytest.approx((-0.02, 1.02))
    assert fig.get_supxlabel() == "n groups" and fig.get_supylabel() == "Power"
    assert fig.get_suptitle() == ""
    assert "treat" in plot_power(summary, param="treat", title=True).get_suptitle()


def test_values_are_the_summary_power(summary):
    fig = plot_power(summary, param="treat")
    cell = summary.sel({"param": "treat"}).isel(group_size=0, icc=1, treatment_effect=0)
    for line in method_lines(fig.axes[1]):
        np.testing.assert_allclose(line.get_ydata(), cell.sel({"estimator": line.get_label()})["power"].values)


def test_target_line(summary):
    ax = plot_power(summary, param="treat", target=0.9).axes[0]
    (target,) = [line for line in ax.lines if line.get_gid() == "target"]
    np.testing.assert_allclose(target.get_ydata(), [0.9, 0.9])
    none = plot_power(summary, param="treat", target=None).axes[0]
    assert not [line for line in none.lines if line.get_gid() == "target"]


def test_other_x_and_facets(summary):
    fig = plot_power(summary, param="treat", x="group_size", select={"icc": 0.05})
    assert len(fig.axes) == 2  # n_groups in columns
    assert fig.get_supxlabel() == "group size"
    assert fig.axes[0].get_title() == "n groups = 6"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target": 1.5}, "target power"),
        ({"x": "arms"}, "unknown factor 'arms'"),
        ({"param": "slope"}, "unknown param 'slope'"),
        ({"param": "var(group)"}, "nothing to draw"),
    ],
)
def test_bad_options(summary, kwargs, message):
    with pytest.raises(ValueError, match=message):
        plot_power(summary, **kwargs)


def test_non_numeric_factor_is_refused(summary):
    labelled = summary.assign_coords(icc=["low", "high"])
    with pytest.raises(ValueError, match="not numeric"):
        plot_power(labelled, x="icc", param="treat")


def test_error_bars_are_the_exact_intervals(summary):
    fig = plot_power(summary, param="treat")
    cell = summary.sel({"param": "treat"}).isel(group_size=0, icc=1, treatment_effect=0)
    ax = fig.axes[1]
    for bar in [c for c in ax.containers if isinstance(c, ErrorbarContainer)]:
        one = cell.sel({"estimator": bar.get_label()})
        segments = bar.lines[2][0].get_segments()
        lows = [min(s[:, 1]) for s in segments]
        highs = [max(s[:, 1]) for s in segments]
        np.testing.assert_allclose(lows, one["power_lower"].values, atol=1e-12)
        np.testing.assert_allclose(highs, one["power_upper"].values, atol=1e-12)
    mcse = plot_power(summary, param="treat", interval="mcse").axes[1]
    bar = [c for c in mcse.containers if isinstance(c, ErrorbarContainer)][0]
    seg = bar.lines[2][0].get_segments()[0]
    one = cell.sel({"estimator": bar.get_label()})
    assert (max(seg[:, 1]) - min(seg[:, 1])) / 2 == pytest.approx(1.959963984540054 * float(one["power_mcse"][0]))
