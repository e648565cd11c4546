"""Fingerprints of what determines a cell's results, so a resume never mixes results of different studies.

A cell's fingerprint covers its factor values, the seed, the DGP and every estimator (their configuration
and their code) and the true values. Replicates and added factor levels are not in it: running the same
study with more of either reuses every chunk already computed.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from simstudy.rng import _canonical

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


_PACKAGE = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=None)
def _package_digest(subpackage: str) -> str:
    """A digest of every source file of a simstudy subpackage (and the formula module it relies on)."""
    h = hashlib.sha256()
    for path in sorted((_PACKAGE / subpackage).glob("*.py")) + [_PACKAGE / "formula.py"]:
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()[:16]


def _code_digest(cls: type) -> str:
    """A digest of a class's code.

    simstudy's own estimators and DGPs call helpers across their subpackage, so their digest covers every
    file of it (``simstudy/estimators`` or ``simstudy/dgp``); any other class is digested from its source
    where Python can find it, else from its methods' bytecode.
    """
    parts = cls.__module__.split(".")
    if parts[0] == "simstudy" and len(parts) > 2 and (_PACKAGE / parts[1]).is_dir():
        return _package_digest(parts[1])
    h = hashlib.sha256()
    for klass in cls.__mro__:
        if klass is object or klass.__module__ == "builtins":
            continue
        try:
            h.update(inspect.getsource(klass).encode())
            continue
        except (OSError, TypeError):
            pass
        for name, attr in sorted(vars(klass).items()):
            fn = getattr(attr, "__func__", attr)
            code = getattr(fn, "__code__", None)
            if isinstance(code, types.CodeType):
                h.update(name.encode())
                h.update(_code_bytes(code))
    return h.hexdigest()[:16]


def _code_bytes(code: types.CodeType) -> bytes:
    parts = [code.co_code]
    for const in code.co_consts:
        parts.append(_code_bytes(const) if isinstance(const, types.CodeType) else repr(const).encode())
    return b"".join(parts)


def label(obj: Any) -> str:
    """A short readable description for people: the object's own ``repr`` where its class defines one,
    else :func:`describe`."""
    if type(obj).__repr__ is not object.__repr__ and hasattr(obj, "__dict__"):
        return _ADDRESS.sub("", repr(obj))
    return describe(obj)


def describe(obj: Any, _depth: int = 0) -> str:
    """A deterministic one-line description of a configured object and all its settings (no memory
    addresses): what fingerprints are made of.

    Examples
    --------
    >>> class A:
    ...     def __init__(self):
    ...         self.formula, self.level = "y ~ x", 0.95
    >>> describe(A())
    "A(formula='y ~ x', level=0.95)"
    """
    if _depth > 6:
        return "..."
    if obj is None or isinstance(obj, (str, bool, int, float, np.number)):
        return repr(obj)
    if isinstance(obj, (list, tuple)):
        inner = ", ".join(describe(v, _depth + 1) for v in obj)
        return f"[{inner}]" if isinstance(obj, list) else f"({inner})"
    if isinstance(obj, Mapping):
        return "{" + ", ".join(f"{k!r}: {describe(v, _depth + 1)}" for k, v in obj.items()) + "}"
    if isinstance(obj, np.ndarray):
        return f"array(shape={obj.shape}, sha={hashlib.sha256(obj.tobytes()).hexdigest()[:12]})"
    if callable(obj) and not hasattr(obj, "__dict__") or isinstance(obj, types.FunctionType):
        return getattr(obj, "__qualname__", _ADDRESS.sub("", repr(obj)))
    if hasattr(obj, "__dict__"):
        fields = ", ".join(
            f"{k}={describe(v, _depth + 1)}" for k, v in vars(obj).items() if not k.startswith("_")
        )
        return f"{type(obj).__name__}({fields})"
    return _ADDRESS.sub("", repr(obj))


def study_parts(study: Any) -> dict[str, Any]:
    """The parts of a study that determine every cell's results (configuration and code)."""
    return {
        "dgp": describe(study.dgp),
        "dgp_code": _code_digest(type(study.dgp)),
        "methods": {m: describe(e) for m, e in study.estimators.items()},
        "methods_code": {m: _code_digest(type(e)) for m, e in study.estimators.items()},
    }


def cell_fingerprint(parts: Mapping[str, Any], cell: Mapping[str, Any], truth: Mapping[str, float],
                     seed: int) -> str:
    """SHA-256 (hex, 32 digits) of everything that determines one cell's results."""
    payload = {
        "parts": parts,
        "cell": {k: _canonical(v) for k, v in sorted(cell.items())},
        "truth": {k: repr(float(v)) for k, v in sorted(truth.items())},
        "seed": seed,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]
