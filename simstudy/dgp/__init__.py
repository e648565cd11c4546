"""Data-generating processes: one family per module, each a class with ``generate``, ``truth``, ``validate``.

- :class:`RandomIntercept` (:mod:`.clustered`): units in groups, a covariate and a cluster-level treatment;
  :func:`design_effect` for the variance inflation that naive OLS ignores.
- :class:`TeachingMethods` (:mod:`.teaching`): students within instructors within teaching methods;
  :class:`TeachingMethodsMultiplicative`: the seed notebook's multiplicative version with a score cap.
- :class:`CallCenter` (:mod:`.call_center`): calls within representatives within call centres.

The contract and the checks of factor values are in :mod:`simstudy.dgp.base`.
"""

from simstudy.dgp.base import DGP, factor_names
from simstudy.dgp.call_center import CallCenter
from simstudy.dgp.clustered import RandomIntercept, design_effect
from simstudy.dgp.teaching import TeachingMethods
from simstudy.dgp.teaching_multiplicative import TeachingMethodsMultiplicative

__all__ = ["DGP", "CallCenter", "RandomIntercept", "TeachingMethods", "TeachingMethodsMultiplicative", "design_effect", "factor_names"]
