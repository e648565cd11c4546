"""simstudy: Monte Carlo simulation studies that compare statistical methods.

The package is grouped by role; the folder tree shows the flow of a run:

- :mod:`simstudy.study`, :mod:`simstudy.design`: a study and its grid of design factors;
- :mod:`simstudy.dgp`: data-generating processes; :mod:`simstudy.estimators`: the methods compared;
- :mod:`simstudy.engine`: the run engine (plan, dispatch to workers, checkpoints, assembly);
- :mod:`simstudy.stats`: performance measures with Monte Carlo standard errors;
- :mod:`simstudy.output`: results objects, printed tables, tables for papers, figures, the HTML report;
- :mod:`simstudy.cli`: the ``simstudy`` command.

The public API is importable from here (``simstudy.Study``, ``simstudy.run``, ``simstudy.load``, the DGPs
and estimators); names are imported on first use, so ``import simstudy`` itself is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

#: Public name -> module that defines it.
_EXPORTS: dict[str, str] = {
    "Study": "simstudy.study",
    "load_study": "simstudy.study",
    "Design": "simstudy.design",
    "run": "simstudy.api",
    "load": "simstudy.api",
    "Results": "simstudy.api",
    "RandomIntercept": "simstudy.dgp",
    "TeachingMethods": "simstudy.dgp",
    "TeachingMethodsMultiplicative": "simstudy.dgp",
    "CallCenter": "simstudy.dgp",
    "BinaryTrial": "simstudy.dgp",
    "CountTrial": "simstudy.dgp",
    "PilotModel": "simstudy.dgp",
    "fit_pilot": "simstudy.estimators.pilot_fit",
    "GEE": "simstudy.estimators",
    "GLMM": "simstudy.estimators",
    "ClusterLevel": "simstudy.estimators",
    "OLS": "simstudy.estimators",
    "MixedLM": "simstudy.estimators",
    "FastMixedLM": "simstudy.estimators",
    "StatsmodelsMixedLM": "simstudy.estimators",
    "Fit": "simstudy.estimators",
    "summarize": "simstudy.stats.measures",
    "summarize_table": "simstudy.stats.table",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'simstudy' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
