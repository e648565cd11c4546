"""plot_performance: a measure against one factor, a line per estimator, MCSE error bars, facets."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from matplotlib.collections import LineCollection
from matplotlib.container import ErrorbarContainer

from simstudy.output.plots import plot_performance
from simstudy.output.plots.performance import plot_performance as direct
from support import CLUSTER_TRIAL_METHODS as METHODS
from support import errorbar_lines as method_lines

REPS = 40  # replicates per cell of the shared run (conftest.py)


def errorbars(ax):
    return [c for c in ax.containers if isinstance(c, ErrorbarContainer)]


def by_gid(ax, gid):
    return [a for a in [*ax.lines, *ax.collections, *ax.patches] if a.get_gid() == gid]


def row_labels(ax):
    return [t.get_text() for t in ax.texts if t.get_gid() == "row_label"]


def test_exported_from_the_package():
    assert plot_performance is direct


def test_coverage_facets_lines_errorbars_and_labels(summary):
    fig = plot_performance(summary, measure="coverage", x="n_groups", param="treat")
    axes = fig.axes
    assert len(axes) == 4  # group_size (rows) x icc (columns)
    for ax in axes:
        assert len(method_lines(ax)) == len(METHODS)
        bars = errorbars(ax)
        assert len(bars) == len(METHODS)
        for bar in bars:
            assert bar.has_yerr
            (segments,) = bar.lines[2]
            assert isinstance(segments, LineCollection)
            assert len(segments.get_segments()) == summary.sizes["n_groups"]
    # facets labelled as a table: the column factor above the top row, the row factor right of the last column
    assert [ax.get_title() for ax in axes] == ["icc = 0.05", "icc = 0.2", "", ""]
    assert row_labels(axes[1]) == ["group size = 5"] and row_labels(axes[3]) == ["group size = 10"]
    assert row_labels(axes[0]) == row_labels(axes[2]) == []
    assert fig.get_supxlabel() == "n groups" and fig.get_supylabel() == "Coverage"
    bottom_left = axes[2]
    assert bottom_left.get_xscale() == "linear"  # to scale, ticks at the levels
    assert [t.get_text() for t in bottom_left.get_xticklabels()] == ["6", "20"]
    assert fig.get_suptitle() == ""  # no title by default
    titled = plot_performance(summary, measure="coverage", x="n_groups", param="treat", title=True)
    assert "treatment effect = 0.3" in titled.get_suptitle()  # held-fixed factor named in the title
    legend_labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend_labels[: len(METHODS)] == METHODS


def test_rows_and_columns_follow_the_design(summary):
    fig = plot_performance(summary, measure="coverage", param="treat")
    assert [ax.get_title() for ax in fig.axes[:2]] == ["icc = 0.05", "icc = 0.2"]
    assert [row_labels(fig.axes[k]) for k in (1, 3)] == [["group size = 5"], ["group size = 10"]]
    swapped = plot_performance(summary, measure="coverage", param="treat", row="icc", col="group_size")
    assert swapped.axes[1].get_title() == "group size = 10"
    assert row_labels(swapped.axes[1]) == ["icc = 0.05"]


def test_points_and_error_bars_are_the_summary_values(summary):
    fig = plot_performance(summary, measure="coverage", param="treat")
    ax = fig.axes[3]  # group_size=10, icc=0.2
    cell = summary.sel({"param": "treat"}).isel(group_size=1, icc=1, treatment_effect=0)
    for line, bar in zip(method_lines(ax), errorbars(ax)):
        one = cell.sel({"estimator": line.get_label()})
        np.testing.assert_allclose(line.get_ydata(), one["coverage"].values)
        spans = np.array([seg[1, 1] - seg[0, 1] for seg in bar.lines[2][0].get_segments()])
        np.testing.assert_allclose(spans, 2 * 1.959964 * one["coverage_mcse"].values, rtol=1e-5)


def test_nominal_line_and_monte_carlo_band(summary):
    fig = plot_performance(summary, measure="coverage", param="treat")
    for ax in fig.axes:
        (nominal,) = by_gid(ax, "nominal")
        np.testing.assert_allclose(nominal.get_ydata(), [0.95, 0.95])
        (band,) = by_gid(ax, "mc_band")
        ys = np.concatenate([p.vertices[:, 1] for p in band.get_paths()])
        half = 1.959964 * np.sqrt(0.95 * 0.05 / REPS)
        np.testing.assert_allclose([ys.min(), ys.max()], [0.95 - half, 0.95 + half], rtol=1e-5)


def test_level_option_moves_the_nominal_line(summary):
    fig = plot_performance(summary, measure="coverage", param="treat", level=0.9)
    (nominal,) = by_gid(fig.axes[0], "nominal")
    np.testing.assert_allclose(nominal.get_ydata(), [0.9, 0.9])


def test_bias_has_a_zero_line_and_no_nominal(summary):
    fig = plot_performance(summary, measure="bias", param="treat")
    ax = fig.axes[0]
    assert by_gid(ax, "nominal") == [] and by_gid(ax, "mc_band") == []
    (zero,) = by_gid(ax, "reference")
    np.testing.assert_allclose(zero.get_ydata(), [0, 0])
    assert plot_performance(summary, measure="bias", param="treat").get_supylabel() == "Bias"


def test_rmse_and_power_have_no_reference_line(summary):
    for measure in ("rmse", "power"):
        ax = plot_performance(summary, measure=measure, param="treat").axes[0]
        assert not by_gid(ax, "reference") and not by_gid(ax, "nominal")
        assert len(method_lines(ax)) == len(METHODS)


def test_se_draws_empirical_solid_and_model_dashed(summary):
    fig = plot_performance(summary, measure="se", param="treat")
    ax = fig.axes[0]
    solid = [line for line in ax.lines if line.get_gid() == "emp_se"]
    dashed = [line for line in ax.lines if line.get_gid() == "model_se"]
    assert method_lines(ax) == solid
    assert len(solid) == len(dashed) == len(METHODS)
    assert len(errorbars(ax)) == 2 * len(METHODS)
    cell = summary.sel({"param": "treat"}).isel(group_size=0, icc=0, treatment_effect=0)
    for k, m in enumerate(METHODS):
        np.testing.assert_allclose(solid[k].get_ydata(), cell.sel({"estimator": m})["emp_se"].values)
        np.testing.assert_allclose(dashed[k].get_ydata(), cell.sel({"estimator": m})["model_se"].values)
    assert fig.get_supylabel() == "Standard error"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "Empirical SE" in legend and "Model SE" in legend


def test_select_holds_a_factor_and_names_it(summary):
    fig = plot_performance(summary, measure="coverage", param="treat", select={"icc": 0.2})
    assert len(fig.axes) == 2
    titled = plot_performance(summary, measure="coverage", param="treat", select={"icc": 0.2}, title=True)
    assert "icc = 0.2" in titled.get_suptitle()


def test_methods_subset_and_no_error_bars(summary):
    fig = plot_performance(summary, param="treat", estimators=["ols", "lmm"], mcse=False)
    ax = fig.axes[0]
    assert [line.get_label() for line in method_lines(ax)] == ["ols", "lmm"]
    assert all(not bar.has_yerr for bar in errorbars(ax))


def test_default_param_is_the_featured_one(summary):
    fig = plot_performance(summary, title=True)
    assert "of treat" in fig.get_suptitle()


def test_method_without_values_is_left_out(summary):
    # OLS estimates no variance of the group effect
    ax = plot_performance(summary, measure="bias", param="var(group)").axes[0]
    assert sorted(line.get_label() for line in method_lines(ax)) == ["lmm", "lmm_t"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"measure": "cover"}, "unknown measure 'cover'"),
        ({"x": "clusters"}, "unknown factor 'clusters'"),
        ({"param": "beta"}, "unknown param 'beta'"),
        ({"estimators": ["gee"]}, "unknown estimator 'gee'"),
        ({"row": "n_groups"}, "already on the x axis"),
        ({"select": {"icc": 0.3}}, "not a level of icc"),
        ({"measure": "coverage", "param": "var(group)"}, "nothing to draw"),
    ],
)
def test_bad_options_raise_one_clear_line(summary, kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        plot_performance(summary, **kwargs)
    assert "\n" not in str(info.value)


def test_too_many_factors_for_facets(summary):
    other = summary.assign_coords(treatment_effect=[0.5])
    four = xr.concat([summary, other], dim="treatment_effect")
    with pytest.raises(ValueError, match="too many factors vary"):
        plot_performance(four, param="treat")
    fig = plot_performance(four, param="treat", select={"treatment_effect": 0.5})
    assert len(fig.axes) == 4


def test_estimates_dataset_is_refused(estimates):
    with pytest.raises(ValueError, match="summary"):
        plot_performance(estimates)
