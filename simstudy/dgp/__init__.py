"""Data-generating processes: one family per module, each a class with ``generate``, ``truth``, ``validate``.

- :class:`RandomIntercept` (:mod:`.clustered`): units in groups, a covariate and a cluster-level treatment;
  :func:`design_effect` for the variance inflation that naive OLS ignores.
- :class:`TeachingMethods` (:mod:`.teaching`): students within instructors within teaching methods;
  :class:`TeachingMethodsMultiplicative`: the seed notebook's multiplicative version with a score cap.
- :class:`CallCenter` (:mod:`.call_center`): calls within representatives within call centres.
- :class:`BinaryTrial` (:mod:`.binary`), :class:`CountTrial` (:mod:`.count`): two-arm cluster-randomised trials.
- :class:`PilotModel` (:mod:`.pilot`): new data sets from a mixed model fitted to pilot data
  (:func:`simstudy.estimators.pilot_fit.fit_pilot`), the design changed by design factors. Imported on first
  use (it needs the mixed-model engine).

The contract and the checks of factor values are in :mod:`simstudy.dgp.base`.
"""

from simstudy.dgp.base import DGP, factor_names
from simstudy.dgp.binary import BinaryTrial
from simstudy.dgp.call_center import CallCenter
from simstudy.dgp.clustered import RandomIntercept, design_effect
from simstudy.dgp.count import CountTrial
from simstudy.dgp.teaching import TeachingMethods
from simstudy.dgp.teaching_multiplicative import TeachingMethodsMultiplicative

__all__ = ["DGP", "CallCenter", "PilotModel", "RandomIntercept", "TeachingMethods", "TeachingMethodsMultiplicative",
           "design_effect", "factor_names"]
__all__ += ["BinaryTrial", "CountTrial"]


def __getattr__(name: str):
    if name == "PilotModel":
        from simstudy.dgp.pilot import PilotModel

        return PilotModel
    raise AttributeError(f"module 'simstudy.dgp' has no attribute {name!r}")
