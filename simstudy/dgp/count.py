r"""Two-arm cluster-randomised trials with a count outcome: a random-intercept Poisson (Poisson-lognormal)
model. The estimand labels are those of :mod:`simstudy.dgp.binary`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simstudy.dgp.base import check_positive, check_proportion
from simstudy.dgp.binary import ESTIMANDS, check_arm_design, check_estimands, draw_design, select

__all__ = ["CountTrial", "count_variance"]


def count_variance(icc: float, rate: float) -> float:
    r"""Random-intercept variance :math:`\sigma_u^2` giving two counts of a control cluster the correlation
    ``icc`` when the control arm's marginal mean is ``rate``: :math:`\log(1 + \mathrm{icc} / ((1 -
    \mathrm{icc})\, \mathrm{rate}))` (see :class:`CountTrial`)."""
    return math.log1p(icc / ((1.0 - icc) * rate))


@dataclass(slots=True)
class CountTrialFactors:
    """The factors of :class:`CountTrial` (documented there), with their defaults; values are not converted."""

    n_clusters: int = 20
    cluster_size: int = 30
    size_spread: float = 0.0
    rate: float = 1.0
    rate_ratio: float = 1.0
    icc: float = 0.05

    def check(self) -> None:
        """Raise ``ValueError`` naming the first factor whose value is not allowed."""
        check_arm_design(self.n_clusters, self.cluster_size, self.size_spread)
        check_positive("rate", self.rate)
        check_positive("rate_ratio", self.rate_ratio)
        check_proportion("icc", self.icc)

    def parameters(self) -> tuple[float, float, float]:
        """``(var, b0, b1)``: the random-intercept variance and the conditional coefficients."""
        var = count_variance(float(self.icc), float(self.rate))
        return var, math.log(self.rate) - var / 2.0, math.log(self.rate_ratio)


class CountTrial:
    r"""Two-arm cluster-randomised trial with a count outcome: a random-intercept Poisson model.

    For unit :math:`i` of cluster :math:`j = 0, \dots, K-1`:

    .. math:: y_{ij} \mid u_j \sim \mathrm{Poisson}(\mu_{ij}), \qquad
              \log \mu_{ij} = \beta_0 + \beta_1\, \mathrm{treat}_j + u_j, \qquad u_j \sim N(0, \sigma_u^2),

    each unit followed for one unit of time (the rate is the mean count per unit). Exactly ``floor(K / 2)``
    clusters are treated, chosen at random in each replicate.

    Factors (fields of :attr:`factors`, keyword arguments of :meth:`generate`, :meth:`truth`, :meth:`validate`)
    -----------------------------------------------------------------------------------------------------------
    n_clusters, cluster_size, size_spread
        As :class:`~simstudy.dgp.binary.BinaryTrial` (defaults 20, 30, 0.0).
    rate : float, default 1.0
        The control arm's **marginal** mean count :math:`\mu_0 = E[e^{\beta_0 + u}] = e^{\beta_0 +
        \sigma_u^2/2}` (positive); so :math:`\beta_0 = \log \mu_0 - \sigma_u^2 / 2`.
    rate_ratio : float, default 1.0
        The rate ratio :math:`e^{\beta_1}` (positive). With a log link and a random intercept it is both
        the conditional and the marginal rate ratio.
    icc : float, default 0.05
        The ICC of the counts themselves in the control arm, in [0, 1): the correlation of two counts of one
        control cluster, which is what the design effect :math:`1 + (m - 1)\,\mathrm{icc}` of a control-arm
        mean uses. With :math:`c = e^{\sigma_u^2} - 1`, :math:`\mathrm{Cov}(y_{ij}, y_{i'j}) =
        \mathrm{Var}_u(e^{\beta_0 + u}) = \mu_0^2 c` and :math:`\mathrm{Var}(y_{ij}) = \mu_0 + \mu_0^2 c`, so
        :math:`\mathrm{icc} = \mu_0 c / (1 + \mu_0 c)` and :math:`\sigma_u^2 = \log(1 + \mathrm{icc} / ((1 -
        \mathrm{icc})\,\mu_0))` (:func:`count_variance`). The same :math:`\sigma_u^2` gives the treated
        arm the correlation :math:`\mu_1 c / (1 + \mu_1 c)`.

    Columns: ``y`` (float counts), ``treat`` (int 0/1, constant within cluster), ``cluster`` (int codes
    0..K-1, sorted).

    Estimands (:meth:`truth`; closed forms, :math:`\mu_1 = \mu_0 e^{\beta_1}`):

    - ``Intercept``: ``conditional`` :math:`\beta_0`; ``marginal`` and ``log-ratio`` :math:`\log \mu_0`;
      ``difference`` :math:`\mu_0`;
    - ``treat``: ``conditional``, ``marginal`` and ``log-ratio`` :math:`\beta_1`; ``difference``
      :math:`\mu_1 - \mu_0` (the cluster-level analysis: a cluster's mean count has expectation
      :math:`\mu_t` whatever its size);
    - ``var(cluster)``: :math:`\sigma_u^2`.

    Parameters
    ----------
    estimands : sequence of str, default all of :data:`~simstudy.dgp.binary.ESTIMANDS`
        The labels kept in the per-estimand mappings of :meth:`truth` (see
        :class:`~simstudy.dgp.binary.BinaryTrial`).
    """

    #: The factors this DGP takes, with their defaults (read by :func:`simstudy.dgp.base.factor_names`).
    factors = CountTrialFactors

    def __init__(self, estimands: Sequence[str] = ESTIMANDS) -> None:
        self.estimands = check_estimands(estimands)

    def __repr__(self) -> str:
        return "CountTrial()" if self.estimands == ESTIMANDS else f"CountTrial(estimands={self.estimands!r})"

    def generate(self, rng: np.random.Generator, **factors: Any) -> dict[str, np.ndarray]:
        """Draw one replicate (call :meth:`validate` once per cell first; this does not check)."""
        f = self.factors(**factors)
        var, b0, b1 = f.parameters()
        cluster, treat = draw_design(rng, int(f.n_clusters), int(f.cluster_size), float(f.size_spread))
        mu = np.exp(rng.normal(b0, math.sqrt(var), treat.shape[0]) + b1 * treat)
        y = rng.poisson(mu[cluster]).astype(np.float64)
        return {"y": y, "treat": treat[cluster], "cluster": cluster}

    def truth(self, **factors: Any) -> dict[str, Any]:
        """True values of ``Intercept``, ``treat`` (per estimand) and ``var(cluster)``."""
        f = self.factors(**factors)
        var, b0, b1 = f.parameters()
        mu0 = float(f.rate)
        log_mu0 = math.log(mu0)
        truth = {
            "Intercept": {"conditional": b0, "marginal": log_mu0, "difference": mu0, "log-ratio": log_mu0},
            "treat": {"conditional": b1, "marginal": b1, "difference": mu0 * math.expm1(b1), "log-ratio": b1},
            "var(cluster)": var,
        }
        return select(truth, self.estimands)

    def validate(self, **factors: Any) -> None:
        """Raise ``ValueError`` naming the first factor whose value is not allowed."""
        self.factors(**factors).check()
