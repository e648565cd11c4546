"""Ordinary least squares: classical, cluster-robust (CR1) and fixed-effects (within) variants.

``OLS(formula)`` fits by a Householder QR of ``[X y]`` (LAPACK ``dgeqrf`` directly, to keep the per-fit
overhead near that of ``np.linalg.lstsq``) and reports, for every column of the formula's design:

- default: classical standard errors ``sqrt(s^2 (X'X)^-1)`` with ``s^2 = RSS / (n - p)`` and t intervals
  with ``n - p`` degrees of freedom (``df`` filled with ``n - p``), as ``statsmodels.OLS(...).fit()``.
- ``groups="g"``: cluster-robust sandwich standard errors with the CR1 small-sample factor
  ``G/(G-1) * (n-1)/(n-p)`` and t intervals with ``G - 1`` degrees of freedom. This is what
  ``statsmodels.OLS(...).fit(cov_type="cluster", cov_kwds={"groups": g}, use_t=True)`` reports (its
  defaults ``use_correction=True``, ``df_correction=True``; its ``df_resid_inference`` is ``G - 1``) and what
  Stata's ``regress, vce(cluster g)`` reports.
- ``fixed_effects="g"``: one intercept per level of ``g``, fitted by the within transformation (the formula's
  columns and the response are demeaned within groups). The formula's own ``Intercept`` is absorbed by the
  group intercepts and is not reported. The coefficients, classical SEs and intervals equal those of
  statsmodels' OLS with ``+ C(g)`` added to the formula: ``df = n - p - G`` where ``p`` counts the
  formula's estimable columns other than the intercept (``n - p' - G + 1`` with ``p'`` counting the
  intercept). ``fixed_effects`` and ``groups`` can be combined (fixed effects with cluster-robust SEs);
  then the CR1 factor counts the ``G_fe`` absorbed intercepts among the parameters, as statsmodels does
  with the dummies in the design.

Not estimable coefficients. A column is aliased when the part of it not explained by the columns before it
(in formula order, after the within transformation for fixed effects) has a norm below ``tol`` (default
``1e-7``, the tolerance of R's ``lm``) times the column's own norm (before the within transformation):
``|R_jj| <= tol * ||x_j||`` in the QR. Aliased columns are dropped left to right (the later of two
collinear columns goes, as in R) and reported with NaN estimate, SE, interval and df, and a reason in
``Fit.message`` (``"not estimable: treat is collinear with the fixed effects of g"``). The other
coefficients are those of the fit without the aliased columns; their ``p`` (and the CR1 factor) counts only
the estimable columns. statsmodels instead returns a minimum-norm (pinv) solution with numbers for every
column.

Missing values: rows with a non-finite response or design value are dropped (complete cases), as
statsmodels' formula interface does by default.

Failures. A missing column raises ``ValueError`` (a configuration error, recorded by the runner as a failed
fit). No residual degrees of freedom (``n <= p``), fewer than two clusters, or no estimable column give a
``Fit`` with status ``failed`` and every value NaN, and the reason in ``message``; they do not raise.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import lapack
from scipy.special import stdtrit

from simstudy.estimators.base import Fit
from simstudy.estimators.formula import Formula, _levels_codes, group_codes
from simstudy.types import Data

__all__ = ["OLS"]

#: Relative tolerance for aliased (not estimable) columns; R's ``lm`` uses the same value.
DEFAULT_TOL = 1e-7


class OLS:
    """Ordinary least squares with classical, cluster-robust or fixed-effects inference.

    Parameters
    ----------
    formula : str or Formula
        Model formula, e.g. ``"score ~ treat + x"``; parsed once here.
    groups : str, optional
        Grouping column for cluster-robust (CR1) standard errors with ``G - 1`` df t intervals.
    fixed_effects : str, optional
        Column whose levels get their own intercepts (within transformation); the formula's ``Intercept``
        is then absorbed and not reported.
    level : float
        Confidence level of the intervals.
    tol : float
        Relative tolerance below which a column counts as collinear with the columns before it.
    """

    def __init__(
        self,
        formula: str | Formula,
        *,
        groups: str | None = None,
        fixed_effects: str | None = None,
        level: float = 0.95,
        tol: float = DEFAULT_TOL,
    ) -> None:
        self.formula = formula if isinstance(formula, Formula) else Formula(formula)
        for arg, value in (("groups", groups), ("fixed_effects", fixed_effects)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"OLS: {arg} must be a column name or None, got {value!r}")
        if not 0.0 < float(level) < 1.0:
            raise ValueError(f"OLS: level must lie strictly between 0 and 1, got {level!r}")
        if not 0.0 < float(tol) < 1.0:
            raise ValueError(f"OLS: tol must lie strictly between 0 and 1, got {tol!r}")
        self.groups = groups
        self.fixed_effects = fixed_effects
        self.level = float(level)
        self.tol = float(tol)

    def __repr__(self) -> str:
        opts = "".join(
            f", {k}={v!r}" for k, v in (("groups", self.groups), ("fixed_effects", self.fixed_effects)) if v
        )
        return f"OLS({self.formula.text!r}{opts}, level={self.level})"

    # ------------------------------------------------------------------------------------------------
    def fit(self, data: Data) -> Fit:
        """Fit one replicate; see the module docstring for what is reported."""
        y, X, names = self.formula.build(data)
        fe = cl = None
        if self.fixed_effects is not None:
            fe, _ = group_codes(data, self.fixed_effects)
        if self.groups is not None:
            cl = fe if self.groups == self.fixed_effects else group_codes(data, self.groups)[0]

        # complete cases (fast path: a finite sum means every value is finite)
        if not np.isfinite(y.sum() + X.sum()):
            ok = np.isfinite(y) & np.isfinite(X).all(axis=1)
            y, X = y[ok], np.asfortranarray(X[ok])
            same = cl is fe
            fe = None if fe is None else _levels_codes(fe[ok])[1]
            cl = fe if same else None if cl is None else _levels_codes(cl[ok])[1]
        n = y.shape[0]
        n_fe = int(fe.max()) + 1 if fe is not None and n else 0

        norms = None  # column norms before the within transformation; from R when there is none
        if fe is not None:
            norms = np.sqrt(np.einsum("ij,ij->j", X, X))
            # the group intercepts span the formula's intercept (the first column): drop it, demean the rest
            if self.formula.intercept:
                X, norms, names = X[:, 1:], norms[1:], names[1:]
            X, y = _within(X, y, fe, n_fe)
        p_all = len(names)

        kept, notes, R, qty, rss = self._qr_estimable(X, y, norms, names)
        k = len(kept)
        n_par = k + n_fe  # parameters of the equivalent dummy-variable regression
        if k == 0:
            return Fit.failed("no estimable coefficient" + "".join(f"; {t}" for t in notes), names)
        df_resid = n - n_par
        if df_resid <= 0:
            return Fit.failed(f"no residual degrees of freedom (n={n}, parameters={n_par})", names)

        Rinv, info = lapack.dtrtri(R, lower=0)
        if info != 0:
            return Fit.failed("singular design (triangular inverse failed)", names)
        beta = Rinv @ qty if k <= 8 else lapack.dtrtrs(R, qty, lower=0)[0]

        if cl is None:
            var = (rss / df_resid) * np.einsum("ij,ij->i", Rinv, Rinv)
            df = float(df_resid)
        else:
            n_cl = int(cl.max()) + 1
            if n_cl < 2:
                return Fit.failed("cluster-robust standard errors need at least 2 clusters", names)
            Xk = X if k == X.shape[1] else X[:, kept]
            scores = Xk * (y - Xk @ beta)[:, None]
            S = np.empty((k, n_cl))
            for j in range(k):
                S[j] = np.bincount(cl, weights=scores[:, j], minlength=n_cl)
            half = (Rinv @ Rinv.T) @ S  # (X'X)^-1 S'
            factor = n_cl / (n_cl - 1) * (n - 1) / df_resid
            var = factor * np.einsum("ij,ij->i", half, half)
            df = float(n_cl - 1)

        se = np.sqrt(var)
        if k == p_all:
            est, dfs = beta, np.full(k, df)
        else:
            est, se_all, dfs = np.full(p_all, np.nan), np.full(p_all, np.nan), np.full(p_all, np.nan)
            est[kept], se_all[kept], dfs[kept] = beta, se, df
            se = se_all
        half_width = stdtrit(df, 0.5 + self.level / 2) * se
        return Fit(
            names if isinstance(names, tuple) else tuple(names),
            est,
            se,
            est - half_width,
            est + half_width,
            dfs,
            "ok",
            0,
            "not estimable: " + "; ".join(notes) if notes else "",
        )

    # ------------------------------------------------------------------------------------------------
    def _qr_estimable(
        self, X: np.ndarray, y: np.ndarray, norms: np.ndarray | None, names: tuple[str, ...]
    ) -> tuple[list[int], list[str], np.ndarray, np.ndarray, float]:
        """Columns kept (left to right), a note per aliased column, and from the QR of ``[X_kept y]``: ``R``,
        ``Q'y`` and the residual sum of squares.

        The unpivoted Householder QR (LAPACK ``dgeqrf``) gives ``|R_jj|``, the norm of column ``j``
        orthogonal to the kept columns before it; the first column with ``|R_jj| <= tol * ||x_j||`` is
        dropped and the QR redone, which is R's ``lm`` rule (the later of collinear columns goes). A
        full-rank design costs one QR. ``norms`` are the reference column norms (before a within
        transformation); None means the columns of ``X`` themselves, read off ``R``.
        """
        notes: list[str] = []
        tol = self.tol
        n, p = X.shape
        kept = list(range(p))
        if norms is not None:
            kept = []
            for j in range(p):
                if not norms[j] > 0.0:
                    notes.append(f"{names[j]} is all zero")
                elif np.linalg.norm(X[:, j]) <= tol * norms[j]:
                    notes.append(f"{names[j]} is collinear with the fixed effects of {self.fixed_effects}")
                else:
                    kept.append(j)
        while True:
            k = len(kept)
            A = np.empty((n, k + 1), order="F")
            A[:, :k] = X if k == p else X[:, kept]
            A[:, k] = y
            qr = lapack.dgeqrf(A, overwrite_a=1)[0]
            if n <= k or k == 0:
                # too few rows to tell; the caller reports no residual df
                return kept, notes, np.empty((k, k)), np.empty(k), 0.0
            R = qr[:k, :k] * _upper(k)
            ref = np.sqrt(np.einsum("ij,ij->j", R, R)) if norms is None else norms[kept]
            bad = np.flatnonzero(~(np.abs(np.diagonal(R)) > tol * ref))
            if not bad.size:
                return kept, notes, R, qr[:k, k].copy(), float(qr[k, k]) ** 2
            j = kept.pop(int(bad[0]))
            if not ref[bad[0]] > 0.0:
                notes.append(f"{names[j]} is all zero")
                continue
            before = [names[i] for i in kept if i < j]
            if len(before) > 4:
                before = before[:4] + [f"{len(before) - 4} more"]
            what = ", ".join(before) if before else "the columns before it"
            if self.fixed_effects is not None:
                what += f" and the fixed effects of {self.fixed_effects}"
            notes.append(f"{names[j]} is collinear with {what}")


_UPPER: dict[int, np.ndarray] = {}


def _upper(k: int) -> np.ndarray:
    """A cached ``k x k`` upper-triangular mask of ones (``np.triu`` costs ~10 us a call)."""
    mask = _UPPER.get(k)
    if mask is None:
        mask = _UPPER[k] = np.asfortranarray(np.triu(np.ones((k, k))))
    return mask


def _within(X: np.ndarray, y: np.ndarray, codes: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Demean every column of ``X`` and ``y`` within the groups given by ``codes`` (0..n_groups-1)."""
    counts = np.bincount(codes, minlength=n_groups).astype(float)
    Xw = np.empty_like(X, order="F")
    for j in range(X.shape[1]):
        Xw[:, j] = X[:, j] - (np.bincount(codes, weights=X[:, j], minlength=n_groups) / counts)[codes]
    yw = y - (np.bincount(codes, weights=y, minlength=n_groups) / counts)[codes]
    return Xw, yw
