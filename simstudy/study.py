"""A study: name, design, data-generating process, estimators, true values, replicates, seed.

A study file is a Python file that defines ``study = Study(...)``; :func:`load_study` runs it and returns
that object, turning every way the file can be wrong into one ``ValueError`` line.
"""

from __future__ import annotations

import hashlib
import importlib.util
import numbers
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simstudy.design import Design
from simstudy.dgp.base import factor_names
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

    def truth_for(self, cell: Mapping[str, Any]) -> dict[str, float]:
        """True values of the estimands in one cell."""
        fn = self.truth if self.truth is not None else self.dgp.truth
        return {str(k): float(v) for k, v in fn(**cell).items()}

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
    sent to worker processes by value.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"study file {str(p)!r} does not exist")
    spec = importlib.util.spec_from_file_location(f"simstudy_study_{p.stem}", p)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot load study file {str(p)!r} (is it a .py file?)")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise ValueError(f"syntax error in {p}, line {exc.lineno}: {exc.msg}") from None
    except Exception as exc:
        raise ValueError(f"study file {p} failed: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    study = getattr(module, "study", None)
    if not isinstance(study, Study):
        raise ValueError(f"study file {p} must define `study = Study(...)`")
    return study
