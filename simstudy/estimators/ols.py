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
fit). No residual degrees of freedom (``n <= p``), fewer than two clusters, no estimable column, or a perfect
fit (residuals 0 up to rounding: :data:`PERFECT_FIT`; the SEs would be 0) give a ``Fit`` with status ``failed``
and every value NaN, and the reason in ``message``; they do not raise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.linalg import lapack
from scipy.special import stdtrit

from simstudy.estimators.base import Fit, FitArrays, FitSlots
from simstudy.estimators.formula import ColumnCache, Formula, _levels_codes, group_codes
from simstudy.types import Data

__all__ = ["OLS", "FitArrays"]

#: Relative tolerance for aliased (not estimable) columns; R's ``lm`` uses the same value.
DEFAULT_TOL = 1e-7
#: Rows (replicates x observations) of the arrays stacked at once: small enough to stay in cache.
_STACK_ROWS = 1 << 13
#: Residual norm, relative to the response's, at or below which a fit is perfect (the residual variance 0: an
#: SE of 0 would give intervals of zero width and certain tests), recorded as failed.
PERFECT_FIT = 1e-13


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
        """Fit one replicate; see the module docstring for what is reported (the batched code with a batch
        of one)."""
        return self._fit_many([data], arrays=False).only()

    def fit_batch(self, datasets: Sequence[Data]) -> list[Fit]:
        """Fit many replicates; each Fit is bit-identical to ``fit`` of that replicate alone."""
        return self._fit_many(datasets, arrays=False).fits()

    def fit_batch_arrays(self, datasets: Sequence[Data]) -> FitArrays:
        """Fit many replicates and return the results stacked (:class:`FitArrays`), without a Fit per replicate."""
        return self._fit_many(datasets)

    # ------------------------------------------------------------------------------------------------
    def _fit_many(self, datasets: Sequence[Data], arrays: bool = True) -> Any:
        """Every replicate's design (shared through :func:`~simstudy.estimators.formula.shared_designs`), one
        QR per replicate (LAPACK, as ``fit`` always did), then the rest vectorised over the replicates of the
        same shape. Each step treats a replicate on its own (elementwise, or a stacked product whose matrices
        are the replicate's), so the numbers do not depend on the batch."""
        out = _Collector(len(datasets), self.level)
        stacks: dict[tuple, list] = {}  # (n, names): replicates whose full design goes through one QR each
        codes = ColumnCache()  # grouping columns with the same values share one array of codes
        for i, data in enumerate(datasets):
            y, X, names = self.formula.build(data)
            fe = cl = None
            if self.fixed_effects is not None:
                fe = _codes(data, self.fixed_effects, codes)
            if self.groups is not None:
                cl = fe if self.groups == self.fixed_effects else _codes(data, self.groups, codes)

            # complete cases (fast path: a finite sum means every value is finite)
            if not np.isfinite(y.sum() + X.sum()):
                ok = np.isfinite(y) & np.isfinite(X).all(axis=1)
                y, X = y[ok], np.asfortranarray(X[ok])
                same = cl is fe
                fe = None if fe is None else _levels_codes(fe[ok])[1]
                cl = fe if same else None if cl is None else _levels_codes(cl[ok])[1]
            n = y.shape[0]
            if fe is None:
                p = X.shape[1]
                if 0 < p < n and len(datasets) > 1:
                    stacks.setdefault((n, names), []).append((i, y, X, cl))
                    continue
                self._solve_one(out, i, y, X, names, None, cl, 0)
                continue
            n_fe = int(fe.max()) + 1 if n else 0
            norms = np.sqrt(np.einsum("ij,ij->j", X, X))
            # the group intercepts span the formula's intercept (the first column): drop it, demean the rest
            if self.formula.intercept:
                X, norms, names = X[:, 1:], norms[1:], names[1:]
            yy = float(np.dot(y, y))  # the response's size before the group means are taken out
            X, y = _within(X, y, fe, n_fe)
            self._solve_one(out, i, y, X, names, norms, cl, n_fe, yy)
        for (n, names), members in stacks.items():
            self._solve_stack(out, n, names, members)
        return out.arrays() if arrays else out

    def _solve_stack(self, out: _Collector, n: int, names: tuple[str, ...], members: list) -> None:
        """Replicates with the same n and columns (no fixed effects): ``[X y]`` stacked, one QR each, the
        collinearity check vectorised; a replicate with an aliased column is redone on its own."""
        p = len(names)
        Z = np.empty((len(members), p + 1, n))  # Z[r].T is replicate r's [X y], Fortran-ordered
        for r, (_, y, X, _) in enumerate(members):
            Z[r, :p] = X.T
            Z[r, p] = y
            qr = lapack.dgeqrf(Z[r].T, overwrite_a=1)[0]
            if not np.shares_memory(qr, Z):  # pragma: no cover - f2py copied after all
                Z[r] = qr.T
        # R[r] = replicate r's R, Fortran-ordered as in ``_qr_estimable`` (stacked products and einsums then
        # run the same kernels, in the same order, as on one replicate's R)
        R = np.multiply(Z[:, :p, :p], _upper(p).T, out=np.empty((len(members), p, p))).transpose(0, 2, 1)
        ref = np.sqrt(np.einsum("rij,rij->rj", R, R))
        bad = ~(np.abs(np.diagonal(R, axis1=1, axis2=2)) > self.tol * ref)
        aliased = bad.any(axis=1)
        good = np.flatnonzero(~aliased)
        for r in np.flatnonzero(aliased):
            i, y, X, cl = members[r]
            self._solve_one(out, i, y, X, names, None, cl, 0)
        if not good.size:
            return
        kept = list(range(p))
        qty = Z[good, p, :p]
        rss = [float(v) ** 2 for v in Z[good, p, p]]
        self._finish(out, [members[r] for r in good], names, kept, [], R[good], qty, rss, 0, n)

    def _solve_one(self, out: _Collector, i: int, y: np.ndarray, X: np.ndarray, names: tuple[str, ...],
                   norms: np.ndarray | None, cl: np.ndarray | None, n_fe: int, yy: float | None = None) -> None:
        """One replicate on its own: QRs dropping aliased columns (R's ``lm`` rule), then :meth:`_finish`."""
        n = y.shape[0]
        kept, notes, R, qty, rss = self._qr_estimable(X, y, norms, names)
        k = len(kept)
        n_par = k + n_fe  # parameters of the equivalent dummy-variable regression
        if k == 0:
            out.failed(i, "no estimable coefficient" + "".join(f"; {t}" for t in notes), names)
            return
        if n - n_par <= 0:
            out.failed(i, f"no residual degrees of freedom (n={n}, parameters={n_par})", names)
            return
        self._finish(out, [(i, y, X, cl)], names, kept, notes, R[None], qty[None], [rss], n_fe, n,
                     None if yy is None else np.array([yy]))

    def _finish(self, out: _Collector, members: list, names: tuple[str, ...], kept: list[int], notes: list[str],
                R: np.ndarray, qty: np.ndarray, rss: list[float], n_fe: int, n: int, yy: np.ndarray | None = None
                ) -> None:
        """Coefficients, standard errors and df of replicates with the same n, columns and kept columns, from
        their R (stacked, upper triangular), Q'y and residual sums of squares; ``yy``: the responses' squared
        norms (default ``|Q'y|^2 + rss``, the regressed response's), against which a fit is judged perfect."""
        k, p_all = len(kept), len(names)
        df_resid = n - (k + n_fe)
        inverses, ok = [], []
        if yy is None:  # |y|^2 = |Q'y|^2 + rss
            yy = np.einsum("ri,ri->r", qty, qty) + np.asarray(rss)
        for r, member in enumerate(members):
            if rss[r] <= PERFECT_FIT**2 * yy[r]:
                out.failed(member[0], f"perfect fit (residual norm {np.sqrt(rss[r] / yy[r]) if yy[r] else 0.0:.1g} "
                           "of the response's): the residual variance is 0, so there is no SE, interval or test "
                           "(R's summary.lm warns: essentially perfect fit)", names)
                continue
            inv, info = lapack.dtrtri(R[r], lower=0)
            if info != 0:
                out.failed(member[0], "singular design (triangular inverse failed)", names)
                continue
            inverses.append(inv)
            ok.append(r)
        if len(ok) < len(members):
            if not ok:
                return
            members, R, qty, rss = [members[r] for r in ok], R[ok], qty[ok], [rss[r] for r in ok]
        m = len(members)
        Rinv = np.empty((m, k, k))  # Rinv[r] Fortran-ordered, as dtrtri returns it
        for r, inv in enumerate(inverses):
            Rinv[r] = inv.T
        Rinv = Rinv.transpose(0, 2, 1)
        if k <= 8:
            beta = (Rinv @ qty[:, :, None])[:, :, 0]
        else:
            beta = np.array([lapack.dtrtrs(R[r], qty[r], lower=0)[0] for r in range(m)]).reshape(m, k)
        df = np.empty(m)
        keep = np.ones(m, bool)
        if members[0][3] is None:
            var = (np.array(rss) / df_resid)[:, None] * np.einsum("rij,rij->ri", Rinv, Rinv)
            df[:] = float(df_resid)
        else:
            var = np.empty((m, k))
            factor = 0.0
            by_codes: dict[int, list[int]] = {}  # replicates with the same cluster codes (one array: see below)
            for r, member in enumerate(members):
                by_codes.setdefault(id(member[3]), []).append(r)
            for rows in by_codes.values():
                cl = members[rows[0]][3]
                n_cl = int(cl.max()) + 1
                if n_cl < 2:
                    keep[rows] = False
                    for r in rows:
                        out.failed(members[r][0], "cluster-robust standard errors need at least 2 clusters", names)
                    continue
                factor = n_cl / (n_cl - 1) * (n - 1) / df_resid
                df[rows] = float(n_cl - 1)
                if len(rows) == 1:
                    r = rows[0]
                    _, y, X, _ = members[r]
                    Xk = X if k == X.shape[1] else X[:, kept]
                    scores = Xk * (y - Xk @ beta[r])[:, None]
                    S = np.empty((k, n_cl))
                    for j in range(k):
                        S[j] = np.bincount(cl, weights=scores[:, j], minlength=n_cl)
                    half = (inverses[r] @ inverses[r].T) @ S  # (X'X)^-1 S'
                    var[r] = factor * np.einsum("ij,ij->i", half, half)
                    continue
                # the same steps stacked, each replicate's matrices laid out as above (Fortran-ordered X and
                # Rinv), so that every product runs the same kernel in the same order; in stacks of about
                # _STACK_ROWS rows, which stay in cache
                step = max(1, _STACK_ROWS // max(n, 1))
                bins = None
                for lo in range(0, len(rows), step):
                    part = rows[lo : lo + step]
                    g = len(part)
                    XT = np.empty((g, k, n))
                    Y = np.empty((g, n))
                    for t, r in enumerate(part):
                        XT[t] = members[r][2].T
                        Y[t] = members[r][1]
                    resid = Y - (XT.transpose(0, 2, 1) @ beta[part][:, :, None])[:, :, 0]
                    scores = XT * resid[:, None, :]  # (g, k, n): replicate, column, row
                    if bins is None or bins.shape[0] != g * k * n:
                        bins = (cl[None, :] + n_cl * np.arange(g * k)[:, None]).ravel()
                    S = np.bincount(bins, weights=scores.ravel(), minlength=g * k * n_cl).reshape(g, k, n_cl)
                    half = (Rinv[part] @ Rinv[part].transpose(0, 2, 1)) @ S
                    var[part] = factor * np.einsum("rij,rij->ri", half, half)
            if not keep.all():
                if not keep.any():
                    return
                members, beta, var, df = [mb for mb, kp in zip(members, keep) if kp], beta[keep], var[keep], df[keep]
                m = len(members)
        se = np.sqrt(var)
        if k == p_all:
            est, dfs = beta, np.repeat(df[:, None], k, axis=1)
        else:
            est, se_all, dfs = np.full((m, p_all), np.nan), np.full((m, p_all), np.nan), np.full((m, p_all), np.nan)
            est[:, kept], se_all[:, kept], dfs[:, kept] = beta, se, df[:, None]
            se = se_all
        message = "not estimable: " + "; ".join(notes) if notes else ""
        out.add([mb[0] for mb in members], names, est, se, dfs, df, message)

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
            if n <= k or k == 0:
                # too few rows to tell; the caller reports no residual df
                return kept, notes, np.empty((k, k)), np.empty(k), 0.0
            A = np.empty((n, k + 1), order="F")
            A[:, :k] = X if k == p else X[:, kept]
            A[:, k] = y
            qr = lapack.dgeqrf(A, overwrite_a=1)[0]
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


def _codes(data: Data, column: str, cache: dict) -> np.ndarray:
    """``group_codes(data, column)[0]``, computed once per distinct column (by its values)."""
    values = np.asarray(data[column]) if column in data else None
    if values is None or values.ndim != 1 or values.dtype.kind not in "biuUS":
        return group_codes(data, column)[0]
    key = (values.dtype.str, values.tobytes())
    found = cache.get(key)
    if found is None:
        found = cache[key] = group_codes(data, column)[0]
    return found


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


class _Collector(FitSlots):
    """Gathers a batch's results (groups of replicates with the same columns, and failures)."""

    def __init__(self, n: int, level: float) -> None:
        super().__init__(n)
        self.q = 0.5 + level / 2

    def failed(self, i: int, message: str, names: tuple[str, ...]) -> None:
        self[i] = Fit.failed(message, names)

    def add(self, rows: list[int], names: tuple[str, ...], est: np.ndarray, se: np.ndarray, dfs: np.ndarray,
            df: np.ndarray, message: str) -> None:
        half_width = stdtrit(df, self.q)[:, None] * se
        self.put(rows, names, est, se, est - half_width, est + half_width, dfs, np.zeros(len(rows), np.int8),
                 [message] * len(rows))

    def only(self) -> Fit:
        """The Fit of a batch of one."""
        return self[0]
