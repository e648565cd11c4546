"""Atomic writes and structured attributes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from simstudy.engine.store import atomic_path, read_netcdf, write_json, write_netcdf


def test_netcdf_round_trip_with_json_attrs(tmp_path):
    ds = xr.Dataset({"x": ("a", np.arange(3.0)), "s": ("a", np.array(["", "b", "cc"]))}, attrs={"d": {"k": [1, 2]}})
    write_netcdf(ds, tmp_path / "x.nc")
    back = read_netcdf(tmp_path / "x.nc")
    assert json.loads(back.attrs["d"]) == {"k": [1, 2]}
    np.testing.assert_array_equal(back["x"], ds["x"])
    assert back["s"].values.tolist() == ["", "b", "cc"]


def test_failed_write_leaves_previous_file(tmp_path):
    target = tmp_path / "f.json"
    write_json({"a": 1}, target)
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("disk full")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_read_missing(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        read_netcdf(tmp_path / "nope.nc")


def test_status_flags_follow_cf_conventions(tmp_path):
    # defect: flag_values were stored as the JSON string '"[-1 0 1 2 3]"'
    from simstudy.engine.assemble import STATUS_ATTRS

    ds = xr.Dataset({"status": (("rep",), np.array([0, 1, -1], np.int8), dict(STATUS_ATTRS))})
    write_netcdf(ds, tmp_path / "s.nc")
    with xr.open_dataset(tmp_path / "s.nc", decode_cf=True) as back:
        attrs = back["status"].attrs
        assert back["status"].dtype == np.int8
        assert isinstance(attrs["flag_values"], np.ndarray) and attrs["flag_values"].dtype == np.int8
        assert attrs["flag_values"].tolist() == [-1, 0, 1, 2, 3]
        assert attrs["flag_meanings"] == "not_run ok boundary nonconverged failed"
        meaning = dict(zip(attrs["flag_values"].tolist(), attrs["flag_meanings"].split()))
        assert [meaning[v] for v in back["status"].values.tolist()] == ["ok", "boundary", "not_run"]


def test_outputs_of_earlier_versions_load_with_the_estimator_dimension(tmp_path):
    old = xr.Dataset({"bias": (("method", "param"), np.zeros((2, 1)))},
                     coords={"method": ["ols", "lmm"], "param": ["x"]})
    old.to_netcdf(tmp_path / "old.nc")
    back = read_netcdf(tmp_path / "old.nc")
    assert "estimator" in back.dims and "method" not in back.dims
    assert float(back["bias"].sel(estimator="lmm", param="x")) == 0.0
