"""Estimators: one family per module. Every estimator's ``fit(data)`` returns a :class:`Fit`.

``MixedLM`` chooses its engine (:mod:`simstudy.estimators.engines`): the fast exact REML engine where it
supports the model, else statsmodels.
"""

from simstudy.estimators.base import STATUSES, Estimator, Fit
from simstudy.estimators.cluster_level import ClusterLevel
from simstudy.estimators.engines import MixedLM
from simstudy.estimators.fast_mixedlm import FastMixedLM
from simstudy.estimators.gee import GEE
from simstudy.estimators.glmm import GLMM as GLMM
from simstudy.estimators.mixedlm import StatsmodelsMixedLM
from simstudy.estimators.ols import OLS

__all__ = ["OLS", "MixedLM", "FastMixedLM", "StatsmodelsMixedLM", "Fit", "Estimator", "STATUSES"]
__all__ += ["GEE", "ClusterLevel"]
