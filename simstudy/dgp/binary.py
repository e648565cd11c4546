r"""Two-arm cluster-randomised trials with a binary outcome (:class:`BinaryTrial`), and what the count version
(:class:`simstudy.dgp.count.CountTrial`) shares with it: cluster sizes, randomisation, the normal expectations
behind the marginal estimands.

Estimand labels (keys of the per-estimand mappings that :meth:`BinaryTrial.truth` gives ``Intercept`` and
``treat``; an estimator's ``estimand`` attribute names the one it targets):

- ``"conditional"``: the coefficients of the cluster-specific model, given the random intercept (what a
  GLMM estimates);
- ``"marginal"``: the coefficients of the population-averaged model on the same link scale,
  ``g(E[y | treat])`` (what GEE estimates, and the cluster-level analysis on the log-odds scale);
- ``"difference"``: the control-arm marginal mean and the difference of the arms' marginal means (risk
  difference; what the cluster-level analysis on the difference scale estimates);
- ``"log-ratio"``: the log of the control-arm marginal mean and the log ratio of the arms' marginal means
  (log risk ratio).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from simstudy.dgp.base import check_count, check_nonnegative, check_positive, check_proportion
from simstudy.dgp.clustered import _unequal_sizes, max_size_spread

__all__ = ["BinaryTrial", "ESTIMANDS", "LOGISTIC_VARIANCE", "normal_expectation"]

#: The estimand labels of :meth:`BinaryTrial.truth` (and :meth:`~simstudy.dgp.count.CountTrial.truth`).
ESTIMANDS: tuple[str, ...] = ("conditional", "marginal", "difference", "log-ratio")

#: Variance of the standard logistic distribution, the level-1 variance of the latent-scale ICC.
LOGISTIC_VARIANCE = math.pi**2 / 3.0

#: Composite Gauss-Legendre rule of :func:`normal_expectation`: nodes per panel, widest panel (in units of
#: the outcome's linear predictor) and the range kept, in standard deviations (mass outside: 4e-33).
_GL_ORDER = 20
_GL_PANEL = 1.0
_GL_TAIL = 12.0


@lru_cache(maxsize=256)
def _normal_rule(sd: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``u`` and weights ``w`` with ``sum(w * f(u)) = E[f(U)]``, ``U ~ N(0, sd**2)``."""
    if sd == 0.0:
        return np.zeros(1), np.ones(1)
    half = _GL_TAIL * sd
    panels = max(1, math.ceil(2.0 * half / min(_GL_PANEL, sd)))
    x, w = np.polynomial.legendre.leggauss(_GL_ORDER)
    edges = np.linspace(-half, half, panels + 1)
    lo, hi = edges[:-1, None], edges[1:, None]
    u = ((lo + hi) / 2 + (hi - lo) / 2 * x).ravel()
    weights = ((hi - lo) / 2 * w).ravel() * np.exp(-0.5 * (u / sd) ** 2) / (sd * math.sqrt(2.0 * math.pi))
    u.setflags(write=False)
    weights.setflags(write=False)
    return u, weights


def normal_expectation(f: Any, sd: float) -> float:
    r"""``E[f(U)]`` for :math:`U \sim N(0, \mathrm{sd}^2)`, by a composite Gauss-Legendre rule.

    20 nodes per panel, panels no wider than ``min(1, sd)`` on :math:`\pm 12\,\mathrm{sd}`. For the inverse
    logit, whose poles lie at distance :math:`\pi` from the real axis, and for ``exp``, the error is at
    rounding level (below 1e-15 relative against adaptive quadrature for latent ICCs from 0.001 to 0.99,
    intercepts from -8 to 4). Gauss-Hermite is not used: its error is governed by the distance of those
    poles in its own units, :math:`\pi / (\sqrt 2\,\mathrm{sd})`, and is still 1e-7 with 250 nodes at
    latent ICC 0.9.

    Parameters
    ----------
    f : callable
        Vectorised function of ``u``.
    sd : float
        Standard deviation of ``U`` (0 gives ``f(0)``).
    """
    u, w = _normal_rule(float(sd))
    return float(np.dot(w, f(u)))


def expit(x: np.ndarray) -> np.ndarray:
    """The inverse logit, accurate in both tails and without overflow warnings."""
    x = np.asarray(x, dtype=float)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def latent_variance(icc: float) -> float:
    """Random-intercept variance whose latent-scale ICC, ``v / (v + pi**2 / 3)``, is ``icc``."""
    return icc / (1.0 - icc) * LOGISTIC_VARIANCE


@lru_cache(maxsize=1024)
def logistic_normal_intercept(prevalence: float, var: float) -> float:
    """The conditional intercept ``b0`` with ``E[expit(b0 + U)] = prevalence``, ``U ~ N(0, var)``."""
    from scipy.optimize import brentq  # here, not at the top: importing simstudy.dgp stays light

    sd = math.sqrt(var)
    centre = math.log(prevalence / (1.0 - prevalence))
    width = 10.0 + 4.0 * sd
    return float(brentq(lambda b: normal_expectation(lambda u: expit(b + u), sd) - prevalence,
                        centre - width, centre + width, xtol=1e-14, rtol=4 * np.finfo(float).eps, maxiter=200))


def check_arm_design(n_clusters: Any, cluster_size: Any, size_spread: Any) -> tuple[int, int, float]:
    """Check the design factors shared by the two-arm trials; return them as ``(K, m, cv)``."""
    K = check_count("n_clusters", n_clusters, minimum=2)
    m = check_count("cluster_size", cluster_size)
    s = check_nonnegative("size_spread", size_spread)
    if s > 0 and s >= max_size_spread(K, m):
        raise ValueError(
            f"factor 'size_spread' must be below {max_size_spread(K, m):.4g} "
            f"(the largest CV possible with n_clusters={K}, cluster_size={m}), got {size_spread!r}"
        )
    return K, m, s


def draw_design(rng: np.random.Generator, K: int, m: int, s: float) -> tuple[np.ndarray, np.ndarray]:
    """Cluster of every unit (sizes with CV ``s``, as :class:`~simstudy.dgp.RandomIntercept`) and the
    clusters' arms (``floor(K / 2)`` treated, at random)."""
    sizes = _unequal_sizes(rng, K, m, s) if s > 0 else np.full(K, m)
    cluster = np.repeat(np.arange(K), sizes)
    treat = np.zeros(K, np.int64)
    treat[rng.permutation(K)[: K // 2]] = 1
    return cluster, treat


def select(truth: dict[str, Any], estimands: Sequence[str]) -> dict[str, Any]:
    """Keep only the ``estimands`` keys of the per-estimand mappings of ``truth``."""
    return {k: {e: v[e] for e in estimands} if isinstance(v, dict) else v for k, v in truth.items()}


def check_estimands(estimands: Sequence[str]) -> tuple[str, ...]:
    """Check a DGP's ``estimands`` argument: a non-empty sequence of labels from :data:`ESTIMANDS`."""
    out = (estimands,) if isinstance(estimands, str) else tuple(estimands)
    bad = [e for e in out if e not in ESTIMANDS]
    if not out or bad:
        raise ValueError(f"estimands must be labels from {ESTIMANDS}, got {estimands!r}")
    return out


@dataclass(slots=True)
class BinaryTrialFactors:
    """The factors of :class:`BinaryTrial` (documented there), with their defaults; values are not converted."""

    n_clusters: int = 20
    cluster_size: int = 30
    size_spread: float = 0.0
    prevalence: float = 0.3
    odds_ratio: float = 1.0
    icc: float = 0.05

    def check(self) -> None:
        """Raise ``ValueError`` naming the first factor whose value is not allowed."""
        check_arm_design(self.n_clusters, self.cluster_size, self.size_spread)
        p = check_proportion("prevalence", self.prevalence)
        if p == 0:
            raise ValueError(f"factor 'prevalence' must lie in (0, 1), got {self.prevalence!r}")
        check_positive("odds_ratio", self.odds_ratio)
        check_proportion("icc", self.icc)


@lru_cache(maxsize=1024)
def binary_parameters(prevalence: float, odds_ratio: float, icc: float) -> dict[str, float]:
    """``var``, ``b0``, ``b1`` (conditional), ``p0``, ``p1`` (marginal risks) and the marginal observed-scale
    ``icc_observed`` of the control arm, for :class:`BinaryTrial`'s factors."""
    var = latent_variance(icc)
    sd = math.sqrt(var)
    b0 = logistic_normal_intercept(prevalence, var)
    b1 = math.log(odds_ratio)
    p0 = normal_expectation(lambda u: expit(b0 + u), sd)
    p1 = normal_expectation(lambda u: expit(b0 + b1 + u), sd)
    between = normal_expectation(lambda u: (expit(b0 + u) - p0) ** 2, sd)
    return {"var": var, "b0": b0, "b1": b1, "p0": p0, "p1": p1, "icc_observed": between / (p0 * (1.0 - p0))}


class BinaryTrial:
    r"""Two-arm cluster-randomised trial with a binary outcome: a random-intercept logistic model.

    For unit :math:`i` of cluster :math:`j = 0, \dots, K-1`:

    .. math:: y_{ij} \mid u_j \sim \mathrm{Bernoulli}(p_{ij}), \qquad
              \mathrm{logit}\, p_{ij} = \beta_0 + \beta_1\, \mathrm{treat}_j + u_j, \qquad
              u_j \sim N(0, \sigma_u^2).

    Exactly ``floor(K / 2)`` clusters are treated, chosen at random in each replicate.

    Factors (fields of :attr:`factors`, keyword arguments of :meth:`generate`, :meth:`truth`, :meth:`validate`)
    -----------------------------------------------------------------------------------------------------------
    n_clusters : int, default 20
        Number of clusters :math:`K` (at least 2; 4 is fine).
    cluster_size : int, default 30
        Mean cluster size :math:`m`; the total is always :math:`K m`.
    size_spread : float, default 0.0
        Coefficient of variation of the cluster sizes, drawn afresh in each replicate exactly as
        :class:`~simstudy.dgp.RandomIntercept`'s ``size_spread`` (every size at least 1, mean exactly
        :math:`m`, expected squared CV ``size_spread**2``).
    prevalence : float, default 0.3
        The control arm's **marginal** risk :math:`\pi_0 = E[\mathrm{expit}(\beta_0 + u)]`, in (0, 1): the
        proportion of events expected in the control arm as a whole. :math:`\beta_0` is solved from it (to
        1e-14).
    odds_ratio : float, default 1.0
        The **conditional** (cluster-specific) odds ratio :math:`e^{\beta_1}` (positive).
    icc : float, default 0.05
        The ICC on the latent scale, :math:`\sigma_u^2 / (\sigma_u^2 + \pi^2/3)`, in [0, 1): the correlation
        of the latent logistic responses :math:`y^*_{ij} = \beta_0 + \beta_1 \mathrm{treat}_j + u_j +
        \varepsilon_{ij}`, :math:`\varepsilon` standard logistic, of which :math:`y = 1\{y^* > 0\}`. So
        :math:`\sigma_u^2 = \mathrm{icc}\,(\pi^2/3) / (1 - \mathrm{icc})`. The correlation of two binary
        responses of a control cluster (the observed-scale ICC) is smaller:
        :math:`\mathrm{Var}_u(\mathrm{expit}(\beta_0 + u)) / (\pi_0 (1 - \pi_0))`
        (:func:`binary_parameters`' ``icc_observed``).

    Columns: ``y`` (float 0/1), ``treat`` (int 0/1, constant within cluster), ``cluster`` (int codes
    0..K-1, sorted).

    Estimands (:meth:`truth`), with :math:`\pi_t = E_u[\mathrm{expit}(\beta_0 + \beta_1 t + u)]` the marginal
    risk of arm :math:`t`, computed by :func:`normal_expectation` (exact to rounding):

    - ``Intercept``: ``conditional`` :math:`\beta_0`; ``marginal`` :math:`\mathrm{logit}\,\pi_0`;
      ``difference`` :math:`\pi_0`; ``log-ratio`` :math:`\log \pi_0`;
    - ``treat``: ``conditional`` :math:`\beta_1` (GLMM); ``marginal`` :math:`\mathrm{logit}\,\pi_1 -
      \mathrm{logit}\,\pi_0` (the population-averaged log odds ratio, GEE; closer to 0 than
      :math:`\beta_1` whenever :math:`\sigma_u^2 > 0` and :math:`\beta_1 \ne 0`); ``difference``
      :math:`\pi_1 - \pi_0` and ``log-ratio`` :math:`\log(\pi_1 / \pi_0)` (the cluster-level analyses:
      the mean of the cluster proportions of arm :math:`t` has expectation :math:`\pi_t` whatever the
      cluster sizes, since sizes do not depend on :math:`u`);
    - ``var(cluster)``: :math:`\sigma_u^2` (a plain number).

    Parameters
    ----------
    estimands : sequence of str, default all of :data:`ESTIMANDS`
        The labels kept in the per-estimand mappings of :meth:`truth`. A study refuses mapping keys that no
        estimator targets, so a study comparing GEE and a GLMM only passes ``("conditional", "marginal")``.
    """

    #: The factors this DGP takes, with their defaults (read by :func:`simstudy.dgp.base.factor_names`).
    factors = BinaryTrialFactors

    def __init__(self, estimands: Sequence[str] = ESTIMANDS) -> None:
        self.estimands = check_estimands(estimands)

    def __repr__(self) -> str:
        return "BinaryTrial()" if self.estimands == ESTIMANDS else f"BinaryTrial(estimands={self.estimands!r})"

    def generate(self, rng: np.random.Generator, **factors: Any) -> dict[str, np.ndarray]:
        """Draw one replicate (call :meth:`validate` once per cell first; this does not check)."""
        f = self.factors(**factors)
        par = binary_parameters(float(f.prevalence), float(f.odds_ratio), float(f.icc))
        cluster, treat = draw_design(rng, int(f.n_clusters), int(f.cluster_size), float(f.size_spread))
        eta = rng.normal(par["b0"], math.sqrt(par["var"]), treat.shape[0]) + par["b1"] * treat
        y = (rng.random(cluster.shape[0]) < expit(eta)[cluster]).astype(np.float64)
        return {"y": y, "treat": treat[cluster], "cluster": cluster}

    def truth(self, **factors: Any) -> dict[str, Any]:
        """True values of ``Intercept``, ``treat`` (per estimand) and ``var(cluster)``."""
        f = self.factors(**factors)
        par = binary_parameters(float(f.prevalence), float(f.odds_ratio), float(f.icc))
        p0, p1 = par["p0"], par["p1"]
        logit0, logit1 = math.log(p0 / (1 - p0)), math.log(p1 / (1 - p1))
        truth = {
            "Intercept": {"conditional": par["b0"], "marginal": logit0, "difference": p0, "log-ratio": math.log(p0)},
            "treat": {"conditional": par["b1"], "marginal": logit1 - logit0, "difference": p1 - p0,
                      "log-ratio": math.log(p1 / p0)},
            "var(cluster)": par["var"],
        }
        return select(truth, self.estimands)

    def validate(self, **factors: Any) -> None:
        """Raise ``ValueError`` naming the first factor whose value is not allowed."""
        self.factors(**factors).check()
