"""A study: name, design, data-generating process, estimators, true values, replicates, seed.

A study file is a Python file that defines ``study = Study(...)``; :func:`load_study` runs it and returns
that object, turning every way the file can be wrong into one ``ValueError`` line.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import numbers
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simstudy.design import Design
from simstudy.dgp.base import factor_names
from simstudy.lazy_modules import namespace
from simstudy.types import Truth


@dataclass
class Study:
    """Everything that defines a simulation study.

    Parameters
    ----------
    name : str
        Used for the output directory ``results/<name>``; letters, digits, ``_`` and ``-``.
    design : Design
        The grid of design factors.
    dgp : object
        The data-generating process (``generate``, ``truth``, ``validate``; see :mod:`simstudy.dgp.base`).
    estimators : mapping of str to estimator
        Method name to estimator (see :mod:`simstudy.estimators.base`); every estimator fits the same data.
    reps : int
        Replicates per cell.
    seed : int
        Master seed.
    truth : callable, optional
        ``truth(**factors)`` returning true values by parameter; defaults to ``dgp.truth``.
    description : mapping, optional
        The ADEMP description (aims, data-generating mechanisms, estimands, methods, performance), shown in
        reports.
    show : sequence of str, optional
        Parameters printed by ``simstudy run`` and ``simstudy show`` (default: all).
    reference : str, optional
        The estimator that ``rel_precision`` compares every other estimator with (default: the first).
    labels : mapping of str to str, optional
        Readable names for figures and tables: factor, estimator and parameter names to labels (e.g.
        ``{"n_groups": "Number of clusters", "lmm_t": "LMM, t (between-within df)"}``). Names without a
        label are shown as they are (factors with underscores replaced by spaces).
    nulls : mapping of str to float, optional
        Null value of each parameter's test (the ``pvalue`` of every fit, and power); 0 where not given.
    alpha : float, optional
        Level of the tests for power (default: 1 minus the estimators' confidence level).
    unscored : sequence of str, optional
        Parameter names this study does not score: parameters an estimator reports without a true value,
        or true values no estimator reports. Every other name must match on both sides; the run refuses
        to start otherwise (a truth key that matches no parameter is usually a misspelt estimand).
    """

    name: str
    design: Design
    dgp: Any
    estimators: Mapping[str, Any]
    reps: int = 1000
    seed: int = 0
    truth: Callable[..., Truth] | None = None
    description: Mapping[str, str] = field(default_factory=dict)
    show: tuple[str, ...] = ()
    reference: str | None = None
    unscored: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    nulls: Mapping[str, float] = field(default_factory=dict)
    alpha: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", self.name):
            raise ValueError(f"study name {self.name!r} must use only letters, digits, '_' and '-'")
        if not isinstance(self.design, Design):
            raise ValueError("study design must be a simstudy.design.Design")
        for attr in ("generate", "truth"):
            if not callable(getattr(self.dgp, attr, None)):
                raise ValueError(f"the study's dgp has no {attr}() method")
        if not isinstance(self.estimators, Mapping) or not self.estimators:
            raise ValueError("study estimators must be a non-empty mapping of method name to estimator")
        for name, est in self.estimators.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"method name {name!r} must be a non-empty string")
            if not callable(getattr(est, "fit", None)):
                raise ValueError(f"estimator {name!r} has no fit() method")
        check_reps(self.reps)
        check_seed(self.seed)
        if self.reference is None:
            self.reference = next(iter(self.estimators))
        elif self.reference not in self.estimators:
            raise ValueError(f"reference estimator {self.reference!r} is not among the estimators "
                             f"({', '.join(self.estimators)})")
        if isinstance(self.unscored, str) or not all(isinstance(u, str) for u in self.unscored):
            raise ValueError(f"unscored must be a sequence of parameter names, got {self.unscored!r}")
        self.unscored = tuple(self.unscored)
        if not isinstance(self.labels, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in self.labels.items()):
            raise ValueError(f"labels must map names to strings, got {self.labels!r}")
        self.labels = dict(self.labels)
        if not isinstance(self.nulls, Mapping) or not all(
                isinstance(k, str) and isinstance(v, numbers.Real) and math.isfinite(v) for k, v in self.nulls.items()):
            raise ValueError(f"nulls must map parameter names to finite numbers, got {self.nulls!r}")
        self.nulls = {k: float(v) for k, v in self.nulls.items()}
        if self.alpha is not None and not (isinstance(self.alpha, numbers.Real) and 0 < self.alpha < 1):
            raise ValueError(f"alpha must lie in (0, 1), got {self.alpha!r}")
        self.show = tuple(self.show)

    def truth_for(self, cell: Mapping[str, Any]) -> dict[str, float | dict[str, float]]:
        """True values of the estimands in one cell, as the DGP (or the study's ``truth``) gives them.

        A value is a number, or, where estimators target different estimands for one parameter (a GLMM's
        conditional log odds ratio, GEE's marginal one), a mapping from an estimand label (what an
        estimator's ``estimand`` attribute says it targets) or an estimator's name to a number.
        """
        fn = self.truth if self.truth is not None else self.dgp.truth
        out: dict[str, float | dict[str, float]] = {}
        for key, value in fn(**cell).items():
            if isinstance(value, Mapping):
                out[str(key)] = {str(k): float(v) for k, v in value.items()}
            else:
                out[str(key)] = float(value)
        return out

    def truths(self, cell: Mapping[str, Any]) -> dict[str, dict[str, float]]:
        """True values by estimator: ``{estimator: {param: value}}``.

        A per-estimand mapping (see :meth:`truth_for`) is resolved for each estimator by its name first,
        then by its ``estimand`` attribute; a parameter whose mapping has neither gets no true value for
        that estimator (:meth:`check_estimands` refuses a run where such a parameter is reported).
        """
        raw = self.truth_for(cell)
        out: dict[str, dict[str, float]] = {}
        for name, est in self.estimators.items():
            target = getattr(est, "estimand", None)
            mine: dict[str, float] = {}
            for param, value in raw.items():
                if not isinstance(value, dict):
                    mine[param] = value
                elif name in value:
                    mine[param] = value[name]
                elif target is not None and target in value:
                    mine[param] = value[target]
            out[name] = mine
        return out

    def check_estimands(self, params: Mapping[str, Sequence[str]], cell: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` unless the cell's true values and the estimators' parameters match: every
        truth key names a parameter some estimator reports, every reported parameter has a true value for
        that estimator, and every key of a per-estimand mapping names an estimator, an estimand one of
        them targets, or a label the DGP declares in its ``estimands`` attribute (names in
        :attr:`unscored` excepted).

        Parameters
        ----------
        params : mapping of str to sequence of str
            Estimator name to the parameter names it reported (on one replicate).
        cell : mapping
            The cell's factor values.
        """
        raw = self.truth_for(cell)
        by_est = self.truths(cell)
        reported = {p for names in params.values() for p in names}
        skip = set(self.unscored)
        targets = set(self.estimators) | {str(getattr(e, "estimand")) for e in self.estimators.values()
                                          if getattr(e, "estimand", None) is not None}
        targets |= set(getattr(self.dgp, "estimands", ()) or ())  # labels the DGP declares it provides
        unmatched = [k for k in raw if k not in reported and k not in skip]
        stray = [f"{k}[{t!r}]" for k, v in raw.items() if isinstance(v, dict) for t in v if t not in targets]
        missing: dict[str, list[str]] = {}
        for est, names in params.items():
            for p in names:
                if p not in by_est.get(est, {}) and p not in skip:
                    missing.setdefault(p, []).append(est)
        if not unmatched and not missing and not stray:
            return
        parts = []
        if unmatched:
            parts.append("true values that match no estimator's parameter: " + ", ".join(map(repr, unmatched)))
        if missing:
            parts.append("parameters without a true value: " + ", ".join(
                f"{p!r} ({', '.join(ests)})" for p, ests in missing.items()))
        if stray:
            parts.append("per-estimand true values whose key names no estimator or estimand: " + ", ".join(stray))
        raise ValueError("estimands and parameters do not match: " + "; ".join(parts)
                         + " (rename the truth keys to the parameter names, or list names the study does not "
                         "score in Study(unscored=...))")

    def validate(self) -> list[dict[str, Any]]:
        """Check every factor name and value against the DGP; return the cells."""
        takes = factor_names(self.dgp)
        for name in self.design.names:
            if name not in takes:
                raise ValueError(
                    f"factor {name!r} is not taken by {type(self.dgp).__name__}.generate "
                    f"(it takes: {', '.join(takes)})"
                )
        cells = list(self.design.cells())
        if not cells:
            raise ValueError("the design's filter leaves no cells")
        validate = getattr(self.dgp, "validate", None)
        for cell in cells:
            if validate is not None:
                validate(**cell)
        return cells


def check_reps(reps: Any) -> int:
    """Replicates must be a whole number of at least 1."""
    if isinstance(reps, bool) or not isinstance(reps, numbers.Integral) or reps < 1:
        raise ValueError(f"reps must be a whole number of at least 1, got {reps!r}")
    return int(reps)


def check_seed(seed: Any) -> int:
    """Seeds are non-negative whole numbers."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative whole number, got {seed!r}")
    return int(seed)


def file_hash(path: Path) -> str:
    """SHA-256 of a study file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_study(path: str | Path) -> Study:
    """Run a study file and return the ``Study`` it defines as ``study``.

    The file is loaded as a module that is not registered in ``sys.modules``, so classes it defines are
    sent to worker processes by value. Its directory is searched first for the modules it imports; those
    modules are sent to workers by value too (workers need not see the directory).
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"study file {str(p)!r} does not exist")
    spec = importlib.util.spec_from_file_location(f"simstudy_study_{p.stem}", p)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot load study file {str(p)!r} (is it a .py file?)")
    module = importlib.util.module_from_spec(spec)
    folder = str(p.resolve().parent)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise ValueError(f"syntax error in {p}, line {exc.lineno}: {exc.msg}") from None
    except Exception as exc:
        raise ValueError(f"study file {p} failed: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    finally:
        sys.path.remove(folder)
    _send_local_modules_by_value(Path(folder))
    study = getattr(module, "study", None)
    if not isinstance(study, Study):
        raise ValueError(f"study file {p} must define `study = Study(...)`")
    return study


def _send_local_modules_by_value(folder: Path) -> None:
    """Register the modules imported from ``folder`` with cloudpickle (joblib's copy and Dask's) so that
    worker processes receive their code with the study instead of importing them."""
    resolved: dict[str, Path] = {}  # a directory's real path, resolved once (modules share few directories)

    def home(file: str) -> Path:
        where = os.path.dirname(file)
        if where not in resolved:
            resolved[where] = Path(where).resolve()
        return resolved[where]

    folder = folder.resolve()
    files = ((m, namespace(m).get("__file__")) for m in list(sys.modules.values()))
    local = [m for m, file in files if isinstance(file, str) and home(file) == folder]
    picklers = []
    try:
        from joblib.externals import cloudpickle as joblib_cloudpickle

        picklers.append(joblib_cloudpickle)
    except ImportError:  # pragma: no cover - joblib always vendors it
        pass
    try:
        import cloudpickle

        picklers.append(cloudpickle)
    except ImportError:
        pass
    for module in local:
        for pickler in picklers:
            try:
                pickler.register_pickle_by_value(module)
            except ValueError:  # not importable as registered (e.g. a package's __main__)
                pass
