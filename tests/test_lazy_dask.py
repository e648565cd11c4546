"""xarray does not import dask until something uses dask; dask arrays made later work as usual."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("dask") is None, reason="dask is not installed")

FIRST_DATASET = """
import sys
import numpy as np
import simstudy.engine.store  # installs the deferral, as every simstudy path to a Dataset does
import xarray as xr
ds = xr.Dataset({"a": (("x", "y"), np.arange(6.0).reshape(2, 3))}, coords={"x": [1, 2], "c": ("y", list("uvw"))})
ds.to_netcdf(sys.argv[1])
back = xr.open_dataset(sys.argv[1]).load()
assert back.identical(ds)
print("dask" in sys.modules, "dask.array" in sys.modules)
"""


def test_a_dataset_written_and_read_does_not_import_dask(tmp_path):
    out = subprocess.run([sys.executable, "-c", FIRST_DATASET, str(tmp_path / "x.nc")], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_dask_arrays_made_afterwards_are_dask_arrays_to_xarray():
    import xarray as xr

    import simstudy.lazy_dask as lazy

    assert lazy.install()
    xr.Dataset({"a": ("x", [1.0, 2.0])})  # before dask.array is imported: no dask type
    import dask.array as da

    arr = xr.DataArray(da.zeros(4, chunks=2), dims="z")
    assert type(arr.data).__module__.startswith("dask") and arr.chunks == ((2, 2),)
    assert xr.Dataset({"q": arr}).chunks == {"z": (2, 2)}
    assert float(arr.sum().compute()) == 0.0


def test_dask_collections_are_still_told_apart():
    from xarray.namedarray import utils

    import simstudy.lazy_dask  # noqa: F401

    class Graphless:
        pass

    class Collection:
        def __dask_graph__(self):
            return {"a": 1}

    assert utils.is_dask_collection(Graphless()) is False
    assert utils.is_dask_collection(Collection) is False  # a class
    assert utils.is_dask_collection(Collection()) is True  # dask's own answer


def test_no_dask_scheduler_is_active_where_dask_was_never_imported():
    from xarray.backends import locks, writers

    import simstudy.lazy_dask as lazy

    assert lazy.install()
    assert writers.get_dask_scheduler is locks.get_dask_scheduler
    import dask  # noqa: F401 - from here on, dask's own answer

    assert locks.get_dask_scheduler() == "threaded"
