"""plot_heatmap: a measure over two factors, a panel per estimator, a diverging map centred on the target."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from simstudy.output.plots import plot_heatmap
from support import CLUSTER_TRIAL_METHODS as METHODS


def images(fig):
    return [ax.images[0] for ax in fig.axes if ax.images]


def test_one_image_per_estimator_with_the_measure(summary):
    fig = plot_heatmap(summary, measure="bias", param="treat", select={"group_size": 5})
    found = images(fig)
    assert [im.get_gid() for im in found] == METHODS
    cell = summary.sel({"param": "treat"}).isel(group_size=0, treatment_effect=0)
    for im, m in zip(found, METHODS):
        expected = cell["bias"].sel({"estimator": m}).transpose("icc", "n_groups").values  # y up, x across
        np.testing.assert_allclose(np.asarray(im.get_array()), expected)
        assert im.origin == "lower"
    ax = found[0].axes
    assert ax.get_title() == "ols"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["6", "20"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0.05", "0.2"]
    assert fig.get_supxlabel() == "n groups" and ax.get_ylabel() == "icc"  # once for the row of panels
    # one colour scale, diverging and centred on the target (0) with equal reach both ways
    norms = {(im.norm.vmin, im.norm.vmax) for im in found}
    assert len(norms) == 1
    vmin, vmax = norms.pop()
    assert vmin == pytest.approx(-vmax)
    assert vmax == pytest.approx(float(np.abs(cell["bias"].values).max()))
    assert found[0].get_cmap().name == "RdBu_r"
    (bar,) = [ax for ax in fig.axes if ax.get_gid() == "colorbar"]
    assert bar.get_ylabel() == "Bias"


def test_annotations_with_and_without_mcse(summary):
    fig = plot_heatmap(summary, measure="bias", param="treat", select={"group_size": 5}, digits=3)
    ax = images(fig)[0].axes
    values = [t for t in ax.texts if t.get_gid() == "value"]
    assert len(values) == 4
    cell = summary.sel({"param": "treat", "estimator": "ols"}).isel(group_size=0, treatment_effect=0)
    first = float(cell["bias"].transpose("icc", "n_groups").values[0, 0])
    assert values[0].get_text() == f"{first:.3f}"
    with_mcse = plot_heatmap(summary, measure="bias", param="treat", select={"group_size": 5}, digits=3,
                             mcse=True)
    text = [t for t in images(with_mcse)[0].axes.texts if t.get_gid() == "value"][0].get_text()
    err = float(cell["bias_mcse"].transpose("icc", "n_groups").values[0, 0])
    assert text == f"{first:.3f}\n({err:.3f})"
    bare = plot_heatmap(summary, measure="bias", param="treat", select={"group_size": 5}, annotate=False)
    assert not [t for ax in bare.axes for t in ax.texts]


def test_coverage_centred_on_the_nominal_level_and_sequential_for_rmse(summary):
    fig = plot_heatmap(summary, measure="coverage", param="treat", select={"group_size": 10})
    im = images(fig)[0]
    assert (im.norm.vmin + im.norm.vmax) / 2 == pytest.approx(0.95)
    assert [t.get_text() for t in im.axes.texts][0].count(".") == 1 and len(im.axes.texts[0].get_text()) == 5
    rmse = images(plot_heatmap(summary, measure="rmse", param="treat", select={"group_size": 10}))[0]
    assert rmse.get_cmap().name == "viridis"
    assert rmse.norm.vmin == pytest.approx(float(summary["rmse"].sel({"param": "treat"}).isel(group_size=1).min()))


def test_chosen_axes_and_many_estimators_wrap(summary, variants):
    fig = plot_heatmap(variants.six_estimators(summary), measure="bias", param="treat", x="icc", y="group_size",
                       select={"n_groups": 20})
    found = images(fig)
    assert len(found) == 6
    assert np.asarray(found[0].get_array()).shape == (2, 2)
    assert found[-1].axes.get_xticklabels()[0].get_text() == "0.05"
    rows = {round(im.axes.get_position().y0, 3) for im in found}
    assert len(rows) == 2  # six panels in two rows


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "too many factors vary"),
    ({"select": {"group_size": 5, "icc": 0.2}}, "needs two factors"),
    ({"select": {"group_size": 5}, "x": "icc", "y": "icc"}, "two different factors"),
    ({"select": {"group_size": 5}, "measure": "coverage", "param": "var(group)"}, "nothing to draw"),
    ({"select": {"group_size": 5}, "center": "target"}, "center must be one of"),
])
def test_bad_options(summary, kwargs, message):
    with pytest.raises(ValueError, match=message):
        plot_heatmap(summary, **kwargs)


def test_a_fixed_factor_can_be_an_axis_if_asked(summary):
    one = summary.isel(icc=[0])
    fig = plot_heatmap(one, param="treat", x="n_groups", y="group_size")
    assert np.asarray(images(fig)[0].get_array()).shape == (2, 2)
    assert isinstance(one, xr.Dataset)
