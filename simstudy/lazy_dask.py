"""xarray without importing dask until something uses dask.

For every array it wraps, xarray asks whether it is a dask array, and to answer it imports dask at the
first Dataset of any process where dask is installed: ``dask.array`` (0.2-0.3 s, a fifth of a small run) to
learn its array type, and ``dask`` itself (0.06-0.1 s) for ``dask.base.is_dask_collection``, paid by every
command although simstudy's local runs never make a dask array. :func:`install` answers both questions
without the import where the answer cannot depend on it, and leaves every other case to xarray and dask:

- while ``dask.array`` has not been imported, no array can be a dask array: an entry for dask in xarray's
  cache of array modules gives no dask array type until ``dask.array`` is in ``sys.modules``, and from then
  on hands over to xarray's own entry (so dask arrays made later are recognised as usual);
- an object without a ``__dask_graph__`` method (or a class) is not a dask collection: that is the first
  test of ``dask.base.is_dask_collection`` itself, made here before xarray's wrapper imports dask to ask it;
- writing a netCDF file asks which dask scheduler is active, importing ``dask`` and ``dask.distributed``
  (0.2 s where distributed is installed); where dask has never been imported none can be, and the answer
  is None, which every caller treats as the default threaded scheduler it would get otherwise.

It relies on xarray's ``namedarray.pycompat._cached_duck_array_modules``,
``namedarray.utils.is_dask_collection`` and ``backends.locks.get_dask_scheduler``; where one is missing
(another xarray version) that part is left alone and xarray imports dask as before: slower, never wrong.
Importing this module installs it. (Each is a candidate for a change in xarray itself.)
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


def _not_a_collection_first(original: Any) -> Any:
    """xarray's ``is_dask_collection``, answering False without importing dask where dask's own first test
    would (a class, or an object without a callable ``__dask_graph__``)."""

    def is_dask_collection(x: object) -> bool:
        graph = getattr(x, "__dask_graph__", None)
        if isinstance(x, type) or not callable(graph):
            return False
        return original(x)

    is_dask_collection.deferred = True  # type: ignore[attr-defined]
    return is_dask_collection


def _no_scheduler_without_dask(original: Any) -> Any:
    """xarray's ``get_dask_scheduler``, answering None (no dask scheduler active) where dask was never
    imported, without importing it."""

    def get_dask_scheduler(get: Any = None, collection: Any = None) -> str | None:
        if get is None and collection is None and "dask" not in sys.modules:
            return None
        return original(get, collection)

    get_dask_scheduler.deferred = True  # type: ignore[attr-defined]
    return get_dask_scheduler


def install() -> bool:
    """Defer xarray's imports of dask (see the module's text); True if all three deferrals are in place."""
    try:
        from xarray.backends import locks, writers
        from xarray.namedarray import pycompat, utils
    except ImportError:  # pragma: no cover - another xarray layout
        return False
    placed = 0
    original = getattr(locks, "get_dask_scheduler", None)
    if callable(original):
        if not getattr(original, "deferred", False):
            deferred = _no_scheduler_without_dask(original)
            locks.get_dask_scheduler = deferred
            if getattr(writers, "get_dask_scheduler", None) is original:  # bound there by name
                writers.get_dask_scheduler = deferred
        placed += 1
    cache = getattr(pycompat, "_cached_duck_array_modules", None)
    if isinstance(cache, dict) and hasattr(pycompat, "DuckArrayModule"):
        if "dask" not in cache:
            cache["dask"] = _UntilImported(pycompat)
        placed += isinstance(cache["dask"], _UntilImported) or "dask.array" in sys.modules
    original = getattr(utils, "is_dask_collection", None)
    if callable(original):
        if not getattr(original, "deferred", False):
            utils.is_dask_collection = _not_a_collection_first(original)
        placed += 1
    return placed == 3


install()
