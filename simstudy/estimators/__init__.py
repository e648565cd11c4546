"""Estimators: one family per module. Every estimator's ``fit(data)`` returns a :class:`Fit`.

- :class:`OLS` (:mod:`.ols`): classical, cluster-robust (CR1) and fixed-effects least squares.
- :class:`MixedLM` (:mod:`.engines`): the linear mixed model; the fast exact engine
  (:class:`FastMixedLM`, :mod:`.fast_mixedlm`) where it supports the model, else statsmodels
  (:class:`StatsmodelsMixedLM`, :mod:`.mixedlm`).
- :class:`GLMM` (:mod:`.glmm`): random-intercept logistic and Poisson models, Laplace and adaptive quadrature.
- :class:`GEE` (:mod:`.gee`): generalised estimating equations with small-sample variance corrections.
- :class:`ClusterLevel` (:mod:`.cluster_level`): t tests on cluster summaries.

Names are imported on first use, so a worker that fits only OLS never imports statsmodels.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Fit": "base", "Estimator": "base", "STATUSES": "base",
    "OLS": "ols", "MixedLM": "engines", "FastMixedLM": "fast_mixedlm", "StatsmodelsMixedLM": "mixedlm",
    "GLMM": "glmm", "GEE": "gee", "ClusterLevel": "cluster_level",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'simstudy.estimators' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"simstudy.estimators.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
