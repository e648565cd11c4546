"""Two-level random-intercept data: units in groups, a unit-level covariate and a group-level treatment."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from simstudy.dgp.base import check_count, check_nonnegative, check_positive, check_proportion, check_real

#: ICC used when neither ``icc`` nor ``group_var`` is given.
DEFAULT_ICC = 0.1


def design_effect(group_size: float, icc: float, size_cv: float = 0.0) -> float:
    """Design effect of cluster sampling: the factor by which clustering inflates the variance of a mean.

    ``1 + (m - 1) * icc`` for equal group sizes ``m`` (Kish); with unequal sizes of mean ``m`` and
    coefficient of variation ``size_cv`` (Eldridge, Ashby & Kerry 2006), ``1 + ((size_cv**2 + 1) * m - 1) * icc``.
    Naive OLS standard errors of a cluster-level effect are too small by about ``sqrt(design_effect)``.
    """
    return 1.0 + ((size_cv**2 + 1.0) * group_size - 1.0) * icc


def max_size_spread(n_groups: int, group_size: int) -> float:
    """Largest possible CV of group sizes with mean ``group_size`` and every group of size at least 1.

    Reached when one group has ``n_groups * (group_size - 1) + 1`` units and every other group one unit.
    """
    return (group_size - 1) * math.sqrt(n_groups - 1) / group_size


@dataclass(slots=True)
class RandomInterceptFactors:
    """The factors of :class:`RandomIntercept` (documented there), with their defaults; values are not converted."""

    n_groups: int = 30
    group_size: int = 20
    size_spread: float = 0.0
    group_var: float | None = None
    icc: float | None = None
    resid_var: float = 1.0
    beta_x: float = 0.5
    treatment_effect: float = 0.0
    intercept: float = 0.0

    def check(self) -> None:
        """Raise ``ValueError`` naming the first factor whose value is not allowed."""
        G = check_count("n_groups", self.n_groups, minimum=2)
        m = check_count("group_size", self.group_size)
        s = check_nonnegative("size_spread", self.size_spread)
        if s > 0 and s >= max_size_spread(G, m):
            raise ValueError(
                f"factor 'size_spread' must be below {max_size_spread(G, m):.4g} "
                f"(the largest CV possible with n_groups={G}, group_size={m}), got {self.size_spread!r}"
            )
        check_positive("resid_var", self.resid_var)
        if self.group_var is not None and self.icc is not None:
            raise ValueError(
                "factors 'group_var' and 'icc' are alternatives: give one, "
                f"got group_var={self.group_var!r}, icc={self.icc!r}"
            )
        if self.group_var is not None:
            check_nonnegative("group_var", self.group_var)
        if self.icc is not None:
            check_proportion("icc", self.icc)
        for name in ("beta_x", "treatment_effect", "intercept"):
            check_real(name, getattr(self, name))

    def group_variance(self) -> float:
        """Between-group variance: ``group_var`` if given, else from ``icc`` (:data:`DEFAULT_ICC` if neither)."""
        if self.group_var is not None:
            return float(self.group_var)
        icc = DEFAULT_ICC if self.icc is None else self.icc
        return float(icc * self.resid_var / (1.0 - icc))


class RandomIntercept:
    r"""Two-level random-intercept model with a unit-level covariate and a cluster-randomised treatment.

    Model, for unit :math:`i` in group :math:`j = 0, \dots, G-1`:

    .. math:: y_{ij} = \beta_0 + \beta_x x_{ij} + \tau\, \mathrm{treat}_j + u_j + e_{ij},

    with :math:`x_{ij} \sim N(0, 1)`, :math:`u_j \sim N(0, \sigma_u^2)`, :math:`e_{ij} \sim N(0, \sigma_e^2)`,
    all independent. Exactly ``floor(G / 2)`` groups are treated (``treat = 1``), chosen at random in each
    replicate (a completely randomised cluster-level assignment).

    Factors (fields of :attr:`factors`, keyword arguments of :meth:`generate`, :meth:`truth`, :meth:`validate`)
    -----------------------------------------------------------------------------------------------------------
    n_groups : int, default 30
        Number of groups :math:`G` (at least 2, so that both arms have a group).
    group_size : int, default 20
        Mean group size :math:`m` (at least 1). The total sample size is always :math:`N = G m`.
    size_spread : float, default 0.0
        Coefficient of variation :math:`s` of the group sizes. 0 gives equal sizes :math:`m`. For
        :math:`s > 0` the sizes are drawn afresh in each replicate: proportions
        :math:`p \sim \mathrm{Dirichlet}(k, \dots, k)`, continuous sizes :math:`c_j = 1 + G(m-1) p_j`, then
        integers by systematic rounding (:math:`n_j` is :math:`\lfloor c_j \rfloor` or
        :math:`\lceil c_j \rceil`, unbiased, with the total kept). So every size is at least 1 and the sizes'
        mean is exactly :math:`m` in every replicate. :math:`k` is set so that the sizes' squared CV (population
        SD over mean, divisor :math:`G`) has expectation :math:`s^2`: :math:`\mathrm{Var}(c_j) =
        (m-1)^2 (G-1) / (G k + 1)` is set to :math:`v` with :math:`v + E[f(1-f)] = s^2 m^2`, the second term
        (:math:`f` the fractional part of :math:`c_j`) being the variance rounding adds, computed for a normal
        :math:`c_j` (about 1/6 for any shape when :math:`v` is large; when :math:`v` is small, :math:`k` is large
        and :math:`c_j` near normal). Checked by simulation to within 0.5% in CV
        for s from 0.01 to 2.3. :math:`s` must be below :func:`max_size_spread` (needs :math:`m \ge 2`).
    group_var : float or None, default None
        Between-group variance :math:`\sigma_u^2`. Give this or ``icc``, not both.
    icc : float or None, default None
        Intraclass correlation :math:`\sigma_u^2 / (\sigma_u^2 + \sigma_e^2)` in [0, 1); sets
        :math:`\sigma_u^2 = \mathrm{icc}\, \sigma_e^2 / (1 - \mathrm{icc})`. With neither given, icc is
        :data:`DEFAULT_ICC` (0.1).
    resid_var : float, default 1.0
        Residual variance :math:`\sigma_e^2` (positive).
    beta_x : float, default 0.5
        Slope :math:`\beta_x` of the covariate ``x``.
    treatment_effect : float, default 0.0
        Treatment effect :math:`\tau`.
    intercept : float, default 0.0
        Intercept :math:`\beta_0`.

    Columns: ``y``, ``x`` (float), ``treat`` (int 0/1, constant within group), ``group`` (int codes 0..G-1,
    sorted).

    Estimands (:meth:`truth`): ``Intercept`` = :math:`\beta_0`, ``x`` = :math:`\beta_x`, ``treat`` =
    :math:`\tau` (the coefficients of ``y ~ x + treat``), ``var(group)`` = :math:`\sigma_u^2`,
    ``var(residual)`` = :math:`\sigma_e^2`.
    """

    #: The factors this DGP takes, with their defaults (read by :func:`simstudy.dgp.base.factor_names`).
    factors = RandomInterceptFactors

    def generate(self, rng: np.random.Generator, **factors: Any) -> dict[str, np.ndarray]:
        """Draw one replicate (call :meth:`validate` once per cell first; this does not check)."""
        f = self.factors(**factors)
        G, m = int(f.n_groups), int(f.group_size)
        n = G * m
        sd_u = math.sqrt(f.group_variance())
        if f.size_spread > 0:
            sizes = _unequal_sizes(rng, G, m, float(f.size_spread))
            group = np.repeat(np.arange(G), sizes)
        else:
            group = np.repeat(np.arange(G), m)
        treat_g = np.zeros(G, np.int64)
        treat_g[rng.permutation(G)[: G // 2]] = 1
        level = rng.normal(0.0, sd_u, G)
        level += f.treatment_effect * treat_g
        x = rng.standard_normal(n)
        y = rng.normal(f.intercept, math.sqrt(f.resid_var), n)
        y += f.beta_x * x
        y += level[group]
        return {"y": y, "x": x, "treat": treat_g[group], "group": group}

    def truth(self, **factors: Any) -> dict[str, float]:
        """True values of ``Intercept``, ``x``, ``treat``, ``var(group)``, ``var(residual)``."""
        f = self.factors(**factors)
        return {
            "Intercept": float(f.intercept),
            "x": float(f.beta_x),
            "treat": float(f.treatment_effect),
            "var(group)": f.group_variance(),
            "var(residual)": float(f.resid_var),
        }

    def validate(self, **factors: Any) -> None:
        """Raise ``ValueError`` naming the first factor whose value is not allowed."""
        self.factors(**factors).check()


def _unequal_sizes(rng: np.random.Generator, G: int, m: int, s: float) -> np.ndarray:
    """Group sizes >= 1 summing to ``G * m`` whose squared CV has expectation ``s**2`` (see RandomIntercept)."""
    extra = G * (m - 1)
    k = _dirichlet_shape(G, m, s)
    # Dirichlet(k, ..., k) proportions as normalised gammas; for tiny k numpy's dirichlet avoids underflow.
    w = rng.standard_gamma(k, G) if k >= 0.05 else rng.dirichlet(np.full(G, k))
    cum = np.cumsum(w)
    cum *= extra / cum[-1]
    np.minimum(cum, extra, out=cum)
    cum[-1] = extra
    cum += rng.random()
    edges = cum.astype(np.int64)  # floor: systematic rounding of the cumulative sizes, total kept
    sizes = edges.copy()
    sizes[1:] -= edges[:-1]
    sizes += 1
    return sizes


@lru_cache(maxsize=1024)
def _dirichlet_shape(G: int, m: int, s: float) -> float:
    """Dirichlet shape k giving the continuous sizes the variance v with v + rounding(v) = (s m)^2.

    Rounding c to floor(c) or floor(c) + 1 with probability frac(c) adds E[f (1 - f)], f = frac(c), to the
    variance. For c ~ N(integer, v) (the marginal is near normal whenever v is small, and the correction
    vanishes when v is large), E[f (1 - f)] = 1/6 - sum_j exp(-2 pi^2 j^2 v) / (pi^2 j^2) by the Fourier
    series of f (1 - f); for v < 0.0025 it is sqrt(2 v / pi) - v to double precision.
    """
    target = (s * m) ** 2
    j = np.arange(1, 201)

    def with_rounding(v: float) -> float:
        if v < 0.0025:
            return math.sqrt(2 * v / math.pi)  # v + (sqrt(2 v / pi) - v)
        return v + 1 / 6 - float(np.sum(np.exp(-2 * math.pi**2 * j**2 * v) / (math.pi**2 * j**2)))

    lo, hi = 0.0, target
    for _ in range(80):  # bisection: with_rounding is increasing, 0 at 0 and >= target at target
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if with_rounding(mid) < target else (lo, mid)
    v = 0.5 * (lo + hi)
    return ((m - 1) ** 2 * (G - 1) / v - 1.0) / G
