"""Checking a plot's arguments and choosing its data: one clear line for what cannot be used."""

from __future__ import annotations

import re

import pytest

from simstudy.output.plots.checks import (
    cell_table,
    factors,
    fixed_levels,
    nominal_level,
    one_cell,
    paired,
    require_estimates,
    require_summary,
    resolve_estimators,
    resolve_pair,
    resolve_param,
    select_levels,
    varying,
)

CELL = {"n_groups": 6, "group_size": 5, "icc": 0.2}


def fails(message: str, call, *args, **kwargs) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        call(*args, **kwargs)
    assert "\n" not in str(info.value)


def test_the_datasets_each_plot_needs(summary, estimates):
    require_summary(summary, "plot_x")
    require_estimates(estimates, "plot_x")
    fails("plot_x needs the summary dataset (summary.nc), not the replicate-level estimates", require_summary,
          estimates, "plot_x")
    fails("plot_x needs the replicate-level estimates (estimates.nc)", require_estimates, summary, "plot_x")


def test_factors_parameters_and_estimators(summary):
    assert factors(summary) == ["n_groups", "group_size", "icc", "treatment_effect"]
    assert varying(summary) == ["n_groups", "group_size", "icc"]
    assert resolve_param(summary, None) == "treat"  # the study's featured parameter
    fails("unknown param 'nope'", resolve_param, summary, "nope")
    assert resolve_estimators(summary, "lmm") == ["lmm"]
    assert resolve_estimators(summary, None) == ["ols", "ols_cluster", "lmm", "lmm_t"]
    fails("unknown estimator 'gee'", resolve_estimators, summary, ["ols", "gee"])
    assert resolve_pair(summary, None) == ("ols", "ols_cluster")
    fails("estimators must name two different estimators", resolve_pair, summary, ["ols", "ols"])


def test_levels_are_chosen_with_a_tolerance_and_kept_as_dimensions(summary):
    one = select_levels(summary, {"icc": 0.2 + 1e-12})
    assert one.sizes["icc"] == 1 and float(one.coords["icc"][0]) == 0.2
    fails("icc=0.3 is not a level of icc; its levels are: 0.05, 0.2", select_levels, summary, {"icc": 0.3})
    fails("unknown factor 'size' for select", select_levels, summary, {"size": 5})
    sub, fixed = fixed_levels(one, keep=["n_groups"])
    assert "icc" not in sub.dims and set(fixed) == {"icc", "treatment_effect"}
    assert cell_table(sub, ["n_groups", "group_size"])[:2] == [{"n_groups": 6, "group_size": 5},
                                                              {"n_groups": 6, "group_size": 10}]


def test_one_cell_and_paired_replicates(estimates):
    cell, where = one_cell(estimates, CELL)
    assert where == {**CELL, "treatment_effect": 0.3} and "rep" in cell.dims
    fails("choose a cell: give cell= a level of group_size, icc", one_cell, estimates, {"n_groups": 6})
    a, b, param, where, x, y, true = paired(estimates, ["ols", "lmm"], None, CELL, "estimate", "plot_x")
    assert (a, b, param) == ("ols", "lmm", "treat") and x.shape == y.shape and true == 0.3


def test_the_nominal_level(summary):
    assert nominal_level(summary) == 0.95 and nominal_level(summary, 0.9) == 0.9
    fails("level must lie between 0 and 1, got 95.0", nominal_level, summary, 95)
