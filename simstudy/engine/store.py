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

import simstudy.lazy_dask  # noqa: F401 - before the first Dataset: xarray then imports dask only when used


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
    """Write ``ds`` to ``path`` (netCDF4) atomically; structured attributes become JSON strings.

    A Dataset of plain variables (numbers, booleans, strings; every coordinate a dimension; no encoding
    settings) is written with netCDF4 directly, as ``to_netcdf`` writes it (a first ``to_netcdf`` costs a
    run ~0.1 s of imports); anything else by ``to_netcdf``.
    """
    if _plain(ds):
        import netCDF4

        with atomic_path(path) as tmp, netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
            nc.set_auto_maskandscale(False)
            for dim, size in ds.sizes.items():
                nc.createDimension(dim, size)
            for name, var in ds.variables.items():
                add_variable(nc, str(name), tuple(map(str, var.dims)), var.dtype, var.attrs)[...] = var.values
            nc.setncatts(plain_attrs(dict(ds.attrs)))
        return
    ds = ds.copy()
    ds.attrs = plain_attrs(ds.attrs)
    for var in ds.variables.values():
        var.attrs = plain_attrs(var.attrs)
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4")


def _plain(ds: xr.Dataset) -> bool:
    """Every variable numbers, booleans or fixed-width strings, without encoding settings, and every
    coordinate a dimension's: what :func:`add_variable` writes as ``to_netcdf`` does."""
    return all(
        var.dtype.kind in "biufU" and not var.encoding and var.ndim > 0
        and (name not in ds.coords or var.dims == (name,)) and all(isinstance(d, str) for d in var.dims)
        and not ({"_FillValue", "missing_value", "dtype", "calendar", "scale_factor", "add_offset",
                  "coordinates", "_Encoding"} & set(var.attrs))
        for name, var in ds.variables.items()
    ) and all(isinstance(name, str) for name in ds.variables)


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
    """Read a dataset written by :func:`write_netcdf` (or :func:`netcdf_writer`) fully into memory.

    Large string variables (``message`` of the estimates: one per fit) come back as object arrays in which
    equal strings are one Python string (see :func:`open_netcdf`). Outputs of simstudy 0.1, whose
    estimator dimension was called ``method`` (a name that xarray's ``sel(method=...)`` takes for its own
    argument), come back with it renamed to ``estimator``.
    """
    if not path.is_file():
        raise ValueError(f"{str(path)!r} does not exist")
    ds = open_netcdf(path)
    with ds:
        ds = ds.load()
    if "method" in ds.dims and "estimator" not in ds.dims:
        ds = ds.rename({"method": "estimator"})
    return ds


def object_variable(dims: Any, values: np.ndarray, attrs: dict | None = None) -> xr.Variable:
    """An xarray Variable of an object array of strings, taken as it is: xarray (with pandas 3) otherwise
    passes object arrays through a pandas Series, which makes a new Python string of every element (for
    the messages of 640,000 fits: 60 MB and 0.3 s)."""
    return xr.Variable(dims, values, attrs, fastpath=True)


#: String variables of more elements than this are read by :func:`open_netcdf` itself.
BIG_STRINGS = 1 << 14


def open_netcdf(path: Path) -> xr.Dataset:
    """Open a netCDF file lazily, as ``xr.open_dataset`` does, except for large variable-length string
    variables (more than :data:`BIG_STRINGS` elements): xarray decodes those into a fixed-width unicode
    array at once (4 bytes per character of the longest string, per element: 100 MB for the messages of
    640,000 fits), so they are read here, a slab at a time, into an object array whose equal strings are one
    Python string (8 bytes per element). The values are the same; the variables keep the file's order."""
    import netCDF4

    with netCDF4.Dataset(path) as nc:
        big = [name for name, var in nc.variables.items()
               if var.dtype is str and var.size > BIG_STRINGS and var.ndim > 0]
        strings = {}
        for name in big:
            var = nc.variables[name]
            texts: dict[str, str] = {}
            out = np.empty(var.shape, dtype=object)
            step = max(1, BIG_STRINGS // max(1, var.size // var.shape[0]))
            for lo in range(0, var.shape[0], step):
                block = np.asarray(var[lo : lo + step], dtype=object)
                flat = np.empty(block.size, dtype=object)
                flat[:] = [texts.setdefault(t, t) for t in block.ravel().tolist()]
                out[lo : lo + step] = flat.reshape(block.shape)
            attrs = {k: var.getncattr(k) for k in var.ncattrs()}
            strings[name] = object_variable(var.dimensions, out, attrs)
        order = list(nc.variables)
    ds = xr.open_dataset(path, engine="netcdf4", drop_variables=big or None)
    if not big:
        return ds
    for name, var in strings.items():
        ds[name] = var
    return ds[[v for v in order if v in ds.data_vars]]


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
