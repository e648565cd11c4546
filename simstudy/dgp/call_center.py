"""Calls within representatives within call centres: three levels, a categorical call reason, caller age."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simstudy.dgp.base import check_count, check_nonnegative, check_positive, check_real


@dataclass(slots=True)
class CallCenterFactors:
    """The factors of :class:`CallCenter` (documented there), with their defaults; values are not converted."""

    n_centres: int = 10
    reps_per_centre: int = 6
    calls_per_rep: int = 10
    centre_var: float = 0.2
    rep_var: float = 0.3
    resid_var: float = 1.5
    age_effect: float = 0.01
    reason_effects: Sequence[float] = (-0.8, -0.4)
    treatment_effect: float = 0.0
    intercept: float = 7.0

    def check(self, reasons: Sequence[str]) -> None:
        """Raise ``ValueError`` naming the first factor whose value is not allowed (``reasons``: the DGP's labels)."""
        check_count("n_centres", self.n_centres, minimum=2)
        check_count("reps_per_centre", self.reps_per_centre)
        check_count("calls_per_rep", self.calls_per_rep)
        check_nonnegative("centre_var", self.centre_var)
        check_nonnegative("rep_var", self.rep_var)
        check_positive("resid_var", self.resid_var)
        effects, n_eff = self.reason_effects, len(reasons) - 1
        if isinstance(effects, (str, bytes)) or np.ndim(effects) != 1 or len(effects) != n_eff:
            raise ValueError(
                f"factor 'reason_effects' must be {n_eff} numbers (for {', '.join(reasons[1:])}), got {effects!r}"
            )
        for effect in effects:
            check_real("reason_effects", effect)
        for name in ("age_effect", "treatment_effect", "intercept"):
            check_real(name, getattr(self, name))


class CallCenter:
    r"""Customer satisfaction of calls nested in representatives nested in centres (``call_CSAT ~ reason + age``).

    Model, for call :math:`i` answered by representative :math:`r` of centre :math:`c`:

    .. math:: \mathrm{CSAT}_{icr} = \beta_0 + \sum_{l \ge 1} \delta_l\, 1[\mathrm{reason}_i = l]
              + \beta_a\, \mathrm{age}_i + \tau\, \mathrm{treat}_c + v_c + w_{r} + e_i,

    with :math:`v_c \sim N(0, \sigma_c^2)`, :math:`w_r \sim N(0, \sigma_r^2)`, :math:`e_i \sim N(0, \sigma_e^2)`,
    caller age :math:`\min(\max(A, 18), 90)` with :math:`A \sim N(45, 15^2)` (clipped, not redrawn), and the
    call reason drawn among the labels ``reasons`` with probabilities ``reason_probs``; all independent. CSAT is
    a continuous score, not bounded or rounded (that would make the model non-linear). Exactly
    ``floor(C / 2)`` centres are treated (``treat = 1``), chosen at random in each replicate (a
    cluster-randomised experiment at centre level).

    Parameters (constructor; fixed, not design factors)
    ---------------------------------------------------
    reasons : tuple of str, default ("billing", "cancel", "technical")
        Call-reason labels, in sorted order: the first is the reference level of ``C(reason)``.
    reason_probs : tuple of float, default (0.5, 0.2, 0.3)
    age_mean, age_sd, age_limits : default 45, 15, (18, 90)

    Factors (fields of :attr:`factors`, keyword arguments of :meth:`generate`, :meth:`truth`, :meth:`validate`)
    -----------------------------------------------------------------------------------------------------------
    n_centres : int, default 10
        Number of centres :math:`C` (at least 2).
    reps_per_centre, calls_per_rep : int, default 6 and 10
    centre_var, rep_var, resid_var : float, default 0.2, 0.3 and 1.5
        :math:`\sigma_c^2`, :math:`\sigma_r^2`, :math:`\sigma_e^2` (``resid_var`` positive).
    age_effect : float, default 0.01
        :math:`\beta_a`, CSAT points per year of (clipped) age.
    reason_effects : sequence of floats, default (-0.8, -0.4)
        :math:`\delta_l` for the non-reference reasons, in the order of ``reasons[1:]``.
    treatment_effect : float, default 0.0
        :math:`\tau`.
    intercept : float, default 7.0
        :math:`\beta_0`: expected CSAT of a billing call, age 0, control centre.

    Columns: ``call_CSAT``, ``age`` (float), ``reason`` (numpy str array), ``centre`` (int 0..C-1), ``rep``
    (int ids unique across centres, ``c * reps_per_centre + r``), ``treat`` (int 0/1, constant within centre).

    Estimands (:meth:`truth`): the coefficients of ``call_CSAT ~ C(reason) + age + treat``: ``Intercept`` =
    :math:`\beta_0`, ``C(reason)[T.<label>]`` = :math:`\delta_l`, ``age`` = :math:`\beta_a` (exactly: the model
    is linear in the clipped age), ``treat`` = :math:`\tau`; ``var(centre)`` = :math:`\sigma_c^2`,
    ``var(rep)`` = :math:`\sigma_r^2`, ``var(residual)`` = :math:`\sigma_e^2`. In a small replicate a rare
    reason may not occur; its coefficient is then not estimable there.
    """

    #: The factors this DGP takes, with their defaults (read by :func:`simstudy.dgp.base.factor_names`).
    factors = CallCenterFactors

    def __init__(
        self,
        reasons: Sequence[str] = ("billing", "cancel", "technical"),
        reason_probs: Sequence[float] = (0.5, 0.2, 0.3),
        age_mean: float = 45.0,
        age_sd: float = 15.0,
        age_limits: tuple[float, float] = (18.0, 90.0),
    ) -> None:
        if len(reasons) < 2 or list(reasons) != sorted(set(reasons)):
            raise ValueError(f"reasons must be two or more distinct labels in sorted order, got {reasons!r}")
        probs = np.asarray(reason_probs, dtype=float)
        if probs.shape != (len(reasons),) or np.any(probs <= 0) or not math.isclose(probs.sum(), 1.0):
            raise ValueError(f"reason_probs must be {len(reasons)} positive numbers summing to 1, got {reason_probs!r}")
        if not age_limits[0] < age_limits[1] or age_sd < 0:
            raise ValueError(f"need age_limits[0] < age_limits[1] and age_sd >= 0, got {age_limits!r}, {age_sd!r}")
        self.reasons = tuple(reasons)
        self.reason_probs = tuple(float(p) for p in probs)
        self.age_mean, self.age_sd, self.age_limits = float(age_mean), float(age_sd), tuple(age_limits)
        self._labels = np.array(self.reasons)
        self._cum = np.cumsum(probs)[:-1] / probs.sum()

    def generate(self, rng: np.random.Generator, **factors: Any) -> dict[str, np.ndarray]:
        """Draw one replicate (call :meth:`validate` once per cell first; this does not check)."""
        f = self.factors(**factors)
        C, R, K = int(f.n_centres), int(f.reps_per_centre), int(f.calls_per_rep)
        n_rep, n = C * R, C * R * K
        rep = np.repeat(np.arange(n_rep), K)
        centre = rep // R
        treat_c = np.zeros(C, np.int64)
        treat_c[rng.permutation(C)[: C // 2]] = 1
        level_c = rng.normal(f.intercept, math.sqrt(f.centre_var), C)
        level_c += f.treatment_effect * treat_c
        level_r = rng.normal(0.0, math.sqrt(f.rep_var), n_rep)
        level_r += np.repeat(level_c, R)
        age = rng.normal(self.age_mean, self.age_sd, n)
        np.clip(age, self.age_limits[0], self.age_limits[1], out=age)
        u = rng.random(n)
        code = (u >= self._cum[0]).astype(np.intp)  # reason code = number of cumulative probabilities <= u
        for c in self._cum[1:]:
            code += u >= c
        shift = np.array((0.0, *f.reason_effects), dtype=float)
        y = rng.normal(0.0, math.sqrt(f.resid_var), n)
        y += f.age_effect * age
        y += shift[code]
        y += level_r[rep]
        return {
            "call_CSAT": y,
            "age": age,
            "reason": self._labels.take(code),
            "centre": centre,
            "rep": rep,
            "treat": treat_c[centre],
        }

    def truth(self, **factors: Any) -> dict[str, float]:
        """True values of the estimands (see the class docstring), by parameter name."""
        f = self.factors(**factors)
        out = {"Intercept": float(f.intercept)}
        for label, effect in zip(self.reasons[1:], f.reason_effects, strict=True):
            out[f"C(reason)[T.{label}]"] = float(effect)
        out.update(
            {
                "age": float(f.age_effect),
                "treat": float(f.treatment_effect),
                "var(centre)": float(f.centre_var),
                "var(rep)": float(f.rep_var),
                "var(residual)": float(f.resid_var),
            }
        )
        return out

    def validate(self, **factors: Any) -> None:
        """Raise ``ValueError`` naming the first factor whose value is not allowed."""
        self.factors(**factors).check(self.reasons)
