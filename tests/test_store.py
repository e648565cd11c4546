"""Atomic writes and structured attributes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from simstudy.store import atomic_path, read_netcdf, write_json, write_netcdf


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
