"""The seed notebook's multiplicative teaching model: scores capped at 100, multiplicative instructor and
method effects, students within instructors within teaching methods; estimands by exact quadrature."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simstudy.dgp.base import check_count, check_nonnegative, check_positive, check_real, check_sequence
from simstudy.dgp.teaching import capped_normal_moments  # noqa: F401 - shared with the additive model

#: Gauss-Legendre nodes per panel, widest panel and range kept (in standard-normal units) of the quadrature
#: behind :meth:`TeachingMethodsMultiplicative.truth`; the mass outside +-10 SD is below 2e-23.
_GL_ORDER = 20
_GL_PANEL = 1.0
_GL_TAIL = 10.0
_SQRT2 = math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _capped_normal_mean_var(mean: np.ndarray, sd: np.ndarray, cap: float) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise :func:`capped_normal_moments` for arrays, ``sd > 0``; ``cap`` may be ``inf`` (no cap)."""
    from scipy.special import erfc  # here, not at the top: importing simstudy.dgp stays light

    mean, sd = np.broadcast_arrays(np.asarray(mean, dtype=float), np.asarray(sd, dtype=float))
    if math.isinf(cap):
        return mean.copy(), sd * sd
    a = (cap - mean) / sd
    pdf = np.exp(-0.5 * a * a) * _INV_SQRT2PI
    upper = 0.5 * erfc(a / _SQRT2)  # 1 - Phi(a), accurate in the tail
    m1 = a * upper - pdf
    m2 = (1.0 - upper) - a * pdf + a * a * upper
    return mean + sd * m1, sd * sd * np.maximum(m2 - m1 * m1, 0.0)


def _graded_breakpoints(lo: float, hi: float, features: Sequence[tuple[float, float]], panel: float) -> np.ndarray:
    """Panel ends on ``[lo, hi]``: a uniform grid of step ``panel`` plus, around each ``(centre, width)``
    feature (a transition of that width), points at ``centre +- width * 2**j`` until the step reaches ``panel``.
    """
    pts = [lo, hi, *np.arange(math.ceil(lo / panel) * panel, hi, panel)]
    for centre, width in features:
        if not (math.isfinite(centre) and math.isfinite(width) and width > 0):
            continue
        pts.append(centre)
        d = width
        while d < panel:
            pts += [centre - d, centre + d]
            d *= 2.0
    return np.unique(np.clip(np.asarray(pts, dtype=float), lo, hi))


def _gauss_legendre(breaks: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the composite ``order``-point Gauss-Legendre rule on the panels ``breaks``."""
    x, w = np.polynomial.legendre.leggauss(order)
    half, mid = np.diff(breaks) / 2.0, (breaks[:-1] + breaks[1:]) / 2.0
    return (mid[:, None] + half[:, None] * x).ravel(), (half[:, None] * w).ravel()


def _gpa_rule(
    mean: float, sd: float, cap: float, features_g: Sequence[tuple[float, float]], order: int, panel: float
) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for ``E[h(G)]``, ``G = min(G*, cap)``, ``G* ~ N(mean, sd**2)``.

    The point mass ``P(G* >= cap)`` at ``cap`` is the last node; below it, the normal density on a composite
    Gauss-Legendre rule in ``z = (g - mean) / sd`` over ``[-10, z_cap]``, refined around the ``(g, width)``
    features. With ``sd == 0``, one node.
    """
    if sd == 0:
        return np.array([min(mean, cap)]), np.array([1.0])
    z_cap = (cap - mean) / sd
    hi = min(z_cap, _GL_TAIL)
    lo = min(-_GL_TAIL, hi - 1.0)
    feats = [((c - mean) / sd, w / sd) for c, w in features_g]
    z, w = _gauss_legendre(_graded_breakpoints(lo, hi, feats, panel), order)
    w = w * np.exp(-0.5 * z * z) * _INV_SQRT2PI
    mass_at_cap = 0.5 * math.erfc(z_cap / _SQRT2)
    return np.append(mean + sd * z, cap), np.append(w, mass_at_cap)


def _multiplicative_moments(
    method_multipliers: Sequence[float],
    base_intercept: float,
    gpa_slope: float,
    instructor_sd: float,
    resid_sd: float,
    score_cap: float,
    gpa_mean: float,
    gpa_sd: float,
    gpa_cap: float,
    order: int = _GL_ORDER,
    panel: float = _GL_PANEL,
) -> dict[str, Any]:
    """Exact moments of the multiplicative model, by method (see :class:`TeachingMethodsMultiplicative`).

    Returns ``mean_g``, ``var_g`` (of the capped GPA) and arrays over methods ``k``: ``mean`` = E[S | k],
    ``cov`` = Cov(G, S | k), ``var`` = Var(S | k), ``between`` = Var_U(E[S | U, k]); ``between_err``, the
    error estimate of the adaptive integral behind ``between``. ``order`` and ``panel`` set the quadrature
    (Gauss-Legendre nodes per panel, widest panel in SD units).
    """
    from scipy.integrate import quad_vec

    mult = np.asarray(method_multipliers, dtype=float)
    a, b = float(base_intercept), float(gpa_slope)
    su, se, cap = float(instructor_sd), float(resid_sd), float(score_cap)
    mg, sg = float(gpa_mean), float(gpa_sd)
    slope_ok = b != 0 and math.isfinite(cap)

    # Given G = g, Y = (a + b g) U m_k + E is normal: mean (a + b g) m_k, variance ((a + b g) m_k su)^2 + se^2.
    # Transitions of E[min(Y, cap) | g] where the mean crosses the cap, of width sd / |slope in g|.
    feats = [((cap / mk - a) / b, math.hypot(cap * su, se) / abs(b * mk)) for mk in mult] if slope_ok else []
    g, w = _gpa_rule(mg, sg, gpa_cap, feats, order, panel)
    mean_g = float(w @ g)
    dg = g - mean_g
    var_g = float(w @ (dg * dg))
    mu = mult[:, None] * (a + b * g)[None, :]
    cmean, cvar = _capped_normal_mean_var(mu, np.hypot(mu * su, se), cap)
    mean = cmean @ w
    dev = cmean - mean[:, None]
    cov = dev @ (w * dg)
    var = (cvar + dev * dev) @ w

    # Var_U(E[S | U, k]) = integral over v = (U - 1) / su of (H_k(1 + su v) - E[S | k])^2 phi(v), with
    # H_k(u) = E_G[E[min(Y, cap) | G, U = u]] on a Gauss-Legendre rule refined where (a + b g) m_k u crosses
    # the cap; adaptive (quad_vec) in v, with breakpoints where the capped GPA's point mass and the bulk of
    # the GPA distribution cross the cap.
    if su == 0:
        return {"mean_g": mean_g, "var_g": var_g, "mean": mean, "cov": cov, "var": var,
                "between": np.zeros_like(mean), "between_err": 0.0}

    def centred_square(v: float) -> np.ndarray:
        u = 1.0 + su * v
        feats_u = ([((cap / (mk * u) - a) / b, se / abs(b * mk * u)) for mk in mult]
                   if slope_ok and u != 0 else [])
        gi, wi = _gpa_rule(mg, sg, gpa_cap, feats_u, order, panel)
        h = _capped_normal_mean_var((mult * u)[:, None] * (a + b * gi)[None, :], se, cap)[0] @ wi
        return (h - mean) ** 2 * (math.exp(-0.5 * v * v) * _INV_SQRT2PI)

    points = []
    if math.isfinite(cap):
        for lin in (a + b * g[-1], a + b * mg):
            for mk in mult:
                if lin != 0:
                    v = (cap / (lin * mk) - 1.0) / su
                    if -_GL_TAIL < v < _GL_TAIL:
                        points.append(v)
    between, err, info = quad_vec(centred_square, -_GL_TAIL, _GL_TAIL, epsabs=1e-13, epsrel=1e-12, norm="max",
                                  points=sorted(set(points)) or None, full_output=True)
    if not info.success or err > 1e-9 * max(1.0, float(np.max(between))):
        raise RuntimeError(f"the integral behind var(instructor) did not converge (error estimate {err:.2g}; "
                           f"{info.message})")
    return {"mean_g": mean_g, "var_g": var_g, "mean": mean, "cov": cov, "var": var,
            "between": np.asarray(between), "between_err": float(err)}


@dataclass(slots=True)
class TeachingMethodsMultiplicativeFactors:
    """The factors of :class:`TeachingMethodsMultiplicative` (documented there), with their defaults."""

    n_methods: int = 3
    instructors_per_method: int = 10
    students_per_instructor: int = 20
    instructor_sd: float = 0.1
    resid_sd: float = 10.0
    method_multipliers: Sequence[float] = (1.0, 1.05, 1.10)
    base_intercept: float = 15.0
    gpa_slope: float = 19.0
    score_cap: float = 100.0
    gpa_mean: float = 3.0
    gpa_sd: float = 0.25

    def check(self) -> None:
        """Raise ``ValueError`` naming the first factor whose value is not allowed."""
        K = check_count("n_methods", self.n_methods, minimum=2)
        check_count("instructors_per_method", self.instructors_per_method)
        check_count("students_per_instructor", self.students_per_instructor)
        check_nonnegative("instructor_sd", self.instructor_sd)
        check_positive("resid_sd", self.resid_sd)
        mult = check_sequence("method_multipliers", self.method_multipliers, K, "n_methods")
        for m in mult:
            check_positive("method_multipliers", m)
        if float(mult[0]) != 1.0:
            raise ValueError(f"factor 'method_multipliers' must start with 1 (method 0 is the reference), "
                             f"got {mult!r}")
        for name in ("base_intercept", "gpa_slope", "gpa_mean"):
            check_real(name, getattr(self, name))
        if self.score_cap != math.inf:
            check_real("score_cap", self.score_cap)
        check_nonnegative("gpa_sd", self.gpa_sd)


@functools.lru_cache(maxsize=256)
def _cached_moments(*args: Any) -> dict[str, Any]:
    """:func:`_multiplicative_moments`, cached (``method_multipliers`` as a tuple); arrays read-only."""
    out = _multiplicative_moments(*args)
    for v in out.values():
        if isinstance(v, np.ndarray):
            v.setflags(write=False)
    return out


class TeachingMethodsMultiplicative:
    r"""The seed notebook's multiplicative teaching model: students in instructors in methods, score capped.

    Model, for student :math:`i` of instructor :math:`j` who teaches with method :math:`k = 0, \dots, K-1`:

    .. math:: \mathrm{score}_{ijk} = \min\bigl(Y_{ijk},\ C\bigr), \qquad
              Y_{ijk} = (a + b\,g_i)\, U_j\, m_k + e_i, \qquad g_i = \min(g^*_i, 4),

    with :math:`g^*_i \sim N(\mu_g, \sigma_g^2)` (high-school GPA, capped at 4 as in :class:`TeachingMethods`:
    a point mass at the cap), instructor multipliers :math:`U_j \sim N(1, \sigma_u^2)`, residuals
    :math:`e_i \sim N(0, \sigma_e^2)`, all independent; :math:`m_k` fixed method multipliers with
    :math:`m_0 = 1`, and the score cap :math:`C` (100) applied to the final score. The seed's values are
    :math:`a = 15`, :math:`b = 19`, :math:`\sigma_u = 0.1`, :math:`\sigma_e = 10`, :math:`C = 100`. Instructors
    are nested in methods, as in :class:`TeachingMethods`. Draws, in this order: the instructor multipliers,
    the GPAs, the residuals. A normal multiplier can be negative: probability :math:`\Phi(-1/\sigma_u)`,
    :math:`8\cdot 10^{-24}` at the default 0.1 (kept as the seed had it; the estimands below do not need
    :math:`U > 0`).

    Why a separate class, not ``TeachingMethods(model="multiplicative")``: the two models take different
    factors (method multipliers rather than percentages, an intercept and a score cap, and an
    ``instructor_sd`` that is a multiplier SD of 0.1 here but score points, default 3, there). One class would
    need one factor set holding both, so a design factor of the other model would be accepted and silently
    ignored, and ``instructor_sd`` would need a default that depends on the model. The additive class is
    untouched (the same draws for the same seed).

    Design decisions
    ----------------
    - Instructor multipliers are random effects: drawn per instructor and replicate.
    - Method multipliers are fixed design values, a factor. The seed drew them once, at random, from
      :math:`N(1, 0.1^2)` (method 0 fixed at 1). In a simulation study the estimand must be the same in every
      replicate of a cell; drawing :math:`m_k` per replicate would change the method differences from
      replicate to replicate, and each data set holds one draw per method, so no estimator fitted to it can
      see that variation (its SE and interval would be judged against a target that moves). The marginal
      difference averaged over such draws is well defined but is not what one replicate's fit estimates, so
      drawing per replicate is not offered. To study several method-effect scenarios, use several values of
      ``method_multipliers`` (one per study or per DGP default: design grid levels must be scalars).
    - The residual is added before the cap; the cap applies to the final score, so the residual, instructor
      and GPA effects are all censored at :math:`C`.

    Factors (fields of :attr:`factors`, keyword arguments of :meth:`generate`, :meth:`truth`, :meth:`validate`)
    -----------------------------------------------------------------------------------------------------------
    n_methods : int, default 3
        Number of methods :math:`K` (at least 2).
    instructors_per_method : int, default 10
    students_per_instructor : int, default 20
    instructor_sd : float, default 0.1
        :math:`\sigma_u`, the SD of the instructor multipliers (unitless, >= 0).
    resid_sd : float, default 10.0
        :math:`\sigma_e`, in score points (positive).
    method_multipliers : sequence of K positive floats, default (1.0, 1.05, 1.10)
        :math:`m_k`; the first must be 1 (method 0 is the reference level of ``C(method)``).
    base_intercept, gpa_slope : float, default 15.0 and 19.0
        :math:`a`, :math:`b`: the linear predictor :math:`a + b g` before the multipliers (not centred).
    score_cap : float, default 100.0
        :math:`C`; ``math.inf`` for no cap.
    gpa_mean, gpa_sd : float, default 3.0 and 0.25
        :math:`\mu_g`, :math:`\sigma_g` of the GPA before the cap.

    Columns: ``score``, ``hs_gpa`` (the capped :math:`g`), ``instructor`` (int ids unique across methods,
    ``k * instructors_per_method + j``), ``method`` (int 0..K-1), as in :class:`TeachingMethods`.

    Estimands (:meth:`truth`)
    -------------------------
    The fitted models are linear, ``score ~ hs_gpa + C(method)`` (``adjust_gpa=True``) or ``score ~ C(method)``,
    the DGP is not; the estimands are the population least-squares (projection) coefficients of that linear
    model, and the variance components of its residual. Write :math:`S` for the score, :math:`G` for the
    capped GPA, :math:`M_k = E[S \mid k]`, and let every method hold the same share :math:`1/K` of the
    students (the design is balanced). :math:`G` is independent of the method and has the same distribution
    under each. Minimising :math:`E[(S - \alpha_k - \beta G)^2]` over method intercepts
    :math:`\alpha_k = \alpha + \delta_k` and a common slope :math:`\beta`:

    - the equation for :math:`\alpha_k`, :math:`E[S - \alpha_k - \beta G \mid k] = 0`, gives
      :math:`\alpha_k = M_k - \beta E[G]`;
    - the equation for :math:`\beta`, :math:`\sum_k \tfrac1K E[G (S - \alpha_k - \beta G) \mid k] = 0`, then
      gives :math:`\beta = \tfrac1K \sum_k \mathrm{Cov}(G, S \mid k) / \mathrm{Var}(G)`: the average over
      methods of the per-method least-squares slopes ("the average GPA slope").

    Hence

    - ``C(method)[T.k]`` = :math:`\delta_k = \alpha_k - \alpha_0 = M_k - M_0`: the population-average
      score difference between method k and method 0, cap included. The same with and without ``hs_gpa``.
    - ``hs_gpa`` = :math:`\beta` (only with ``adjust_gpa=True``).
    - ``Intercept`` = :math:`M_0 - \beta E[G]` (``adjust_gpa=True``) or :math:`M_0`.
    - ``var(instructor)`` = :math:`\tau^2 = \tfrac1K \sum_k \mathrm{Var}_U(E[S \mid U, k])`: the variance
      between instructors of their expected score, within a method, averaged over methods.
    - ``var(residual)`` = :math:`\sigma^2 = \tfrac1K \sum_k E_U[\mathrm{Var}(S - \beta G \mid U, k)]`: the
      variance within an instructor around the projection, averaged over instructors and methods
      (:math:`\beta = 0` without ``hs_gpa``); computed as
      :math:`\mathrm{Var}(S \mid k) - \tau_k^2 - 2\beta\,\mathrm{Cov}(G, S \mid k) + \beta^2 \mathrm{Var}(G)`.

    Why these are the targets. OLS on one replicate converges to the projection as the number of
    instructors grows. The mixed model's fixed effects do too: its GLS estimate combines the within- and the
    between-instructor slopes, and both target :math:`\beta`, since :math:`E[G \mid U] = E[G]` makes
    :math:`E_U[\mathrm{Cov}(G, S \mid U, k)] = \mathrm{Cov}(G, S \mid k)`. The projection residual
    :math:`R = S - \alpha_k - \beta G` splits into an instructor part :math:`E[R \mid U, k] = E[S \mid U, k] -
    M_k` and a within part that, given the instructor, is independent across students; so, in a balanced
    design, the between- and within-instructor mean squares of :math:`R` have expectations
    :math:`n\tau^2 + \sigma^2` and :math:`\sigma^2` (n students per instructor): ``var(instructor)`` and
    ``var(residual)`` are what the one-way ANOVA and REML moment equations estimate. The mixed model is
    misspecified here (instructors differ in slope, :math:`b U m_k`; the within variance depends on the
    instructor and the method; the cap makes the errors non-normal), so these are the population counterparts
    of its variance parameters, not parameters of the DGP. A study that would rather not score them lists
    them in ``Study(unscored=("var(instructor)", "var(residual)"))`` and drops them from its truth. With
    ``score_cap=inf`` everything is closed-form: :math:`M_k = m_k (a + b E[G])`, :math:`\beta = b \bar m`,
    :math:`\tau^2_k = m_k^2 (a + b E[G])^2 \sigma_u^2`, :math:`\sigma^2_k = ((b m_k - \beta)^2 + b^2 m_k^2
    \sigma_u^2) \mathrm{Var}(G) + \sigma_e^2`.

    These are population values; a replicate's OLS coefficients are ratios of sample moments, biased for
    them by O(1/n), and the mixed model's variance estimates are biased by the misspecification; both are
    what a study of this DGP measures.

    How they are computed (exactly, no Monte Carlo). Given :math:`G = g`, :math:`Y = (a + b g) U m_k + e` is
    normal with mean :math:`\mu = (a + b g) m_k` and variance :math:`s^2 = \mu^2 \sigma_u^2 + \sigma_e^2`,
    so :math:`E[S \mid g]` and :math:`\mathrm{Var}(S \mid g)` are the closed-form moments of a normal
    censored from above (:func:`capped_normal_moments`). :math:`M_k`, :math:`\mathrm{Cov}(G, S \mid k)`,
    :math:`\mathrm{Var}(S \mid k)`, :math:`E[G]`, :math:`\mathrm{Var}(G)` are then one-dimensional integrals
    over the capped GPA: its point mass :math:`P(g^* \ge 4)` at 4 plus its normal density below 4, on a
    composite 20-point Gauss-Legendre rule in :math:`z = (g - \mu_g)/\sigma_g` over :math:`[-10, z_{4}]`,
    panels at most 1 wide and refined geometrically around the GPA where :math:`\mu` crosses :math:`C` (to
    the width :math:`s / |b m_k|` of that transition). :math:`\tau_k^2` needs two dimensions: for given
    :math:`U = u`, :math:`E[S \mid u, k]` is the same kind of GPA integral (with :math:`\mu = (a + b g) u m_k`,
    :math:`s = \sigma_e`), and the integral of its squared deviation from :math:`M_k` over
    :math:`u = 1 + \sigma_u v`, :math:`v \in [-10, 10]` is adaptive (``scipy.integrate.quad_vec``,
    ``epsrel=1e-12``) with breakpoints where the capped GPA's point mass and the GPA's mean cross the cap.
    Against independent nested ``scipy.integrate.quad`` with tight tolerances the values agree to about
    1e-11 (1e-13 at the defaults), also with a residual SD of 0.05, an instructor SD of 0.6, a cap binding for
    a third of the students. One call takes about 0.1 s at the defaults, up to about 0.6 s with sharp
    transitions (a small residual SD); the results are cached per set of factor values.

    Parameters
    ----------
    adjust_gpa : bool, default True
        Whether the fitted model has ``hs_gpa`` (``score ~ hs_gpa + C(method)``) or not (``score ~ C(method)``);
        changes ``Intercept``, ``var(residual)`` and whether ``hs_gpa`` has a truth.
    gpa_cap : float, default 4.0
        The cap of the GPA.
    """

    def __init__(self, adjust_gpa: bool = True, gpa_cap: float = 4.0) -> None:
        self.adjust_gpa = adjust_gpa
        self.gpa_cap = float(gpa_cap)

    #: The factors this DGP takes, with their defaults (read by :func:`simstudy.dgp.base.factor_names`).
    factors = TeachingMethodsMultiplicativeFactors

    def generate(self, rng: np.random.Generator, **factors: Any) -> dict[str, np.ndarray]:
        """Draw one replicate (call :meth:`validate` once per cell first; this does not check)."""
        f = self.factors(**factors)
        K, J, S = int(f.n_methods), int(f.instructors_per_method), int(f.students_per_instructor)
        n_inst, n = K * J, K * J * S
        instructor = np.repeat(np.arange(n_inst), S)
        multiplier = rng.normal(1.0, f.instructor_sd, n_inst)
        multiplier *= np.repeat(np.asarray(f.method_multipliers, dtype=float), J)
        hs_gpa = np.minimum(rng.normal(f.gpa_mean, f.gpa_sd, n), self.gpa_cap)
        score = f.gpa_slope * hs_gpa
        score += f.base_intercept
        score *= multiplier[instructor]
        score += rng.normal(0.0, f.resid_sd, n)
        np.minimum(score, f.score_cap, out=score)
        return {"score": score, "hs_gpa": hs_gpa, "instructor": instructor, "method": instructor // J}

    def truth(self, **factors: Any) -> dict[str, float]:
        """True values of the estimands (see the class docstring), by parameter name."""
        f = self.factors(**factors)
        mom = _cached_moments(tuple(float(m) for m in f.method_multipliers), float(f.base_intercept),
                              float(f.gpa_slope), float(f.instructor_sd), float(f.resid_sd), float(f.score_cap),
                              float(f.gpa_mean), float(f.gpa_sd), self.gpa_cap)
        mean, cov, var, between = mom["mean"], mom["cov"], mom["var"], mom["between"]
        slope = float(np.mean(cov)) / mom["var_g"] if self.adjust_gpa else 0.0
        within = var - between - 2.0 * slope * cov + slope**2 * mom["var_g"]
        out: dict[str, float] = {"Intercept": float(mean[0] - slope * mom["mean_g"])}
        if self.adjust_gpa:
            out["hs_gpa"] = slope
        for k in range(1, len(mean)):
            out[f"C(method)[T.{k}]"] = float(mean[k] - mean[0])
        out["var(instructor)"] = float(np.mean(between))
        out["var(residual)"] = float(np.mean(within))
        return out

    def validate(self, **factors: Any) -> None:
        """Raise ``ValueError`` naming the first factor whose value is not allowed.

        Besides the checks of each factor: with ``adjust_gpa=True`` the GPA must vary (``gpa_sd > 0``) and
        must not sit at the cap for all but a negligible share of students (``gpa_mean`` at most 8
        ``gpa_sd`` above ``gpa_cap``), else the ``hs_gpa`` slope is not identified.
        """
        f = self.factors(**factors)
        f.check()
        if self.adjust_gpa:
            if f.gpa_sd == 0:
                raise ValueError("factor 'gpa_sd' must be positive when the model has hs_gpa (adjust_gpa=True): "
                                 "with a constant GPA its slope is not identified, got 0")
            if (self.gpa_cap - f.gpa_mean) / f.gpa_sd < -8.0:
                raise ValueError(f"factor 'gpa_mean' must be at most 8 gpa_sd above the GPA cap {self.gpa_cap} "
                                 f"(else nearly every GPA equals the cap and the hs_gpa slope is not identified), "
                                 f"got {f.gpa_mean!r} with gpa_sd {f.gpa_sd!r}")
