"""``numpy.testing`` and ``numpy.f2py`` loaded when first used, not as a side effect of importing scipy.

scipy (1.15 on) imports its array-API layer with any subpackage (``scipy.special``, ``scipy.linalg``), and
that layer runs ``from numpy import *``. numpy's ``__all__`` names its lazily loaded submodules, so that
line loads every one of them, among them ``numpy.testing`` (with ``unittest``, ``difflib`` ...: 48 ms alone)
and ``numpy.f2py`` (24 ms alone), which simstudy never uses: 25-30 ms of a small ``simstudy run`` (less than
their own import time, as pandas imports some of the same standard-library modules anyway).

:func:`defer` binds the two as lazy modules (the standard library's :class:`importlib.util.LazyLoader`): the
name exists, so ``from numpy import *`` binds it without loading it, and the first attribute read on it loads
the real module in place (``np.testing.assert_allclose``, ``from numpy.testing import ...`` and
``import numpy.f2py`` work as before). The console script has it run just before scipy's first import
(:func:`defer_before_scipy`), so that commands that never reach scipy (``--help``, a bad argument) import no
numpy either; library callers are left alone. Code that looks through ``sys.modules`` reads modules with
:func:`namespace`, which loads nothing.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType
from typing import Any

#: The submodules deferred: never used by simstudy, each a large import of its own.
SUBMODULES = ("numpy.testing", "numpy.f2py")


def defer(names: tuple[str, ...] = SUBMODULES) -> list[str]:
    """Bind each of ``names`` not yet imported as a module that loads on first attribute access.

    Returns
    -------
    list of str
        The names deferred (those already imported, or whose loader cannot be deferred, are left alone).
    """
    done = []
    for name in names:
        if name in sys.modules:
            continue
        parent_name, _, child = name.rpartition(".")
        parent = importlib.import_module(parent_name)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            continue
        spec.loader = importlib.util.LazyLoader(spec.loader)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        setattr(parent, child, module)
        done.append(name)
    return done


class _BeforeScipy(importlib.abc.MetaPathFinder):
    """Runs :func:`defer` when the import of ``scipy`` starts, then steps aside (finds nothing itself)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname == "scipy":
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            defer()
        return None


def defer_before_scipy() -> None:
    """Run :func:`defer` just before scipy is first imported (now, if it already has been)."""
    if "scipy" in sys.modules:
        defer()
    elif not any(isinstance(finder, _BeforeScipy) for finder in sys.meta_path):
        sys.meta_path.insert(0, _BeforeScipy())


def namespace(module: Any) -> dict[str, Any]:
    """A module's own namespace (``__file__``, ``__spec__`` ... as set), read without loading a deferred module
    or calling a module-level ``__getattr__``; ``{}`` for an object that is not a module."""
    if isinstance(module, ModuleType):
        return object.__getattribute__(module, "__dict__")
    return {}
