"""xarray without importing dask until something uses dask.

For every array it wraps, xarray asks whether it is a dask array, and to learn dask's array type it imports
``dask.array`` at the first Dataset of any process where dask is installed: 0.2-0.3 s, a fifth of a small
run, paid by every command although simstudy's local runs never make a dask array. Yet while ``dask.array``
has not been imported, no array can be a dask array. :func:`install` puts an entry for dask in xarray's
cache of array modules that answers "no dask array type" until ``dask.array`` is in ``sys.modules``, and
from then on hands over to xarray's own entry (so dask arrays made later are recognised as usual).

It relies on xarray's ``namedarray.pycompat._cached_duck_array_modules``; where that is missing (another
xarray version) nothing is changed and xarray imports dask as before: slower, never wrong. Importing this
module installs it.
"""

from __future__ import annotations

import sys
from typing import Any


class _UntilImported:
    """xarray's ``DuckArrayModule`` for dask, deferred: no array type while ``dask.array`` is not imported."""

    def __init__(self, pycompat: Any) -> None:
        self._pycompat = pycompat

    def _real(self) -> Any:
        real = self._pycompat.DuckArrayModule("dask")
        self._pycompat._cached_duck_array_modules["dask"] = real
        return real

    @property
    def type(self) -> tuple[type, ...]:
        return self._real().type if "dask.array" in sys.modules else ()

    def __getattr__(self, name: str) -> Any:  # module, version, available: only asked by code using dask
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._real(), name)


def install() -> bool:
    """Defer xarray's import of dask (see the module's text); True if the deferral is in place."""
    try:
        from xarray.namedarray import pycompat
    except ImportError:  # pragma: no cover - another xarray layout
        return False
    cache = getattr(pycompat, "_cached_duck_array_modules", None)
    if not isinstance(cache, dict) or not hasattr(pycompat, "DuckArrayModule"):  # pragma: no cover
        return False
    if "dask" not in cache:
        cache["dask"] = _UntilImported(pycompat)
    return isinstance(cache["dask"], _UntilImported) or "dask.array" in sys.modules


install()
