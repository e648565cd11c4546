"""Writing and reading run output: netCDF datasets and JSON files, each written atomically.

A file is written to a temporary name in the same directory and renamed into place, so a run that dies
mid-write never leaves a half-written file under the final name.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else remove it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # as an ordinary new file, not mkstemp's 0600
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def plain_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """netCDF attributes: strings, numbers and 1-D numeric arrays (CF's ``flag_values``, say) as they are,
    anything structured as a JSON string."""
    out = {}
    for key, value in attrs.items():
        if isinstance(value, (str, int, float, np.integer, np.floating)) and not isinstance(value, bool):
            out[key] = value
        elif isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "iuf":
            out[key] = value
        else:
            out[key] = json.dumps(value, default=str)
    return out


def json_attr(ds: xr.Dataset, key: str, default: Any = None) -> Any:
    """A structured attribute of a dataset: decoded from its JSON string (as :func:`write_netcdf` stores
    it) or taken as it is."""
    value = ds.attrs.get(key, default)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def write_netcdf(ds: xr.Dataset, path: Path) -> None:
    """Write ``ds`` to ``path`` (netCDF4) atomically; structured attributes become JSON strings."""
    ds = ds.copy()
    ds.attrs = plain_attrs(ds.attrs)
    for var in ds.variables.values():
        var.attrs = plain_attrs(var.attrs)
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4")


@contextmanager
def netcdf_writer(path: Path, coords: dict[str, Any]) -> Iterator[Any]:
    """Write a netCDF4 file atomically, variable by variable and block by block: yields the open
    ``netCDF4.Dataset`` with the dimensions of ``coords`` (1-D, one per dimension); add variables with
    :func:`add_variable` and fill them. The coordinate variables follow the others (as ``to_netcdf`` orders
    them) and the file is renamed into place when the block ends."""
    import netCDF4

    coordinates = {name: np.asarray(values) for name, values in coords.items()}
    with atomic_path(path) as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
            nc.set_auto_maskandscale(False)
            for name, values in coordinates.items():
                nc.createDimension(name, values.shape[0])
            yield nc
            for name, values in coordinates.items():
                add_variable(nc, name, (name,), _coordinate_dtype(values), {})[:] = values


def _coordinate_dtype(values: np.ndarray) -> np.dtype:
    """The dtype xarray gives a coordinate of these values (strings for an object array of strings)."""
    return xr.Variable(("x",), values).dtype
class _Variable:
    """A netCDF4 variable filled with numpy blocks encoded as xarray encodes them (bool as int8)."""

    def __init__(self, var: Any, kind: str) -> None:
        self.var, self.kind = var, kind

    def __setitem__(self, key: Any, values: np.ndarray) -> None:
        if self.kind == "b":
            values = np.asarray(values, dtype=np.int8)
        elif self.kind in "OU":
            values = np.asarray(values, dtype=object)
        self.var[key] = values


def add_variable(nc: Any, name: str, dims: tuple[str, ...], dtype: np.dtype, attrs: dict[str, Any]) -> _Variable:
    """Create a variable in a :func:`netcdf_writer` file as ``xarray.Dataset.to_netcdf`` would: floats with
    ``_FillValue`` NaN, booleans as int8 with ``dtype: bool``, strings as variable-length strings, contiguous."""
    dtype = np.dtype(dtype)
    attrs = plain_attrs(dict(attrs))
    if dtype.kind == "f":
        var = nc.createVariable(name, dtype, dims, fill_value=dtype.type(np.nan))
    elif dtype.kind == "b":
        var = nc.createVariable(name, np.int8, dims)
        attrs["dtype"] = "bool"
    elif dtype.kind in "OU":
        var = nc.createVariable(name, str, dims)
    else:
        var = nc.createVariable(name, dtype, dims)
    if attrs:
        var.setncatts(attrs)
    return _Variable(var, dtype.kind)


def read_netcdf(path: Path) -> xr.Dataset:
    """Read a dataset written by :func:`write_netcdf` fully into memory.

    Outputs of simstudy 0.1, whose estimator dimension was called ``method`` (a name that xarray's
    ``sel(method=...)`` takes for its own argument), come back with it renamed to ``estimator``.
    """
    if not path.is_file():
        raise ValueError(f"{str(path)!r} does not exist")
    with xr.open_dataset(path, engine="netcdf4") as ds:
        ds = ds.load()
    if "method" in ds.dims and "estimator" not in ds.dims:
        ds = ds.rename({"method": "estimator"})
    return ds


def write_json(obj: Any, path: Path) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")


def read_json(path: Path) -> Any:
    """Read a JSON file; ``ValueError`` with one line if it is missing or not JSON."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{str(path)!r} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{str(path)!r} is not valid JSON: {exc}") from None
