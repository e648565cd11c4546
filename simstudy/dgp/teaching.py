"""Students within instructors within teaching methods, with a capped high-school GPA as covariate."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simstudy.dgp.base import check_count, check_nonnegative, check_positive, check_real, check_sequence


def capped_normal_moments(mean: float, sd: float, cap: float) -> tuple[float, float]:
    """Mean and variance of ``min(X, cap)`` for ``X ~ N(mean, sd**2)`` (a normal censored from above).

    With ``a = (cap - mean) / sd``, ``phi``/``Phi`` the standard normal density/CDF and
    ``Z ~ N(0, 1)``: ``E[min(Z, a)] = a (1 - Phi(a)) - phi(a)`` and
    ``E[min(Z, a)**2] = Phi(a) - a phi(a) + a**2 (1 - Phi(a))``; then rescale by ``mean + sd * .``.
    """
    if sd == 0:
        return min(mean, cap), 0.0
    a = (cap - mean) / sd
    pdf = math.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)
    upper = 0.5 * math.erfc(a / math.sqrt(2))  # 1 - Phi(a), accurate in the tail
    m1 = a * upper - pdf
    m2 = (1.0 - upper) - a * pdf + a * a * upper
    return mean + sd * m1, sd * sd * max(m2 - m1 * m1, 0.0)


@dataclass(slots=True)
class TeachingMethodsFactors:
    """The factors of :class:`TeachingMethods` (documented there), with their defaults; values are not converted."""

    n_methods: int = 3
    instructors_per_method: int = 10
    students_per_instructor: int = 20
    instructor_sd: float = 3.0
    resid_sd: float = 10.0
    method_effects_pct: Sequence[float] = (0.0, 5.0, 10.0)
    base_score: float = 70.0
    gpa_slope: float = 10.0
    gpa_mean: float = 3.0
    gpa_sd: float = 0.25

    def check(self) -> None:
        """Raise ``ValueError`` naming the first factor whose value is not allowed."""
        K = check_count("n_methods", self.n_methods, minimum=2)
        check_count("instructors_per_method", self.instructors_per_method)
        check_count("students_per_instructor", self.students_per_instructor)
        check_nonnegative("instructor_sd", self.instructor_sd)
        check_positive("resid_sd", self.resid_sd)
        pct = check_sequence("method_effects_pct", self.method_effects_pct, K, "n_methods")
        for p in pct:
            check_real("method_effects_pct", p)
        for name in ("base_score", "gpa_slope", "gpa_mean"):
            check_real(name, getattr(self, name))
        check_nonnegative("gpa_sd", self.gpa_sd)


class TeachingMethods:
    r"""Students nested in instructors nested in teaching methods, with high-school GPA as a covariate.

    Model, for student :math:`i` of instructor :math:`j` who teaches with method :math:`k = 0, \dots, K-1`:

    .. math:: \mathrm{score}_{ijk} = b\,(1 + p_k / 100) + \gamma\,(g_{i} - 3) + u_{j} + e_{i},
              \qquad g_i = \min(g^*_i, 4),

    with :math:`g^*_i \sim N(\mu_g, \sigma_g^2)` (high-school GPA, then capped at 4: a real cap, many values
    equal 4 when :math:`\mu_g` is near 4), :math:`u_j \sim N(0, \sigma_u^2)`, :math:`e_i \sim N(0, \sigma_e^2)`,
    all independent. Every instructor teaches with one method only: instructors are nested in methods, so a
    method effect is a between-instructor comparison and its precision rests on the number of instructors,
    not of students. The cap (4) and the centring constant (3) are constructor arguments ``gpa_cap`` and
    ``gpa_centre``.

    Factors (fields of :attr:`factors`, keyword arguments of :meth:`generate`, :meth:`truth`, :meth:`validate`)
    -----------------------------------------------------------------------------------------------------------
    n_methods : int, default 3
        Number of methods :math:`K` (at least 2).
    instructors_per_method : int, default 10
    students_per_instructor : int, default 20
    instructor_sd, resid_sd : float, default 3.0 and 10.0
        :math:`\sigma_u` and :math:`\sigma_e`, in score points (``resid_sd`` positive).
    method_effects_pct : sequence of K floats, default (0, 5, 10)
        :math:`p_k`: the mean score of method :math:`k` at :math:`g = 3` is :math:`p_k` percent above
        ``base_score`` (method 0 is the reference level of ``C(method)``).
    base_score : float, default 70.0
        :math:`b`, the baseline mean score (at :math:`g = 3`, :math:`p = 0`).
    gpa_slope : float, default 10.0
        :math:`\gamma`, score points per GPA point.
    gpa_mean, gpa_sd : float, default 3.0 and 0.25
        :math:`\mu_g`, :math:`\sigma_g` of the GPA before the cap.

    Columns: ``score``, ``hs_gpa`` (the capped :math:`g`), ``instructor`` (int ids unique across methods,
    ``k * instructors_per_method + j``), ``method`` (int 0..K-1).

    Estimands (:meth:`truth`), all on the score scale (points), never in percent:

    - ``C(method)[T.k]`` = :math:`b (p_k - p_0) / 100`: the difference in expected score between method k
      and method 0, for equal GPA and also averaged over students and instructors (the GPA distribution is
      the same under every method).
    - With ``adjust_gpa=True`` (default; the model ``score ~ hs_gpa + C(method)``): ``Intercept`` =
      :math:`b (1 + p_0/100) - 3\gamma`, the expected score under method 0 at ``hs_gpa = 0``; ``hs_gpa`` =
      :math:`\gamma` (the model is linear in the capped GPA, so the cap does not change the slope);
      ``var(instructor)`` = :math:`\sigma_u^2`; ``var(residual)`` = :math:`\sigma_e^2`. The cap does not enter.
    - With ``adjust_gpa=False`` (the model ``score ~ C(method)``): ``Intercept`` = the expected score under
      method 0, :math:`b (1 + p_0/100) + \gamma (E[g] - 3)`, where :math:`E[g]` is the exact mean of the
      capped normal (:func:`capped_normal_moments`); ``var(residual)`` =
      :math:`\sigma_e^2 + \gamma^2 \mathrm{Var}(g)`, with the capped normal's exact variance; no ``hs_gpa``.
    """

    def __init__(self, adjust_gpa: bool = True, gpa_cap: float = 4.0, gpa_centre: float = 3.0) -> None:
        self.adjust_gpa = adjust_gpa
        self.gpa_cap = float(gpa_cap)
        self.gpa_centre = float(gpa_centre)

    #: The factors this DGP takes, with their defaults (read by :func:`simstudy.dgp.base.factor_names`).
    factors = TeachingMethodsFactors

    def generate(self, rng: np.random.Generator, **factors: Any) -> dict[str, np.ndarray]:
        """Draw one replicate (call :meth:`validate` once per cell first; this does not check)."""
        f = self.factors(**factors)
        K, J, S = int(f.n_methods), int(f.instructors_per_method), int(f.students_per_instructor)
        n_inst, n = K * J, K * J * S
        instructor = np.repeat(np.arange(n_inst), S)
        method_mean = f.base_score * (1.0 + np.asarray(f.method_effects_pct, dtype=float) / 100.0)
        level = rng.normal(0.0, f.instructor_sd, n_inst)
        level += np.repeat(method_mean - f.gpa_slope * self.gpa_centre, J)
        hs_gpa = np.minimum(rng.normal(f.gpa_mean, f.gpa_sd, n), self.gpa_cap)
        score = rng.normal(0.0, f.resid_sd, n)
        score += f.gpa_slope * hs_gpa
        score += level[instructor]
        return {"score": score, "hs_gpa": hs_gpa, "instructor": instructor, "method": instructor // J}

    def truth(self, **factors: Any) -> dict[str, float]:
        """True values of the estimands (see the class docstring), by parameter name."""
        f = self.factors(**factors)
        pct = [float(p) for p in f.method_effects_pct]
        base0 = f.base_score * (1.0 + pct[0] / 100.0)
        out: dict[str, float] = {}
        if self.adjust_gpa:
            out["Intercept"] = base0 - f.gpa_slope * self.gpa_centre
            out["hs_gpa"] = float(f.gpa_slope)
            resid = f.resid_sd**2
        else:
            mean_g, var_g = capped_normal_moments(f.gpa_mean, f.gpa_sd, self.gpa_cap)
            out["Intercept"] = base0 + f.gpa_slope * (mean_g - self.gpa_centre)
            resid = f.resid_sd**2 + f.gpa_slope**2 * var_g
        for k in range(1, len(pct)):
            out[f"C(method)[T.{k}]"] = f.base_score * (pct[k] - pct[0]) / 100.0
        out["var(instructor)"] = float(f.instructor_sd) ** 2
        out["var(residual)"] = float(resid)
        return out

    def validate(self, **factors: Any) -> None:
        """Raise ``ValueError`` naming the first factor whose value is not allowed."""
        self.factors(**factors).check()


# ---------------------------------------------------------------------------------------------------------------
# The seed notebook's multiplicative model
# ---------------------------------------------------------------------------------------------------------------
