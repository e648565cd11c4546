"""simstudy.run and simstudy.load from Python: one Results object, xarray-safe names, tidy tables."""

from __future__ import annotations

import numpy as np
import pytest

import simstudy
from support import TOY


@pytest.fixture(scope="module")
def res(tmp_path_factory):
    return simstudy.run(TOY, reps=20, jobs=1, out=tmp_path_factory.mktemp("api") / "toy", quiet=True)


def test_run_returns_results_and_load_reads_the_same(res):
    again = simstudy.load(res.path)
    assert isinstance(res, simstudy.Results) and isinstance(again, simstudy.Results)
    assert res.summary.identical(again.summary)
    np.testing.assert_array_equal(res.estimates["estimate"].values, again.estimates["estimate"].values)


def test_selection_by_estimator_keyword(res):
    # defect: with a dimension called "method", summary.sel(method="lmm") silently returned every method
    one = res.summary.sel(estimator="boom", param="mean")
    assert one["bias"].dims == ("n", "mu")
    with pytest.raises(KeyError):
        res.summary.sel(estimator="nope")


def test_metadata_is_decoded(res):
    assert res.name == "toy" and res.design == {"n": [10, 40], "mu": [0.0, 1.0]}
    assert list(res.estimators) == ["mean", "boom"]
    assert res.run_info["reps"] == 20 and res.run_info["complete"] is True
    assert res.provenance["seed"] == 7 and "numpy" in res.provenance["versions"]
    flags = res.estimates["status"].attrs
    assert flags["flag_values"].tolist() == [-1, 0, 1, 2, 3]
    assert flags["flag_meanings"].split() == ["not_run", "ok", "boundary", "nonconverged", "failed"]


def test_tidy_table(res):
    long = res.table(["bias", "coverage"], estimators="mean", n=10)
    assert list(long.columns) == ["n", "mu", "estimator", "param", "measure", "value", "mcse", "note"]
    assert len(long) == 2 * 2  # mu levels x measures (n fixed by the selection)
    row = long[(long["mu"] == 1.0) & (long["measure"] == "bias")].iloc[0]
    s = res.summary.sel(n=10, mu=1.0, estimator="mean", param="mean")
    assert row["value"] == float(s["bias"]) and row["mcse"] == float(s["bias_mcse"])
    wide = res.table(["bias", "coverage"], wide=True)
    assert {"bias", "bias_mcse", "coverage", "coverage_mcse"} <= set(wide.columns) and len(wide) == 4 * 2
    with pytest.raises(ValueError, match="unknown measure 'bias2'"):
        res.table("bias2")
    with pytest.raises(ValueError, match="unknown estimator 'glm'"):
        res.table("bias", estimators="glm")
    with pytest.raises(ValueError, match="unknown factor 'm'"):
        res.table("bias", m=1)


def test_notebook_and_text_views(res):
    html = res._repr_html_()
    assert html.startswith("<p><b>simstudy results: toy</b>") and "<table" in html and "coverage" in html
    assert "toy" in repr(res) and "4 cells x 20 replicates x 2 estimators" in repr(res)
    assert "valid/reps" in res.show()


def test_plot_method(res):
    fig = res.plot("performance", measure="bias", x="n", param="mean")
    assert fig.axes
    with pytest.raises(ValueError, match="unknown plot kind"):
        res.plot("pie")


def test_load_refuses_a_directory_that_is_not_a_run(tmp_path):
    with pytest.raises(ValueError, match="is not a finished simstudy run"):
        simstudy.load(tmp_path)


def test_public_names_are_importable():
    for name in simstudy.__all__:
        assert getattr(simstudy, name) is not None
    with pytest.raises(AttributeError):
        simstudy.nonexistent  # noqa: B018
