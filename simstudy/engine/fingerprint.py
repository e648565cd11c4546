"""Fingerprints of what determines a cell's results, so a resume never mixes results of different studies.

A cell's fingerprint covers its factor values (with the defaults of the factors the design does not set),
the seed, the DGP and every estimator (their configuration, their code and the code and constants it refers
to, in the study file or modules beside it) and the true values. Replicates and added factor levels are not
in it: running the same study with more of either reuses every chunk already computed. Comments, docstrings
and formatting are not in it either: edits that cannot change a number do not force recomputation.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import re
import sys
import sysconfig
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from simstudy.engine.rng import _canonical

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


_PACKAGE = Path(__file__).resolve().parent.parent
#: simstudy modules whose code decides a replicate's numbers whatever the DGP and estimators: seeding, the
#: per-replicate loop and the formula builder.
_CORE = ("engine/rng.py", "engine/chunk.py", "estimators/formula.py")


def source_digest(source: str) -> str:
    """A digest of Python source that ignores comments, formatting and docstrings: only edits that can
    change what the code does change it."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
    return hashlib.sha256(ast.dump(tree, annotate_fields=False).encode()).hexdigest()[:16]


def _cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "simstudy" / "source-digests.json"


@functools.lru_cache(maxsize=1)
def _digest_cache() -> dict[str, list]:
    try:
        cache = json.loads(_cache_path().read_text())
        return cache if isinstance(cache, dict) else {}
    except (OSError, ValueError):
        return {}


def file_digest(path: Path) -> str:
    """:func:`source_digest` of a file, remembered across runs by the file's path, size and modification
    time (digesting simstudy's own ~80 modules from scratch takes about half a second)."""
    return _file_facts(path)[0]


def _file_facts(path: Path) -> tuple[str, list[str]]:
    """A file's source digest and the simstudy modules it imports, cached (see :func:`file_digest`)."""
    try:
        st = path.stat()
    except OSError:
        return "", []
    key = f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    cache = _digest_cache()
    facts = cache.get(key)
    if not (isinstance(facts, list) and len(facts) == 2):
        source = path.read_text()
        facts = cache[key] = [source_digest(source), sorted(str(p) for p in _simstudy_imports(source))]
        _UNSAVED.append(key)
    return facts[0], facts[1]


_UNSAVED: list[str] = []


def _save_cache() -> None:
    """Write new digests to the cache file (atomically; a read-only home just means recomputing them)."""
    if not _UNSAVED:
        return
    _UNSAVED.clear()
    try:
        target = _cache_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(_digest_cache()))
        os.replace(tmp, target)
    except OSError:
        pass


@functools.lru_cache(maxsize=None)
def _package_digest(subpackage: str) -> str:
    """A digest of the code of a simstudy subpackage, of every simstudy module it imports (followed
    transitively: a DGP that fits a pilot with the estimators depends on them too), and of the core modules
    every replicate runs through (docstrings, comments and formatting excluded)."""
    h = hashlib.sha256()
    paths = sorted((_PACKAGE / subpackage).glob("*.py")) + [_PACKAGE / name for name in _CORE]
    seen: set[Path] = set()
    while paths:
        path = paths.pop(0)
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        digest, imports = _file_facts(path)
        h.update(str(path.relative_to(_PACKAGE)).encode() + digest.encode())
        paths += sorted({Path(i) for i in imports} - seen)
    _save_cache()
    return h.hexdigest()[:16]


def _simstudy_imports(source: str) -> set[Path]:
    """Files of the simstudy modules a source file imports (``from simstudy.x.y import ...``)."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
            [a.name for a in node.names] if isinstance(node, ast.Import) else []
        for name in names:
            if name.startswith("simstudy."):
                rel = Path(*name.split(".")[1:])
                for candidate in (_PACKAGE / rel.with_suffix(".py"), _PACKAGE / rel / "__init__.py"):
                    if candidate.is_file():
                        out.add(candidate)
    return out


@functools.lru_cache(maxsize=None)
def _module_digest(name: str) -> str:
    """Digest of one simstudy module's code (what user code that names a simstudy class or function, such
    as ``Fit``, depends on)."""
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None)
    return file_digest(Path(file)) if file else ""


def _code_digest(cls: type) -> str:
    """A digest of a class's code and of everything its code refers to.

    simstudy's own estimators and DGPs call helpers across their subpackage, so their digest covers every
    file of it (:func:`_package_digest`). Any other class (a study's own DGP or estimator) is digested by
    :func:`code_digest`: its methods' bytecode, default arguments and closures, and, followed recursively,
    the module-level constants, functions, classes and modules of the study's own directory that the code
    names. A constant or a helper function changed in the study file, or in a module next to it, changes
    the digest; comments and docstrings do not.
    """
    parts = cls.__module__.split(".")
    if parts[0] == "simstudy" and len(parts) > 2 and (_PACKAGE / parts[1]).is_dir():
        return _package_digest(parts[1])
    return code_digest(cls)


def code_digest(obj: Any) -> str:
    """Digest of user code (a class or function) and what it refers to; see :func:`_code_digest`."""
    h = hashlib.sha256()
    _digest_value(obj, h, set(), 0)
    return h.hexdigest()[:16]


def _is_library(module_name: str, file: str | None) -> bool:
    """A module that is not the user's own: the standard library, an installed package, or simstudy."""
    if module_name.split(".")[0] in sys.stdlib_module_names or module_name in sys.builtin_module_names:
        return True
    if file is None:  # a notebook's __main__, code run with exec: the user's own
        return False
    path = str(Path(file).resolve())
    return "site-packages" in path or "dist-packages" in path or path.startswith(sysconfig.get_paths()["stdlib"])


def _digest_value(value: Any, h: Any, seen: set[int], depth: int) -> None:
    if depth > 50:
        h.update(b"<deep>")
        return
    if isinstance(value, (types.FunctionType, type, types.ModuleType)):
        if id(value) in seen:
            h.update(b"<seen>")
            return
        seen.add(id(value))
    if isinstance(value, types.ModuleType):
        file = getattr(value, "__file__", None)
        name = value.__name__
        if name.startswith("simstudy.") and file is not None:
            sub = name.split(".")[1]
            digest = _package_digest(sub) if (_PACKAGE / sub).is_dir() else file_digest(Path(file))
            h.update(f"module {name} {digest}".encode())
        elif _is_library(name, file):
            h.update(f"module {name} {getattr(value, '__version__', '')}".encode())
        elif file is None:
            h.update(f"module {name}".encode())
        else:
            h.update(f"module {name} ".encode() + file_digest(Path(file)).encode())
        return
    if isinstance(value, type):
        module = sys.modules.get(value.__module__)
        mod_file = getattr(module, "__file__", None) if module is not None else None
        if value.__module__.startswith("simstudy."):  # named by user code: the module that defines it
            h.update(f"class {value.__module__}.{value.__qualname__} {_module_digest(value.__module__)}".encode())
            return
        if module is not None and _is_library(value.__module__, mod_file):
            h.update(f"class {value.__module__}.{value.__qualname__}".encode())
            return
        h.update(f"class {value.__qualname__}".encode())
        for base in value.__mro__[1:]:
            if base is not object:
                _digest_value(base, h, seen, depth + 1)
        for name, attr in sorted(vars(value).items()):
            code_like = isinstance(attr, (types.FunctionType, staticmethod, classmethod, property))
            if name.startswith("__") and name.endswith("__") and not code_like:
                continue  # bookkeeping (__dict__, __doc__, __slotnames__ that pickling adds, ...), not behaviour
            h.update(name.encode())
            _digest_value(getattr(attr, "__func__", attr), h, seen, depth + 1)
        return
    if isinstance(value, (staticmethod, classmethod)):
        _digest_value(value.__func__, h, seen, depth + 1)
        return
    if isinstance(value, property):
        for fn in (value.fget, value.fset, value.fdel):
            _digest_value(fn, h, seen, depth + 1)
        return
    if isinstance(value, types.FunctionType):
        module = sys.modules.get(value.__module__ or "")
        if value.__module__ and value.__module__.startswith("simstudy."):
            h.update(f"function {value.__module__}.{value.__qualname__} {_module_digest(value.__module__)}".encode())
            return
        if module is not None and _is_library(value.__module__, getattr(module, "__file__", None)):
            h.update(f"function {value.__module__}.{value.__qualname__}".encode())
            return
        code = value.__code__
        h.update(_code_bytes(code, value.__doc__))
        h.update(describe(value.__defaults__).encode() + describe(value.__kwdefaults__).encode())
        for cell in value.__closure__ or ():
            try:
                _digest_value(cell.cell_contents, h, seen, depth + 1)
            except ValueError:  # an empty cell
                h.update(b"<empty>")
        for name in sorted(_names(code)):
            if name in value.__globals__:
                h.update(f"global {name}".encode())
                _digest_value(value.__globals__[name], h, seen, depth + 1)
        return
    if callable(value) and not hasattr(value, "__dict__"):  # builtins, numpy ufuncs
        h.update(describe(value).encode())
        return
    if hasattr(value, "__dict__") and not isinstance(value, type):
        h.update(describe(value).encode())
        _digest_value(type(value), h, seen, depth + 1)
        return
    h.update(describe(value).encode())


def _names(code: types.CodeType) -> set[str]:
    """Every global or attribute name a code object (and the code objects nested in it) uses."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _code_bytes(code: types.CodeType, doc: str | None = None) -> bytes:
    """The instructions and constants of a code object (nested ones included), without its docstring and
    line numbers."""
    parts = [code.co_code, repr(code.co_names).encode()]
    consts = code.co_consts
    if doc is not None and consts and consts[0] == doc:
        consts = consts[1:]
    for const in consts:
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
    """The parts of a study that determine every cell's results: the DGP and estimators (configuration
    and code, see :func:`_code_digest`) and the values of the factors the design leaves at their defaults."""
    from simstudy.dgp.base import factor_names

    defaults = {k: v for k, v in factor_names(study.dgp).items() if k not in study.design.names}
    return {
        "dgp": describe(study.dgp),
        "dgp_code": _code_digest(type(study.dgp)),
        "factor_defaults": {k: describe(v) for k, v in sorted(defaults.items())},
        "estimators": {m: describe(e) for m, e in study.estimators.items()},
        "estimators_code": {m: _code_digest(type(e)) for m, e in study.estimators.items()},
    }


def cell_fingerprint(parts: Mapping[str, Any], cell: Mapping[str, Any], truth: Mapping[str, Any],
                     seed: int) -> str:
    """SHA-256 (hex, 32 digits) of everything that determines one cell's results."""
    payload = {
        "parts": parts,
        "cell": {k: _canonical(v) for k, v in sorted(cell.items())},
        "truth": _truth_text(truth),
        "seed": seed,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def _truth_text(truth: Mapping[str, Any]) -> Any:
    """True values as exact text (``repr`` of floats), nested mappings (by estimator) kept."""
    return {k: _truth_text(v) if isinstance(v, Mapping) else repr(float(v)) for k, v in sorted(truth.items())}
