"""Exact REML/ML for a random intercept and a random slope (with their covariance) for one grouping factor.

Model: ``y = X b + Z u + e`` with, per group j, ``Z_j = [1, x_j]`` (intercept and the slope covariate),
``u_j ~ N(0, s2 Psi)``, ``e ~ N(0, s2 I)``; ``Psi = Lambda Lambda'`` with ``Lambda`` lower triangular
(``l11, l21, l22``, diagonal >= 0), lme4's relative covariance factor and its ``theta``.

Everything the profiled criterion needs comes from per-group sufficient statistics ``Q_j = Z_j'Z_j`` (2x2),
``C_j = Z_j'[X y]_j`` (2 x q) and the total cross products ``T = [X y]'[X y]``: with
``N_j = (I + Q_j Psi)^-1``::

    A(Psi) = [X y]' H^-1 [X y] = T - sum_j C_j' Psi N_j C_j        (H = I + Z Psi Z')
    log det H = sum_j log det(I + Q_j Psi)

and, as for the random intercept (:mod:`simstudy.estimators.reml`), ``M = A_XX``, ``q = y'H^-1y - b'M b``,
``dof = n - p`` (REML) or ``n`` (ML)::

    crit = dof * (1 + log(2 pi q / dof)) + log det H [+ log det M  for REML]

The exact gradient in ``Psi`` (``d(Psi N_j) = N_j' dPsi N_j``) is, with ``u = [-b, 1]``, ``v_j = N_j C_j u``
and ``P_j = N_j C_j[:, :p]``::

    dcrit/dPsi = -dof/q sum_j v_j v_j' + sum_j Q_j N_j' [- sum_j P_j M^-1 P_j'  for REML]

and ``dcrit/dLambda = 2 (dcrit/dPsi) Lambda``. The criterion is minimised over ``(l11, l21, l22)`` with
``l11, l22 >= 0`` by L-BFGS-B with the exact gradient from several starts (lme4's ``(1, 0, 1)``, and
points built from the random-intercept fit), polished by Newton steps on a finite-difference Hessian of the
exact gradient when the optimum is interior; the candidate with the lowest criterion wins. A fit is flagged
``boundary`` when a diagonal element of the Cholesky factor of ``Psi`` (lme4's theta) is below 1e-4
(lme4's ``isSingular`` rule): then ``Psi`` is singular (the slope and intercept perfectly correlated, or a
variance at 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from simstudy.estimators.reml import LOG2PI, SINGULAR_TOL


@dataclass
class SlopeStats:
    """Sufficient statistics of one replicate: ``T`` (q, q), ``Q`` (G, 2, 2), ``C`` (G, 2, q), ``nobs``,
    ``p`` (number of fixed-effect columns; ``q = p + 1``, the response last)."""

    T: np.ndarray
    Q: np.ndarray
    C: np.ndarray
    nobs: float
    p: int

    def take(self, cols: np.ndarray) -> "SlopeStats":
        keep = np.append(cols, self.p)
        return SlopeStats(self.T[np.ix_(keep, keep)], self.Q, self.C[:, :, keep], self.nobs, len(cols))

    @property
    def XtX(self) -> np.ndarray:
        return self.T[: self.p, : self.p]

    def within_x(self) -> np.ndarray:
        """Within-group sum of squares of the slope covariate, per group."""
        n, sx, sxx = self.Q[:, 0, 0], self.Q[:, 0, 1], self.Q[:, 1, 1]
        return sxx - sx * sx / n


def slope_stats(y: np.ndarray, X: np.ndarray, x: np.ndarray, codes: np.ndarray, G: int) -> SlopeStats:
    """Per-group ``Q_j``, ``C_j`` and the total cross products, in one pass of ``bincount`` per column."""
    p = X.shape[1]
    q = p + 1
    Z = np.empty((y.shape[0], q))
    Z[:, :p] = X
    Z[:, p] = y
    n = np.bincount(codes, minlength=G).astype(float)
    sx = np.bincount(codes, weights=x, minlength=G)
    sxx = np.bincount(codes, weights=x * x, minlength=G)
    Q = np.empty((G, 2, 2))
    Q[:, 0, 0], Q[:, 0, 1], Q[:, 1, 0], Q[:, 1, 1] = n, sx, sx, sxx
    C = np.empty((G, 2, q))
    for k in range(q):
        C[:, 0, k] = np.bincount(codes, weights=Z[:, k], minlength=G)
        C[:, 1, k] = np.bincount(codes, weights=x * Z[:, k], minlength=G)
    T = Z.T @ Z
    return SlopeStats(T, Q, C, float(y.shape[0]), p)


def psi_of(lam: np.ndarray) -> np.ndarray:
    """``Psi = Lambda Lambda'`` (m, 2, 2) from ``(l11, l21, l22)`` (m, 3)."""
    l11, l21, l22 = lam[:, 0], lam[:, 1], lam[:, 2]
    psi = np.empty((lam.shape[0], 2, 2))
    psi[:, 0, 0] = l11 * l11
    psi[:, 0, 1] = psi[:, 1, 0] = l11 * l21
    psi[:, 1, 1] = l21 * l21 + l22 * l22
    return psi


def chol_of(psi: np.ndarray) -> np.ndarray:
    """lme4's theta ``(l11, l21, l22)`` (diagonal >= 0) of a PSD 2x2 ``psi``."""
    l11 = np.sqrt(max(psi[0, 0], 0.0))
    if l11 > 0:
        l21 = psi[0, 1] / l11
        l22 = np.sqrt(max(psi[1, 1] - l21 * l21, 0.0))
    else:
        l21, l22 = 0.0, np.sqrt(max(psi[1, 1], 0.0))
    return np.array([l11, l21, l22])


def evaluate_slope(lam: np.ndarray, S: SlopeStats, reml: bool, deriv: bool = True) -> dict:
    """Criterion (m,), gradient (m, 3) in ``(l11, l21, l22)`` and the GLS pieces at ``m`` points.

    The 2x2 algebra per group is written out elementwise over (points, groups)."""
    p = S.p
    m = lam.shape[0]
    psi = psi_of(lam)  # (m, 2, 2)
    p00, p01, p11 = (psi[:, 0, 0, None], psi[:, 0, 1, None], psi[:, 1, 1, None])  # (m, 1)
    q00, q01, q11 = S.Q[:, 0, 0], S.Q[:, 0, 1], S.Q[:, 1, 1]  # (G,)
    a = 1.0 + q00 * p00 + q01 * p01  # I + Q Psi, (m, G)
    b = q00 * p01 + q01 * p11
    c = q01 * p00 + q11 * p01
    d = 1.0 + q01 * p01 + q11 * p11
    det = a * d - b * c  # >= 1
    n00, n01, n10, n11 = d / det, -b / det, -c / det, a / det  # N = (I + Q Psi)^-1
    C0, C1 = S.C[:, 0], S.C[:, 1]  # (G, q)
    NC0 = n00[..., None] * C0 + n01[..., None] * C1  # (m, G, q)
    NC1 = n10[..., None] * C0 + n11[..., None] * C1
    KC0 = p00[..., None] * NC0 + p01[..., None] * NC1  # Psi N C
    KC1 = p01[..., None] * NC0 + p11[..., None] * NC1
    A = S.T - np.matmul(C0.T, KC0) - np.matmul(C1.T, KC1)
    A = 0.5 * (A + A.transpose(0, 2, 1))
    M, bv, cc = A[:, :p, :p], A[:, :p, p], A[:, p, p]
    L = np.linalg.cholesky(M)
    logdetM = 2.0 * np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(-1)
    Minv = np.linalg.inv(M)
    beta = np.matmul(Minv, bv[..., None])[..., 0]
    qf = cc - (bv * beta).sum(-1)
    dof = S.nobs - p if reml else S.nobs
    ldH = np.log(det).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        crit = dof * (1.0 + LOG2PI + np.log(qf / dof)) + ldH + (logdetM if reml else 0.0)
    out = {"crit": crit, "beta": beta, "Minv": Minv, "q": qf, "psi": psi}
    if deriv:
        u = np.concatenate([-beta, np.ones((m, 1))], axis=1)[:, :, None]  # (m, q, 1)
        v0, v1 = np.matmul(NC0, u)[..., 0], np.matmul(NC1, u)[..., 0]  # (m, G)
        w = -dof / qf
        g00 = w * (v0 * v0).sum(-1) + (q00 * n00 + q01 * n01).sum(-1)
        g01 = w * (v0 * v1).sum(-1) + 0.5 * ((q00 * n10 + q01 * n11) + (q01 * n00 + q11 * n01)).sum(-1)
        g11 = w * (v1 * v1).sum(-1) + (q01 * n10 + q11 * n11).sum(-1)
        if reml:
            P0, P1 = NC0[..., :p], NC1[..., :p]
            P0M = np.matmul(P0, Minv)  # (m, G, p)
            g00 = g00 - (P0M * P0).sum((-1, -2))
            g01 = g01 - (P0M * P1).sum((-1, -2))
            g11 = g11 - (np.matmul(P1, Minv) * P1).sum((-1, -2))
        l11, l21, l22 = lam[:, 0], lam[:, 1], lam[:, 2]
        # dcrit/dLambda = 2 Gamma Lambda, lower-triangular entries
        out["grad"] = 2.0 * np.stack([g00 * l11 + g01 * l21, g01 * l11 + g11 * l21, g11 * l22], axis=-1)
    return out


_BOUNDS = [(0.0, 1e4), (-1e4, 1e4), (0.0, 1e4)]


def fit_slope(S: SlopeStats, reml: bool = True, ri_theta: float | None = None) -> dict:
    """Fit one replicate. Returns ``psi`` (2, 2) relative covariance, ``lam`` (lme4's theta), ``sigma2``,
    ``beta``, ``cov``, ``crit``, ``converged``, ``boundary`` and ``message``."""

    def fun(lam: np.ndarray):
        ev = evaluate_slope(lam[None], S, reml)
        f = float(ev["crit"][0])
        if not np.isfinite(f):
            return 1e300, np.zeros(3)
        return f, ev["grad"][0]

    # scale of the slope relative to the intercept: per-group SD of x
    wx = S.within_x()
    n = S.Q[:, 0, 0]
    sdx = float(np.sqrt(max(wx.sum() / max(n.sum() - n.size, 1.0), 1e-300)))
    starts = [np.array([1.0, 0.0, 1.0])]
    t0 = np.sqrt(ri_theta) if ri_theta is not None and ri_theta > 0 else 0.5
    starts.append(np.array([t0, 0.0, 0.3 / sdx]))
    starts.append(np.array([t0, 0.0, 0.0]))
    starts.append(np.array([0.0, 0.0, 0.3 / sdx]))
    best = None
    msgs: list[str] = []
    for k, x0 in enumerate(starts):
        res = minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=_BOUNDS,
                       options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 2000, "maxcor": 20})
        if best is None or res.fun < best.fun:
            best = res
        # two starts agreeing on an interior optimum settle it; otherwise (a boundary, or disagreement)
        # the remaining starts are tried too
        if k == 1 and min(best.x[0], best.x[2]) > 1e-3 and abs(res.fun - prev) < 1e-8 * max(1.0, abs(res.fun)):
            break
        prev = res.fun
    lam = best.x.copy()
    conv = bool(best.success) or "ABNORMAL" in str(best.message)
    # Newton polish in the free coordinates (diagonal elements at their bound 0 stay there)
    free = ~((lam <= 0.0) & (np.array([1, 0, 1]) == 1))
    f0 = fun(lam)[0]
    for _ in range(8):
        h = 1e-6 * np.maximum(np.abs(lam), 1e-3)
        idx = np.flatnonzero(free)
        if idx.size == 0:
            break
        pts = [lam]
        for k in idx:
            e = np.zeros(3)
            e[k] = h[k]
            pts.append(lam + e)
            pts.append(lam - e)
        ev = evaluate_slope(np.array(pts), S, reml)
        g = ev["grad"]
        Hs = np.stack([(g[1 + 2 * j][idx] - g[2 + 2 * j][idx]) / (2 * h[k]) for j, k in enumerate(idx)], axis=1)
        Hs = 0.5 * (Hs + Hs.T)
        if not np.all(np.linalg.eigvalsh(Hs) > 0):
            break
        step = np.zeros(3)
        step[idx] = np.linalg.solve(Hs, g[0][idx])
        new = lam - step
        if np.any(new[[0, 2]] < 0):
            break
        f1 = fun(new)[0]
        if not f1 <= f0:
            break
        lam, f0 = new, f1
        if np.max(np.abs(step)) < 1e-12 * max(1.0, np.max(np.abs(lam))):
            break
    if not conv:
        msgs.append(f"L-BFGS-B: {best.message}")
    ev = evaluate_slope(lam[None], S, reml, deriv=False)
    psi = ev["psi"][0]
    dof = S.nobs - S.p if reml else S.nobs
    sigma2 = float(ev["q"][0] / dof)
    theta = chol_of(psi)
    return {
        "psi": psi, "lam": theta, "sigma2": sigma2, "beta": ev["beta"][0], "cov": sigma2 * ev["Minv"][0],
        "crit": float(ev["crit"][0]), "converged": conv,
        "boundary": bool(min(theta[0], theta[2]) < SINGULAR_TOL), "message": "; ".join(msgs),
    }
