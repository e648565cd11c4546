"""Choosing what a table holds: the summary checked; parameters, estimators, levels, measures and digits."""

from __future__ import annotations

import numpy as np
import pytest

from simstudy.output.tables.selection import (
    PAPER_MEASURES,
    as_list,
    choose_digits,
    choose_measures,
    design_factors,
    require_summary,
    select,
)


def test_the_design_factors_are_the_summarys_other_dimensions(summary):
    assert design_factors(summary) == ["n_groups", "group_size", "icc"]
    require_summary(summary)
    for bad in (summary.to_array(), summary.drop_vars("n_rep"), summary.expand_dims(rep=2)):
        with pytest.raises(ValueError, match="a table needs"):
            require_summary(bad)


def test_select_keeps_what_is_chosen_in_the_order_given(summary):
    assert list(select(summary, None, None, None).coords["param"].values) == ["treat"]  # the featured one
    assert list(select(summary, None, None, None, all_params=True).coords["param"].values) == ["treat", "var(g)"]
    chosen = select(summary, "var(g)", ["fe", "ols"], {"icc": [0.2, 0.05], "n_groups": np.int64(12)})
    assert list(chosen.coords["estimator"].values) == ["fe", "ols"]
    assert list(chosen.coords["icc"].values) == [0.2, 0.05] and list(chosen.coords["n_groups"].values) == [12]
    assert list(select(summary, None, None, {"icc": 0.2 + 1e-12}).coords["icc"].values) == [0.2]  # a tolerance
    with pytest.raises(ValueError, match="no estimator chosen"):
        select(summary, None, [], None)


def test_measures_default_to_the_paper_set_with_a_value(summary):
    assert choose_measures(summary, None) == list(PAPER_MEASURES)
    assert choose_measures(summary.sel(param=["var(g)"], estimator=["lmm"]), None) == ["bias", "emp_se", "rmse"]
    assert choose_measures(summary, "n_valid") == ["n_valid"]
    with pytest.raises(ValueError, match="a measure is chosen twice"):
        choose_measures(summary, ["bias", "bias"])


def test_digits_for_all_or_per_measure():
    assert choose_digits(2, ["bias", "coverage"]) == {"bias": 2, "coverage": 2}
    assert choose_digits({"bias": 4}, ["bias", "coverage"]) == {"bias": 4, "coverage": 3}
    for bad in (True, 1.5, 13):
        with pytest.raises(ValueError, match="digits must be a whole number"):
            choose_digits(bad, ["bias"])
    assert as_list("treat") == ["treat"] and as_list(("a", "b")) == ["a", "b"] and as_list(3) == [3]
