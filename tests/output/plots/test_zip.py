"""plot_zip: every valid replicate's interval, ranked by |z|, coloured by whether it covers."""

from __future__ import annotations

import numpy as np
import pytest

from simstudy.output.plots import plot_zip
from support import CLUSTER_TRIAL_METHODS as METHODS

CELL = {"n_groups": 6, "group_size": 5, "icc": 0.2}


def collection(ax, gid):
    (found,) = [c for c in ax.collections if c.get_gid() == gid]
    return found.get_segments()


def visible(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def test_one_segment_per_valid_replicate(summary, estimates):
    fig = plot_zip(estimates, cell=CELL, param="treat")
    axes = visible(fig)
    assert len(axes) == len(METHODS)
    cell = summary.sel({"param": "treat"}).isel(n_groups=0, group_size=0, icc=1, treatment_effect=0)
    for ax, method in zip(axes, METHODS):
        one = cell.sel({"estimator": method})
        covers, misses = collection(ax, "covers"), collection(ax, "misses")
        assert len(covers) + len(misses) == int(one["n_valid"])
        # the share that covers is the summary's coverage (same intervals)
        assert len(covers) / int(one["n_valid"]) == pytest.approx(float(one["coverage"]))
        assert ax.get_title().startswith(method)
        assert "|z|" in ax.get_ylabel() or ax is not axes[0]
        assert "treat" in ax.get_xlabel()


def test_ranked_by_abs_z(estimates):
    fig = plot_zip(estimates, cell=CELL, param="treat")
    for ax in visible(fig):
        covers, misses = collection(ax, "covers"), collection(ax, "misses")
        heights = sorted([s[0, 1] for s in covers] + [s[0, 1] for s in misses])
        n = len(heights)
        np.testing.assert_allclose(heights, 100 * np.arange(1, n + 1) / n)  # fractional centiles
        if len(covers) and len(misses):  # Wald intervals: the misses are exactly the largest |z|
            assert max(s[0, 1] for s in covers) < min(s[0, 1] for s in misses)
        for seg in [*covers, *misses]:
            assert seg[0, 1] == seg[1, 1] and seg[0, 0] <= seg[1, 0]  # horizontal intervals


def test_truth_nominal_and_coverage_band(estimates):
    ax = visible(plot_zip(estimates, cell=CELL, param="treat"))[0]
    (true,) = [line for line in ax.lines if line.get_gid() == "true"]
    np.testing.assert_allclose(true.get_xdata(), [0.3, 0.3])
    (nominal,) = [line for line in ax.lines if line.get_gid() == "nominal"]
    np.testing.assert_allclose(nominal.get_ydata(), [95, 95])
    assert [p for p in ax.patches if p.get_gid() == "coverage_band"]


def test_stored_limits_and_method_subset(estimates):
    fig = plot_zip(estimates, cell=CELL, param="x", estimators=["ols", "lmm"], intervals="limits")
    axes = visible(fig)
    assert [ax.get_title().split("\n")[0] for ax in axes] == ["ols", "lmm"]
    valid = estimates.sel({"param": "x"}).isel(n_groups=0, group_size=0, icc=1, treatment_effect=0)
    for ax, method in zip(axes, ["ols", "lmm"]):
        r = valid.sel({"estimator": method})
        ok = np.isfinite(r["estimate"]) & np.isfinite(r["se"]) & np.isfinite(r["ci_lower"]) \
            & np.isfinite(r["ci_upper"])
        assert len(collection(ax, "covers")) + len(collection(ax, "misses")) == int(ok.sum())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"param": "treat"}, "choose a cell"),
        ({"cell": {**CELL, "n_groups": 7}, "param": "treat"}, "not a level of n_groups"),
        ({"cell": {**CELL, "arms": 2}, "param": "treat"}, "unknown factor 'arms'"),
        ({"cell": CELL, "param": "slope"}, "unknown param 'slope'"),
        ({"cell": CELL, "param": "var(group)"}, "no standard errors"),
        ({"cell": CELL, "intervals": "hpd"}, "intervals must be"),
    ],
)
def test_bad_options(estimates, kwargs, message):
    with pytest.raises(ValueError, match=message):
        plot_zip(estimates, **kwargs)


def test_summary_is_refused(summary):
    with pytest.raises(ValueError, match="estimates.nc"):
        plot_zip(summary, cell=CELL)
