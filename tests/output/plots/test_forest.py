"""plot_forest: a measure with its +-1.96 MCSE interval, one row per cell, per estimator; the lolly variant."""

from __future__ import annotations

import numpy as np
import pytest

from simstudy.output.plots import plot_forest
from support import CLUSTER_TRIAL_METHODS as METHODS

FACTORS = ["n_groups", "group_size", "icc"]


def by_gid(ax, gid):
    return [a for a in [*ax.lines, *ax.collections] if a.get_gid() == gid]


def values(summary, measure, param="treat"):
    return summary[measure].sel({"param": param}).isel(treatment_effect=0).transpose(*FACTORS, "estimator")


def test_points_and_intervals_are_the_measure_and_its_mcse(summary):
    fig = plot_forest(summary, measure="bias", param="treat")
    (ax,) = fig.axes
    bias, mcse = values(summary, "bias"), values(summary, "bias_mcse")
    rows = []
    for k, m in enumerate(METHODS):
        (points,) = by_gid(ax, f"value:{m}")
        (bars,) = by_gid(ax, f"mcse:{m}")
        np.testing.assert_allclose(points.get_xdata(), bias.values[..., k].ravel())
        segments = bars.get_segments()
        assert len(segments) == 8  # one interval per cell
        lo = np.array([s[0, 0] for s in segments])
        hi = np.array([s[1, 0] for s in segments])
        np.testing.assert_allclose((lo + hi) / 2, bias.values[..., k].ravel())
        np.testing.assert_allclose((hi - lo) / 2, 1.959964 * mcse.values[..., k].ravel(), rtol=1e-5)
        np.testing.assert_allclose([s[0, 1] for s in segments], points.get_ydata())  # interval at its point
        rows.append(points.get_ydata())
    rows = np.array(rows)
    # the first cell at the top, the estimators dodged within a row, in order
    assert np.all(np.diff(rows.mean(axis=0)) < 0)
    assert np.all(np.diff(rows, axis=0) < 0) and np.ptp(rows[:, 0]) < 1
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "n groups = 6, group size = 5, icc = 0.05" and len(labels) == 8
    (reference,) = by_gid(ax, "reference")
    np.testing.assert_allclose(reference.get_xdata(), [0, 0])
    assert ax.get_xlabel() == "Bias"
    assert [t.get_text() for t in fig.legends[0].get_texts()][:4] == METHODS


def test_coverage_has_the_nominal_level_as_reference(summary):
    ax = plot_forest(summary, measure="coverage", param="treat", level=0.9).axes[0]
    (reference,) = by_gid(ax, "reference")
    np.testing.assert_allclose(reference.get_xdata(), [0.9, 0.9])
    assert not by_gid(plot_forest(summary, measure="rmse", param="treat").axes[0], "reference")
    assert by_gid(plot_forest(summary, measure="rmse", param="treat", reference=0.1).axes[0], "reference")


def test_facets_one_panel_per_estimator_and_lolly_stems(summary):
    fig = plot_forest(summary, measure="bias", param="treat", layout="facet", lolly=True)
    assert [ax.get_title() for ax in fig.axes] == METHODS
    for ax, m in zip(fig.axes, METHODS):
        assert by_gid(ax, f"value:{m}") and not [a for a in ax.lines if str(a.get_gid()).startswith("value:")
                                                 and a.get_gid() != f"value:{m}"]
        (stems,) = by_gid(ax, f"stem:{m}")
        (points,) = by_gid(ax, f"value:{m}")
        starts = np.array([s[0, 0] for s in stems.get_segments()])
        ends = np.array([s[1, 0] for s in stems.get_segments()])
        np.testing.assert_allclose(starts, 0.0)  # from the target
        np.testing.assert_allclose(ends, points.get_xdata())  # to the value
    assert fig.get_supxlabel() == "Bias"


def test_select_and_estimators_without_values(summary):
    fig = plot_forest(summary, measure="bias", param="var(group)", select={"icc": 0.2})
    ax = fig.axes[0]
    assert len(ax.get_yticklabels()) == 4
    drawn = [a.get_gid()[6:] for a in ax.lines if str(a.get_gid()).startswith("value:")]
    assert drawn == ["lmm", "lmm_t"]  # OLS estimates no variance of the group effect


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"measure": "accuracy"}, "unknown measure 'accuracy'"),
    ({"layout": "grid"}, "layout must be one of"),
    ({"reference": "zero"}, "reference must be one of"),
    ({"measure": "coverage", "param": "var(group)"}, "nothing to draw"),
    ({"estimators": ["gee"]}, "unknown estimator 'gee'"),
])
def test_bad_options(summary, kwargs, message):
    with pytest.raises(ValueError, match=message):
        plot_forest(summary, **kwargs)


def test_estimates_dataset_is_refused(estimates):
    with pytest.raises(ValueError, match="summary"):
        plot_forest(estimates)
