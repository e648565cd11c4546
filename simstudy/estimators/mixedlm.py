"""Linear mixed models with random intercepts (nested or not), fitted by statsmodels' ``MixedLM``.

``MixedLM(formula, groups="g")`` fits a random intercept per level of ``g``; ``groups=["centre", "rep"]``
fits nested random intercepts, reps within centres: a random intercept per centre (statsmodels' group
random effect, ``exog_re`` a column of ones) plus a variance component for the reps within each centre
(``exog_vc``: rep dummies within each centre). More than two levels work the same way (each lower level is
one more variance component).

Nested ids and crossed factors
------------------------------
Only nested grouping factors are fitted; crossed ones (the same item seen by every subject) are not
supported, and the data cannot always tell them apart from nested ids numbered within the level above
(rep ``1`` of centre ``a`` and rep ``1`` of centre ``b``): both have labels that repeat across the groups
above. So the ids are read as ``nested_ids`` says (:func:`simstudy.estimators.formula.nest_codes`):

- ``"unique"`` (default): a lower-level id names one unit, and each id must occur under one unit of the
  level above only (e.g. ``rep = centre * 1000 + r``). An id that occurs under two or more makes the fit
  fail (status ``failed``) with a one-line message naming the two fixes.
- ``"within"``: ids are numbered within the level above; a unit is the combination of the ids of its level
  and all the levels above it (lme4's ``(1 | centre/rep)``). Crossed data declared so are fitted as nested.

With either, a fit fails when every unit of a lower level is a single observation (its variance is
confounded with the residual variance; a crossed design with one observation per cell declared ``"within"``
looks like this) or every unit of the level above holds a single unit of it (the two variances are
confounded).

The model is built with statsmodels' array interface (``sm.MixedLM(endog, exog, groups, exog_re,
exog_vc)``) from arrays that :class:`simstudy.estimators.formula.Formula` builds; the formula interface costs
7-20 ms a call. Note the statsmodels pitfall this avoids: with ``vc_formula`` and no ``re_formula``,
statsmodels' formula interface fits *no* random intercept for the top-level groups (it only adds one by
default when there are no variance components), so the centre variance is silently folded into the rep
variance. Here the group intercept is always passed explicitly.

Reported parameters
-------------------
- The fixed effects, named as the formula names them, with statsmodels' estimates and standard errors
  (``bse_fe``: from the inverse of the observed Hessian of the profile likelihood) and z intervals
  (``df`` NaN), as statsmodels reports them.
- ``var(<g>)`` for every grouping column and ``var(residual)``: statsmodels' estimates (``cov_re``,
  ``vcomp``, ``scale``). Their standard errors are computed here, from the expected (Fisher) information
  of the REML (or, with ``reml=False``, ML) likelihood in the variance parameters, evaluated at the
  estimates: ``I_ij = tr(P V_i P V_j) / 2`` (REML; ``V^-1`` in place of ``P`` for ML) with ``V_i`` the
  derivative of the marginal covariance with respect to the i-th variance. statsmodels' own standard
  errors for the variance parameters are *not* on the variance scale (``bse_re`` is ``sqrt(scale)`` times
  the SE of the variance *ratio* ``var/scale``, and it has none for the residual variance), so they are not
  used. The intervals of the variances are Wald z intervals ``estimate +- z * se`` (not truncated at 0);
  they are poor for small numbers of groups and meaningless at the boundary, which is what a simulation
  study will show. ``df`` is NaN.

Status
------
Warnings raised during the fit are recorded here (``warnings.catch_warnings(record=True)`` with the
"always" filter, so counts do not depend on what earlier fits warned) and all of them are counted in
``n_warnings``; the first one's text goes into ``message``. Then, in this order:

- ``failed`` (every value NaN, reason in ``message``): statsmodels raised a numerical error
  (``LinAlgError``, ``ArithmeticError``, ``ValueError``; e.g. a singular matrix in L-BFGS' gradient); or the
  fit is not a valid estimate: non-finite log-likelihood, residual variance, fixed effect or fixed-effect SE
  (e.g. a Hessian that is not positive definite gives a NaN SE), or a variance ratio below statsmodels'
  internal singularity tolerance ``1e-10`` where its GLS step replaces the inverse random-effect covariance
  with zeros and returns between-group fixed effects (the intercept, a cluster-level treatment) as exactly
  0 with an infinite log-likelihood while reporting ``converged=True`` (statsmodels issue 10239). Also fewer
  than two top-level groups, no residual degrees of freedom, or a response that the fixed effects fit
  exactly (a constant response, say: statsmodels would search for seconds and return ``llf = +inf``);
  these are detected before statsmodels runs.
- ``nonconverged`` (estimates kept): the last optimiser of the sequence did not converge (statsmodels'
  ``converged`` is False), or a ``ConvergenceWarning`` other than statsmodels' reports on the optimiser
  sequence was raised. Those reports do not decide anything by themselves: "Maximum Likelihood
  optimization failed to converge" and "Retrying MixedLM optimization with ..." come from an earlier
  method when a later one may still converge, "MixedLM optimization failed" / "Gradient optimization
  failed" accompany ``converged=False``, and "The MLE may be on the boundary of the parameter space" uses
  an absolute threshold of 0.01 (the boundary is judged here, relative to the residual variance). "The
  Hessian matrix ... is not positive definite" makes a fit nonconverged unless it is at the boundary, where
  it is expected.
- ``boundary`` (estimates kept): some variance component is estimated at (near) 0: its ratio to the
  residual variance is below ``boundary_tol`` (default ``1e-5``; statsmodels' Powell search ends at ratios
  of about ``1e-10`` when the REML estimate is 0, and interior estimates are orders of magnitude larger).
- ``ok`` otherwise.

The default optimiser sequence is Powell, then L-BFGS (``method=("powell", "lbfgs")``): from statsmodels'
default start, its default sequence (BFGS, L-BFGS, CG) often ends unconverged when a variance is 0 and
L-BFGS alone raised ``LinAlgError: Singular matrix`` in most replicates with a true group variance of 0 at
10 groups x 5. The search starts from moment (ANOVA) estimates of the variance ratios (``start="anova"``;
``start=None`` for statsmodels' start, every ratio 1), which halves the number of likelihood evaluations.

Fixed-effect columns that are collinear (same rule as :class:`simstudy.estimators.OLS`: unpivoted QR,
``|R_jj| <= tol * ||x_j||``) are dropped before statsmodels runs and reported as NaN with a "not estimable"
note in ``message``. Rows with non-finite response or design values are dropped (complete cases).

Errors: a missing column raises ``ValueError`` (a configuration error, which the runner records as a failed
fit). Numerical failures never raise.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy.linalg import lapack
from scipy.special import ndtri
from statsmodels.regression.mixed_linear_model import MixedLM as _SMMixedLM
from statsmodels.regression.mixed_linear_model import VCSpec
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from simstudy.estimators.base import Fit
from simstudy.estimators.formula import NESTED_IDS, Formula, _levels_codes, group_codes, nest_codes
from simstudy.types import Data

__all__ = ["StatsmodelsMixedLM"]

#: statsmodels' tolerance below which it treats a variance ratio as singular (``get_fe_params``).
SM_SINGULAR_TOL = 1e-10

#: ConvergenceWarnings that report on the optimiser sequence (an attempt failed, the next method is tried,
#: the last one failed) or on statsmodels' own boundary guess: whether the fit converged is then read from
#: the final result's ``converged`` and the boundary is judged here.
_OPTIMISER_PROGRESS = (
    "Retrying MixedLM optimization",
    "Maximum Likelihood optimization failed to converge",
    "MixedLM optimization failed",
    "Gradient optimization failed",
    "The MLE may be on the boundary",
)
_HESSIAN_NOT_PD = "The Hessian matrix at the estimated parameter values is not positive definite"


class StatsmodelsMixedLM:
    """Linear mixed model with random intercepts for one or more nested grouping columns.

    Parameters
    ----------
    formula : str or Formula
        Fixed-effects formula, e.g. ``"score ~ treat + x"``; parsed once here.
    groups : str or sequence of str
        Grouping column (random intercept), or columns from the top level down for nested random
        intercepts (``["centre", "rep"]``: reps within centres).
    reml : bool
        REML (default) or ML.
    level : float
        Confidence level of the (z) intervals.
    method : str or sequence of str
        statsmodels optimisers, tried in turn until one converges.
    boundary_tol : float
        A variance component whose ratio to the residual variance is below this is "at the boundary".
    start : "anova" or None
        Starting values of the variance ratios: ``"anova"`` (default) from one-way ANOVA moment estimates
        on the OLS residuals at each grouping level (clipped to [0.01, 100]), which about halves the number
        of likelihood evaluations of the Powell search; ``None``: statsmodels' default (every ratio 1).
    tol : float
        Relative tolerance for collinear fixed-effect columns (as in OLS).
    nested_ids : {"unique", "within"}
        How the ids of the lower grouping columns are read: unique ids (default; ids that repeat across the
        groups above fail the fit, as they may be crossed) or numbered within the level above. See the
        module docstring.
    """

    def __init__(
        self,
        formula: str | Formula,
        *,
        groups: str | Sequence[str],
        reml: bool = True,
        level: float = 0.95,
        method: str | Sequence[str] = ("powell", "lbfgs"),
        boundary_tol: float = 1e-5,
        start: str | None = "anova",
        tol: float = 1e-7,
        nested_ids: str = "unique",
    ) -> None:
        self.formula = formula if isinstance(formula, Formula) else Formula(formula)
        groups_t = (groups,) if isinstance(groups, str) else tuple(groups)
        if not groups_t or not all(isinstance(g, str) and g for g in groups_t):
            raise ValueError(f"MixedLM: groups must be a column name or a list of them, got {groups!r}")
        if len(set(groups_t)) != len(groups_t):
            raise ValueError(f"MixedLM: groups {groups!r} names a column twice")
        methods = (method,) if isinstance(method, str) else tuple(method)
        if not methods or any(m.lower() in ("newton", "ncg") for m in methods):
            raise ValueError(f"MixedLM: method must name scipy optimisers other than newton/ncg, got {method!r}")
        if not 0.0 < float(level) < 1.0:
            raise ValueError(f"MixedLM: level must lie strictly between 0 and 1, got {level!r}")
        if not 0.0 <= float(boundary_tol) < 1.0:
            raise ValueError(f"MixedLM: boundary_tol must lie in [0, 1), got {boundary_tol!r}")
        if start not in ("anova", None):
            raise ValueError(f"MixedLM: start must be 'anova' or None, got {start!r}")
        if nested_ids not in NESTED_IDS:
            raise ValueError(f"MixedLM: nested_ids must be one of {NESTED_IDS}, got {nested_ids!r}")
        self.nested_ids = nested_ids
        self.groups = groups_t
        self.start = start
        self.reml = bool(reml)
        self.level = float(level)
        self.method = methods
        self.boundary_tol = float(boundary_tol)
        self.tol = float(tol)

    def __repr__(self) -> str:
        groups = self.groups[0] if len(self.groups) == 1 else list(self.groups)
        ids = f", nested_ids={self.nested_ids!r}" if self.nested_ids != "unique" else ""
        return (f"StatsmodelsMixedLM({self.formula.text!r}, groups={groups!r}{ids}, reml={self.reml}, "
                f"level={self.level})")

    @property
    def variance_names(self) -> tuple[str, ...]:
        """Names of the variance parameters: ``var(<g>)`` per grouping column, then ``var(residual)``."""
        return tuple(f"var({g})" for g in self.groups) + ("var(residual)",)

    # ------------------------------------------------------------------------------------------------
    def fit(self, data: Data) -> Fit:
        """Fit one replicate; see the module docstring for what is reported and how fits are flagged."""
        y, X, fe_names = self.formula.build(data)
        codes = [group_codes(data, col)[0] for col in self.groups]
        ids = [np.asarray(data[col]) for col in self.groups[1:]]
        params = tuple(fe_names) + self.variance_names
        if any(c.shape != y.shape for c in codes):
            return Fit.failed("the grouping columns and the response differ in length", params)
        if not np.isfinite(y.sum() + X.sum()):
            ok = np.isfinite(y) & np.isfinite(X).all(axis=1)
            y, X, codes, ids = y[ok], np.asfortranarray(X[ok]), [c[ok] for c in codes], [v[ok] for v in ids]
        p_all = len(fe_names)
        n = y.shape[0]

        # top level codes 0..G-1; each lower level nested in all the levels above it (ids read as
        # nested_ids says; refused when they may be crossed or a variance is not identifiable)
        top = _levels_codes(codes[0])[1] if n else codes[0]
        n_groups = int(top.max()) + 1 if n else 0
        if n_groups < 2:
            return Fit.failed(f"MixedLM needs at least 2 groups of {self.groups[0]}, got {n_groups}", params)
        nested: list[np.ndarray] = []
        unit = top
        for above, col, v in zip(self.groups[:-1], self.groups[1:], ids):
            unit, _, problem = nest_codes(unit, v, (above, col), self.nested_ids)
            if problem:
                return Fit.failed(problem, params)
            nested.append(unit)

        kept, notes = _estimable(X, fe_names, self.tol)
        k = len(kept)
        if n - k <= 0 or (self.reml and n - k < 2):
            return Fit.failed(f"no residual degrees of freedom (n={n}, fixed effects={k})", params)
        Xk = np.ascontiguousarray(X[:, kept])
        resid = y - Xk @ np.linalg.lstsq(Xk, y, rcond=None)[0]
        if not float(resid @ resid) > 1e-24 * float(y @ y):
            # statsmodels would search for ~2 s, warn a thousand times and return llf = +inf
            return Fit.failed("the fixed effects fit the response exactly (residual variance 0)", params)

        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            try:
                sm = self._statsmodels_fit(y, Xk, top, nested, n_groups, resid)
            except (np.linalg.LinAlgError, ArithmeticError, ValueError) as exc:
                sm = exc
            if not isinstance(sm, Exception):
                variances = np.concatenate([sm["var_groups"], [sm["scale"]]])
                vc_se = _variance_se(Xk, top, nested, n_groups, variances, self.reml)
        n_warn = len(record)
        first = f"first warning: {_warning_text(record[0])}" if record else ""
        if isinstance(sm, Exception):
            reason = f"statsmodels raised {type(sm).__name__}: {sm}"
            return Fit.failed(_join(reason, first), params, n_warn)

        status, reason = self._status(sm, record)
        if status == "failed":
            return Fit.failed(_join(reason, first), params, n_warn)

        z = ndtri(0.5 + self.level / 2)
        est = np.full(len(params), np.nan)
        se = np.full(len(params), np.nan)
        est[kept] = sm["fe"]
        se[kept] = sm["bse_fe"]
        est[p_all:] = variances
        se[p_all:] = vc_se
        message = _join(reason, "not estimable: " + "; ".join(notes) if notes else "", first)
        return Fit(
            params,
            est,
            se,
            est - z * se,
            est + z * se,
            np.full(len(params), np.nan),
            status,
            n_warn,
            message,
        )

    # ------------------------------------------------------------------------------------------------
    def _statsmodels_fit(
        self,
        y: np.ndarray,
        X: np.ndarray,
        top: np.ndarray,
        nested: list[np.ndarray],
        n_groups: int,
        resid: np.ndarray,
    ) -> dict:
        """Fit with statsmodels' array interface; return the numbers needed (nothing kept afterwards)."""
        n = y.shape[0]
        exog_vc = None
        if nested:
            # statsmodels splits rows by group in their original order: build each group's dummies alike
            order = np.argsort(top, kind="stable")
            starts = np.concatenate([[0], np.cumsum(np.bincount(top, minlength=n_groups))])
            names, colnames, mats = [], [], []
            for j, unit in enumerate(nested):
                cols_j, mats_j = [], []
                for g in range(n_groups):
                    local = _levels_codes(unit[order[starts[g] : starts[g + 1]]])
                    cols_j.append([str(v) for v in local[0]])
                    mats_j.append(_dummy(local[1], len(local[0])))
                # statsmodels sorts variance components by name: keep the level order with a prefix
                names.append(f"{j:03d}:{self.groups[j + 1]}")
                colnames.append(cols_j)
                mats.append(mats_j)
            exog_vc = VCSpec(names, colnames, mats)
        model = _SMMixedLM(y, X, top, exog_re=np.ones((n, 1)), exog_vc=exog_vc)
        start = _anova_start(resid, top, nested) if self.start == "anova" else None
        res = model.fit(reml=self.reml, method=list(self.method), start_params=start)
        scale = float(res.scale)
        cov_re = np.asarray(res.cov_re, dtype=float)
        var_groups = np.concatenate([[cov_re[0, 0]], np.asarray(res.vcomp, dtype=float).ravel()])
        # statsmodels' own parameters, the variance ratios var/scale, exactly as its GLS step sees them
        ratios = np.concatenate(
            [np.asarray(res.cov_re_unscaled, dtype=float).ravel()[:1], np.asarray(res.params_object.vcomp).ravel()]
        )
        return {
            "fe": np.asarray(res.fe_params, dtype=float),
            "bse_fe": np.asarray(res.bse_fe, dtype=float),
            "llf": float(res.llf),
            "scale": scale,
            "var_groups": var_groups,
            "ratios": ratios,
            "converged": bool(res.converged),
        }

    def _status(self, sm: dict, record: list) -> tuple[str, str]:
        """The fit's status and the reason (empty for ``ok``)."""
        names = self.variance_names
        problems = []
        if not np.isfinite(sm["llf"]):
            problems.append(f"log-likelihood {sm['llf']}")
        if not (np.isfinite(sm["scale"]) and sm["scale"] > 0):
            problems.append(f"residual variance {sm['scale']}")
        if not np.all(np.isfinite(sm["fe"])):
            problems.append("non-finite fixed effects")
        if not np.all(np.isfinite(sm["bse_fe"]) & (sm["bse_fe"] > 0)):
            problems.append("non-finite or zero fixed-effect standard errors")
        if not np.all(np.isfinite(sm["var_groups"])):
            problems.append("non-finite variance estimates")
        small = [names[i] for i, r in enumerate(sm["ratios"]) if not r >= SM_SINGULAR_TOL]
        if small:
            problems.append(
                f"variance ratio of {', '.join(small)} below statsmodels' singularity tolerance "
                f"{SM_SINGULAR_TOL:g} (fixed effects unreliable, statsmodels issue 10239)"
            )
        if problems:
            return "failed", "invalid statsmodels fit: " + "; ".join(problems)

        at_boundary = [names[i] for i, r in enumerate(sm["ratios"]) if r < self.boundary_tol]
        conv_msgs = []
        for w in record:
            if not issubclass(w.category, ConvergenceWarning):
                continue
            text = str(w.message)
            if text.startswith(_OPTIMISER_PROGRESS):
                continue
            if text.startswith(_HESSIAN_NOT_PD) and at_boundary:
                continue
            conv_msgs.append(text)
        if not sm["converged"]:
            why = f"the last optimiser ({self.method[-1]}) did not converge"
            return "nonconverged", f"not converged: {why}"
        if conv_msgs:
            return "nonconverged", f"not converged: {conv_msgs[0]}"
        if at_boundary:
            return "boundary", f"boundary: {', '.join(at_boundary)} estimated at 0"
        return "ok", ""


# ----------------------------------------------------------------------------------------------------
def _estimable(X: np.ndarray, names: Sequence[str], tol: float) -> tuple[list[int], list[str]]:
    """Columns kept (left to right) and notes for the collinear ones; the rule of OLS (unpivoted QR)."""
    norms = np.sqrt(np.einsum("ij,ij->j", X, X))
    kept = [j for j in range(X.shape[1]) if norms[j] > 0]
    notes = [f"{names[j]} is all zero" for j in range(X.shape[1]) if not norms[j] > 0]
    while kept and X.shape[0] >= len(kept):
        A = np.asfortranarray(X[:, kept])
        qr = lapack.dgeqrf(A, overwrite_a=1)[0]
        bad = np.flatnonzero(~(np.abs(np.diagonal(qr)) > tol * norms[kept]))
        if not bad.size:
            break
        j = kept.pop(int(bad[0]))
        before = [names[i] for i in kept if i < j]
        if len(before) > 4:
            before = before[:4] + [f"{len(before) - 4} more"]
        notes.append(f"{names[j]} is collinear with {', '.join(before) or 'the columns before it'}")
    return kept, notes


def _anova_start(e: np.ndarray, top: np.ndarray, nested: list[np.ndarray]) -> np.ndarray:
    """Starting values for statsmodels (packed: square roots of the variance ratios), from moments.

    On the OLS residuals ``e``: the residual variance is the pooled variance within the deepest units; at every
    grouping level a one-way ANOVA estimate of the between-unit variance, ``(MSB - MSW) / n0`` with the
    usual unbalanced ``n0``, estimates the sum of the variances of that level and the levels above it;
    differences give each level's variance. Ratios are clipped to [0.01, 100]. Only a start: the
    optimiser decides the estimates.
    """
    n = e.shape[0]
    levels = [top] + nested
    sums = []
    for codes in levels:
        cnt = np.bincount(codes).astype(float)
        mean = np.bincount(codes, weights=e) / cnt
        ssw = float(np.sum((e - mean[codes]) ** 2))
        ssb = float(np.sum(cnt * (mean - e.mean()) ** 2))
        u = cnt.shape[0]
        msw = ssw / (n - u) if n > u else float(np.var(e))
        msb = ssb / (u - 1) if u > 1 else 0.0
        n0 = (n - np.sum(cnt**2) / n) / (u - 1) if u > 1 else 1.0
        sums.append((max(msb - msw, 0.0) / n0, msw))
    resid = sums[-1][1] if sums[-1][1] > 0 else max(float(np.var(e)), 1e-300)
    cum = [t for t, _ in sums]
    var = [cum[0]] + [max(cum[i] - cum[i - 1], 0.0) for i in range(1, len(cum))]
    ratios = np.clip(np.asarray(var) / resid, 0.01, 100.0)
    return np.sqrt(ratios)


def _dummy(codes: np.ndarray, n_levels: int) -> np.ndarray:
    out = np.zeros((codes.shape[0], n_levels))
    out[np.arange(codes.shape[0]), codes] = 1.0
    return out


def _group_blocks(
    X: np.ndarray, top: np.ndarray, nested: list[np.ndarray], n_groups: int
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per-group cross products for the random-effects design ``Z = [1, dummies of each nested level]``.

    Returns batches of groups with the same structure: ``(comp, m, ZZ, ZX, XX)`` with ``comp`` (q,) the
    variance component of every column of ``Z`` (0 = top-level intercept, j = j-th nested level), ``m``
    (B,) group sizes and stacked ``Z'Z`` (B, q, q), ``Z'X`` (B, q, p), ``X'X`` (B, p, p).
    """
    order = np.argsort(top, kind="stable")
    counts = np.bincount(top, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(counts)])
    Xs = X[order]
    XX = np.add.reduceat(Xs[:, :, None] * Xs[:, None, :], starts[:-1], axis=0)
    if not nested:
        ZZ = counts.astype(float)[:, None, None]
        ZX = np.add.reduceat(Xs, starts[:-1], axis=0)[:, None, :]
        return [(np.zeros(1, dtype=np.intp), counts.astype(float), ZZ, ZX, XX)]
    batches: dict[tuple[int, ...], list[tuple[int, np.ndarray, np.ndarray]]] = {}
    for g in range(n_groups):
        rows = order[starts[g] : starts[g + 1]]
        blocks = [np.ones((rows.shape[0], 1))]
        for unit in nested:
            local = _levels_codes(unit[rows])
            blocks.append(_dummy(local[1], len(local[0])))
        Z = np.hstack(blocks)
        key = tuple(b.shape[1] for b in blocks)
        batches.setdefault(key, []).append((g, Z.T @ Z, Z.T @ Xs[starts[g] : starts[g + 1]]))
    out = []
    for key, items in batches.items():
        idx = np.array([it[0] for it in items])
        comp = np.repeat(np.arange(len(key)), key)
        out.append(
            (
                comp,
                counts[idx].astype(float),
                np.stack([it[1] for it in items]),
                np.stack([it[2] for it in items]),
                XX[idx],
            )
        )
    return out


def _variance_se(
    X: np.ndarray,
    top: np.ndarray,
    nested: list[np.ndarray],
    n_groups: int,
    variances: np.ndarray,
    reml: bool,
) -> np.ndarray:
    """Standard errors of the variances from the expected information of the (RE)ML likelihood.

    ``variances`` = (top-level intercept variance, one per nested level, residual variance ``s``). The
    information is ``I_ij = tr(P V_i P V_j) / 2`` (REML) or ``tr(V^-1 V_i V^-1 V_j) / 2`` (ML), with
    ``P = V^-1 - V^-1 X (X'V^-1 X)^-1 X'V^-1`` and ``V_i`` the derivative of the marginal covariance with
    respect to the i-th variance; for REML,
    ``tr(P V_i P V_j) = tr(V^-1 V_i V^-1 V_j) - 2 tr(C X'V^-1 V_i V^-1 V_j V^-1 X) + tr(C M_i C M_j)`` with
    ``C = (X'V^-1 X)^-1`` and ``M_i = X'V^-1 V_i V^-1 X``.

    Within a top-level group ``V = s I + Z D Z'`` (``Z = [1, dummies of each nested level]``, ``D`` the
    matching variances), ``dV/d var_k = Z E_k Z'`` (``E_k`` selects component k's columns) and
    ``dV/ds = I``. Every trace comes from the group's ``Z'Z``, ``Z'X`` and ``X'X`` through Woodbury's
    ``V^-1 = (I - Z H Z') / s`` with ``H = D^(1/2) (s I + D^(1/2) Z'Z D^(1/2))^-1 D^(1/2)``, which also
    holds when a variance is 0; groups with the same structure are processed as one stack. Returns NaN
    where the information is singular or not finite.
    """
    K = len(variances) - 1  # random components
    s = float(variances[-1])
    nan = np.full(K + 1, np.nan)
    if not (np.isfinite(variances).all() and s > 0 and np.all(variances >= 0)):
        return nan
    p = X.shape[1]
    T = np.zeros((K + 1, K + 1))  # sum over groups of tr(V^-1 V_i V^-1 V_j)
    XVX = np.zeros((p, p))
    M = np.zeros((K + 1, p, p))  # X' V^-1 V_i V^-1 X
    N = np.zeros((K + 1, K + 1, p, p))  # X' V^-1 V_i V^-1 V_j V^-1 X, i <= j
    for comp, m, ZZ, ZX, XX in _group_blocks(X, top, nested, n_groups):
        q = comp.shape[0]
        eye = np.eye(q)
        dh = np.sqrt(variances[comp])
        H = dh[:, None] * np.linalg.inv(s * eye + dh[:, None] * ZZ * dh[None, :]) * dh[None, :]
        HZZ = H @ ZZ  # H K
        IKH = eye - ZZ @ H  # I - K H; Z'V^-1 = (I - K H) Z' / s
        Q = IKH @ ZZ / s  # Z'V^-1 Z
        L = IKH @ ZX / s  # Z'V^-1 X
        HZX = H @ ZX
        ZXt = np.swapaxes(ZX, 1, 2)
        XVX += ((XX - ZXt @ HZX) / s).sum(axis=0)
        sel = [np.flatnonzero(comp == c) for c in range(K)]
        IKHQ_diag = np.einsum("bii->bi", IKH @ Q) / s  # diag of Z'V^-2 Z
        for i in range(K):
            for j in range(i, K):
                T[i, j] += np.sum(Q[:, sel[i]][:, :, sel[j]] ** 2)  # ||Z_i' V^-1 Z_j||_F^2
            T[i, K] += IKHQ_diag[:, sel[i]].sum()  # tr(Z_i' V^-2 Z_i)
        T[K, K] += (m.sum() - 2 * np.einsum("bii->", HZZ) + np.einsum("bij,bji->", HZZ, HZZ)) / s**2
        if reml:
            Me = (XX - 2 * ZXt @ HZX + np.swapaxes(HZX, 1, 2) @ ZZ @ HZX) / s**2  # X'V^-2 X
            Zv2X = IKH @ L / s  # Z'V^-2 X
            Lt = np.swapaxes(L, 1, 2)
            for i in range(K):
                Lti = Lt[:, :, sel[i]]
                M[i] += (Lti @ L[:, sel[i]]).sum(axis=0)
                for j in range(i, K):
                    N[i, j] += (Lti @ Q[:, sel[i]][:, :, sel[j]] @ L[:, sel[j]]).sum(axis=0)
                N[i, K] += (Lti @ Zv2X[:, sel[i]]).sum(axis=0)
            M[K] += Me.sum(axis=0)
            N[K, K] += ((Me - Lt @ H @ L) / s).sum(axis=0)
    T = np.triu(T) + np.triu(T, 1).T
    info = 0.5 * T
    if reml:
        try:
            C = np.linalg.inv(XVX)
        except np.linalg.LinAlgError:
            return nan
        CM = [C @ Mi for Mi in M]
        for i in range(K + 1):
            for j in range(i, K + 1):
                val = 0.5 * (-2.0 * np.trace(C @ N[i, j]) + np.sum(CM[i] * CM[j].T))
                info[i, j] += val
                if j != i:
                    info[j, i] += val
    try:
        cov = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        return nan
    d = np.diag(cov)
    ok = np.isfinite(d) & (d > 0)
    return np.where(ok, np.sqrt(np.where(ok, d, 1.0)), np.nan)


def _warning_text(w: warnings.WarningMessage) -> str:
    return f"{w.category.__name__}: {str(w.message).strip()}"


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)
