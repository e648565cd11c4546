"""What the report reads of a run: datasets (refused with one line), study.json fields, shown parameters,
file stems."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import xarray as xr

from simstudy.output.report.run import read_dataset, shown_params, stems, study_field, varying


def tiny_summary(**attrs: str) -> xr.Dataset:
    ds = xr.Dataset({"n_rep": (("n_groups", "icc", "estimator", "param"), [[[[1, 1]]], [[[1, 1]]]])},
                    coords={"n_groups": [6, 12], "icc": [0.1], "estimator": ["ols"], "param": ["treat", "var(g)"]})
    ds.attrs.update(attrs)
    return ds


def test_file_stems_are_plain_and_unique():
    assert stems(["var(group)", "treat", "Treat", "(*)"], "measures_") == \
        ["measures_var_group", "measures_treat", "measures_treat_2", "measures_param"]


def test_the_shown_parameters_and_the_fields_of_study_json():
    ds = tiny_summary(show=json.dumps(["var(g)"]), name="from the summary")
    assert shown_params(ds, {}) == ["var(g)"]
    assert shown_params(ds, {"show": "treat"}) == ["treat"]  # study.json first
    assert shown_params(ds, {"show": ["nothing"]}) == ["treat", "var(g)"]  # else every parameter
    assert study_field({"name": "study"}, ds, "name", "?") == "study"
    assert study_field({"name": None}, ds, "name", "?") == "from the summary"
    assert study_field({}, ds, "dgp", "?") == "?"
    assert varying(ds) == ["n_groups"]


def test_a_missing_or_unreadable_dataset_is_one_line(tmp_path: Path):
    with pytest.raises(ValueError, match="has no summary.nc; is it the output directory of a finished run"):
        read_dataset(tmp_path / "summary.nc", "summary.nc")
    (tmp_path / "summary.nc").write_text("not netCDF")
    with pytest.raises(ValueError, match="cannot read") as info:
        read_dataset(tmp_path / "summary.nc", "summary.nc")
    assert "\n" not in str(info.value)
