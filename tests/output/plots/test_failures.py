"""plot_failures: failure, non-convergence and boundary rates per cell and estimator."""

from __future__ import annotations

import numpy as np
import pytest

from simstudy.output.plots import plot_failures
from support import CLUSTER_TRIAL_METHODS as METHODS

FACTORS = ["n_groups", "group_size", "icc"]


def heatmaps(fig):
    return [ax for ax in fig.axes if ax.images and ax.images[0].get_gid()]


def expected_rates(summary, kind):
    reps = summary["n_rep"].max("param").isel(treatment_effect=0).transpose(*FACTORS, "estimator")
    count = summary[kind].isel(treatment_effect=0).transpose(*FACTORS, "estimator")
    return (count / reps).values.reshape(8, len(METHODS))


def test_one_panel_per_kind_rates_per_cell_and_method(summary):
    fig = plot_failures(summary)
    axes = heatmaps(fig)
    assert [ax.images[0].get_gid() for ax in axes] == ["n_fit_failed", "n_nonconverged", "n_boundary"]
    assert len(fig.axes) == 3 + 1  # and the colour bar
    for ax in axes:
        kind = ax.images[0].get_gid()
        rates = np.asarray(ax.images[0].get_array())
        assert rates.shape == (8, len(METHODS))
        np.testing.assert_allclose(rates, expected_rates(summary, kind))
        assert [t.get_text() for t in ax.get_xticklabels()] == METHODS
        assert len(ax.texts) == 8 * len(METHODS)  # every square shows its count
    boundary = np.asarray(axes[2].images[0].get_array())
    assert boundary[:, :2].sum() == 0 and boundary[:, 2:].sum() > 0  # only the mixed models hit 0
    labels = [t.get_text() for t in axes[0].get_yticklabels()]
    assert labels[0] == "n groups = 6, group size = 5, icc = 0.05"  # readable, not variable names
    assert fig.get_suptitle() == ""  # no title by default: the caption belongs to the paper
    assert "treatment effect = 0.3" in plot_failures(summary, title=True).get_suptitle()


def test_counts_of_failed_fits_show_up(summary):
    broken = summary.copy(deep=True)
    broken["n_fit_failed"][dict(n_groups=0, group_size=0, icc=0, treatment_effect=0, estimator=1)] = 10
    ax = heatmaps(plot_failures(broken, kinds=["n_fit_failed"]))[0]
    rates = np.asarray(ax.images[0].get_array())
    assert rates[0, 1] == pytest.approx(10 / 40) and np.count_nonzero(rates) == 1
    assert "10" in [t.get_text() for t in ax.texts]


def test_failed_pairs_of_a_param_and_method_subset(summary):
    fig = plot_failures(summary, kinds="n_failed", param="var(group)", estimators=["ols", "lmm"])
    (ax,) = heatmaps(fig)
    rates = np.asarray(ax.images[0].get_array())
    assert rates.shape == (8, 2)
    np.testing.assert_allclose(rates[:, 0], 1.0)  # OLS never estimates var(group)
    assert "var(group)" in ax.get_title()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"kinds": ["n_crashed"]}, "unknown kind 'n_crashed'"), ({"kinds": []}, "kinds is empty"),
     ({"estimators": ["glm"]}, "unknown estimator 'glm'"), ({"select": {"cells": 1}}, "unknown factor 'cells'")],
)
def test_bad_options(summary, kwargs, message):
    with pytest.raises(ValueError, match=message):
        plot_failures(summary, **kwargs)
