"""Exact REML/ML for nested random intercepts at two levels (reps within centres) on per-rep sums.

Model: ``V = s2 (I + theta_r Z_r Z_r' + theta_c Z_c Z_c')`` with reps nested in centres. Per centre,
``H_c = D_c + theta_c 1 1'`` with ``D_c = I + theta_r blockdiag(1 1')``; Sherman-Morrison applied per rep
and then per centre gives, with rep sizes ``n_r``, rep means ``zbar_r`` of ``z = [x, y]``,
``w_r = n_r / (1 + n_r theta_r)``, ``m_c = sum_{r in c} w_r`` and the ``w``-weighted centre means
``ztilde_c``::

    [X y]' H^-1 [X y] = W + sum_r w_r (zbar_r - ztilde_c)(zbar_r - ztilde_c)'
                          + sum_c m_c / (1 + theta_c m_c) ztilde_c ztilde_c'
    log det H = sum_r log(1 + n_r theta_r) + sum_c log(1 + theta_c m_c)

(``W`` the pooled within-rep cross products), a sum of positive semi-definite terms, so no cancellation.
The profiled criterion and its exact gradient (``dA/dtheta_k = -sum_g P_g P_g'`` with ``P_g = 1_g' H^-1
[X y]``) need only per-rep and per-centre arrays: memory is O(reps) beyond the design matrix.

Optimisation: the two boundary faces are random-intercept models (reps only, centres only), fitted exactly
by :func:`simstudy.estimators.reml.fit_ri`; the interior by L-BFGS-B on ``log theta`` with the exact
gradient, started from those fits and polished by Newton steps; the candidate with the lowest criterion
wins (``theta = (0, 0)`` is a candidate too). A component is flagged boundary when its relative SD
``sqrt(theta)`` is below 1e-4 (lme4's ``isSingular`` rule).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from simstudy.estimators.reml import (LOG2PI, SINGULAR_TOL, GroupStats, class_stats, fit_ri, group_means,
                                      stack_stats)


@dataclass
class NestedStats:
    """Per-rep sizes ``n`` (Rn,), means ``zbar`` (Rn, q), the rep's centre ``centre`` (Rn,), number of
    centres ``C``, within-rep cross products ``W`` (q, q), ``nobs`` and ``p``."""

    n: np.ndarray
    zbar: np.ndarray
    centre: np.ndarray
    C: int
    W: np.ndarray
    nobs: float
    p: int

    def __post_init__(self) -> None:
        # reps sorted by centre (the model does not depend on their order) and centres without reps
        # dropped (they contribute nothing), so that per-centre sums are np.add.reduceat over reps
        self.centre = np.asarray(self.centre, dtype=np.intp)
        if self.centre.size > 1 and not (self.centre[1:] >= self.centre[:-1]).all():
            order = np.argsort(self.centre, kind="stable")
            self.n, self.zbar, self.centre = self.n[order], self.zbar[order], self.centre[order]
        per = np.bincount(self.centre, minlength=self.C)
        if (per == 0).any():
            present = per > 0
            self.centre = (np.cumsum(present) - 1)[self.centre]
            self.C = int(present.sum())
            per = per[present]
        self.per = per
        self.starts = np.concatenate([[0], np.cumsum(per)[:-1]]).astype(np.intp)

    def take(self, cols: np.ndarray) -> "NestedStats":
        keep = np.append(cols, self.p)
        return NestedStats(self.n, self.zbar[:, keep], self.centre, self.C, self.W[np.ix_(keep, keep)],
                           self.nobs, len(cols))

    def rep_stats(self) -> GroupStats:
        """Random intercept for reps only (theta_c = 0)."""
        sizes, counts, B = class_stats(self.n, self.zbar)
        return GroupStats(self.W[None], sizes[None], counts[None], B[None], np.array([self.nobs]),
                          np.array([float(self.n.size)]), self.p)

    def centre_stats(self) -> GroupStats:
        """Random intercept for centres only (theta_r = 0)."""
        nc = np.bincount(self.centre, weights=self.n, minlength=self.C)
        zc = np.zeros((self.C, self.zbar.shape[1]))
        np.add.at(zc, self.centre, self.n[:, None] * self.zbar)
        zc /= nc[:, None]
        dev = self.zbar - zc[self.centre]
        Wc = self.W + (self.n[:, None] * dev).T @ dev
        sizes, counts, B = class_stats(nc, zc)
        return GroupStats(Wc[None], sizes[None], counts[None], B[None], np.array([self.nobs]),
                          np.array([float(self.C)]), self.p)


def nested_stats(y: np.ndarray, X: np.ndarray, centre: np.ndarray, rep: np.ndarray, C: int, Rn: int):
    """Sufficient statistics from rows: ``centre`` codes 0..C-1 and rep codes 0..Rn-1 (unique overall)."""
    n, zbar, W = group_means(y, X, rep, Rn)
    rep_centre = np.zeros(Rn, dtype=np.intp)
    rep_centre[rep] = centre
    keep = n > 0
    if not keep.all():
        n, zbar, rep_centre = n[keep], zbar[keep], rep_centre[keep]
    return NestedStats(n, zbar, rep_centre, C, W, float(y.shape[0]), X.shape[1])


def evaluate_nested(tr: np.ndarray, tc: np.ndarray, S: NestedStats, reml: bool, deriv: bool = True) -> dict:
    """Criterion, gradient (m, 2) in (theta_r, theta_c), GLS pieces at ``m`` points ``(tr, tc)``."""
    p = S.p
    w = S.n / (1.0 + S.n * tr[:, None])  # (m, Rn)
    mc = np.add.reduceat(w, S.starts, axis=1)  # (m, C)
    zt = np.add.reduceat(w[..., None] * S.zbar, S.starts, axis=1) / mc[..., None]  # (m, C, q)
    ztr = np.repeat(zt, S.per, axis=1)  # (m, Rn, q): each rep's centre
    dev = S.zbar[None] - ztr
    ec = mc / (1.0 + tc[:, None] * mc)
    A = S.W + np.matmul((w[..., None] * dev).transpose(0, 2, 1), dev) \
        + np.matmul((ec[..., None] * zt).transpose(0, 2, 1), zt)
    M, b, c = A[:, :p, :p], A[:, :p, p], A[:, p, p]
    L = np.linalg.cholesky(M)
    logdetM = 2.0 * np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(-1)
    Minv = np.linalg.inv(M)
    beta = np.matmul(Minv, b[..., None])[..., 0]
    q = c - (b * beta).sum(-1)
    dof = S.nobs - p if reml else S.nobs
    ldH = np.log1p(S.n * tr[:, None]).sum(-1) + np.log1p(tc[:, None] * mc).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        crit = dof * (1.0 + LOG2PI + np.log(q / dof)) + ldH + (logdetM if reml else 0.0)
    out = {"crit": crit, "beta": beta, "Minv": Minv, "q": q, "ldH": ldH, "logdetM": logdetM}
    if deriv:
        gam = tc[:, None] / (1.0 + tc[:, None] * mc)  # (m, C)
        P = w[..., None] * (S.zbar[None] - np.repeat(gam * mc, S.per, axis=1)[..., None] * ztr)
        Cc = ec[..., None] * zt  # (m, C, q)
        u = np.concatenate([-beta, np.ones((beta.shape[0], 1))], axis=1)
        grads = []
        dld_r = w.sum(-1) - (gam * np.add.reduceat(w * w, S.starts, axis=1)).sum(-1)
        for G, dld in ((P, dld_r), (Cc, ec.sum(-1))):
            dq = -(np.matmul(G, u[..., None])[..., 0] ** 2)
            gk = dof * dq.sum(-1) / q + dld
            if reml:
                Gp = G[..., :p]
                gk = gk - (np.matmul(Gp, Minv) * Gp).sum((-1, -2))
            grads.append(gk)
        out["grad"] = np.stack(grads, axis=-1)
    return out


def fit_nested(S: NestedStats, reml: bool = True) -> dict:
    """Fit one replicate; returns theta (theta_r, theta_c), sigma2, beta, cov, crit, converged,
    boundary (per component), message."""
    return fit_nested_batch([S], reml)[0]


def fit_nested_batch(stats: list[NestedStats], reml: bool = True) -> list[dict]:
    """Fit replicates: the boundary faces (random-intercept models) of all replicates together, vectorised
    by :func:`simstudy.estimators.reml.fit_ri`, then the interior of each replicate (see
    :func:`fit_nested`). A replicate's results do not depend on the other replicates of the batch."""
    if not stats:
        return []
    faces = [fit_ri(stack_stats([S.rep_stats() for S in stats]), reml)["theta"],
             fit_ri(stack_stats([S.centre_stats() for S in stats]), reml)["theta"]]
    return [_fit_nested_interior(S, reml, float(faces[0][r]), float(faces[1][r])) for r, S in enumerate(stats)]


#: Largest gradient of the criterion on the log-variance-ratio scale, relative to the criterion, that
#: counts as converged when L-BFGS-B itself reports a failed line search.
GRAD_TOL = 1e-6


def _fit_nested_interior(S: NestedStats, reml: bool, t_rep: float, t_centre: float) -> dict:
    cands: list[tuple[float, float]] = [(0.0, 0.0), (t_rep, 0.0), (0.0, t_centre)]
    starts = [t_rep, t_centre]
    conv = True
    msgs = []

    def fun(phi: np.ndarray):
        th = np.exp(phi)
        ev = evaluate_nested(th[:1], th[1:], S, reml)
        return float(ev["crit"][0]), ev["grad"][0] * th

    x0 = np.log(np.maximum(np.array(starts), 1e-2))
    res = minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=[(-30.0, 25.0)] * 2,
                   options={"ftol": 1e-15, "gtol": 1e-9, "maxiter": 500})
    phi = res.x
    # Newton polish on log theta with a finite-difference Hessian of the exact gradient
    for _ in range(3):
        h = 1e-5
        pts = np.exp(np.stack([phi, phi + [h, 0], phi + [0, h]]))
        ev = evaluate_nested(pts[:, 0], pts[:, 1], S, reml)
        g = ev["grad"] * pts
        Hs = np.stack([(g[1] - g[0]) / h, (g[2] - g[0]) / h], axis=1)
        Hs = 0.5 * (Hs + Hs.T)
        if not np.all(np.linalg.eigvalsh(Hs) > 0):
            break
        step = np.linalg.solve(Hs, g[0])
        new = phi - step
        if np.any(new < -30) or np.any(new > 25):
            break
        if evaluate_nested(np.exp(new[:1]), np.exp(new[1:]), S, reml, deriv=False)["crit"][0] > ev["crit"][0]:
            break
        phi = new
        if np.max(np.abs(step)) < 1e-10:
            break
    interior = tuple(np.exp(phi))
    cands.append(interior)
    T = np.array(cands)
    ev = evaluate_nested(T[:, 0], T[:, 1], S, reml, deriv=False)
    # the first candidate (fewest free variances) within 1e-9 of the best wins: a variance of 1e-13
    # that "beats" an exact 0 by rounding noise is a boundary estimate
    crit = np.where(np.isfinite(ev["crit"]), ev["crit"], np.inf)
    k = int(np.flatnonzero(crit <= crit.min() + 1e-9)[0])
    if k == len(cands) - 1 and not res.success:
        # L-BFGS-B's line search often stops "ABNORMAL" within rounding of the optimum; after the Newton
        # polish the exact gradient (on the log scale) decides
        g = evaluate_nested(T[k:, 0], T[k:, 1], S, reml)["grad"][0] * T[k]
        if not np.max(np.abs(g)) < GRAD_TOL * max(1.0, abs(float(ev["crit"][k]))):
            conv = False
            msgs.append(f"L-BFGS-B: {res.message} (gradient {np.max(np.abs(g)):.1e})")
    theta = T[k]
    dof = S.nobs - S.p if reml else S.nobs
    sigma2 = float(ev["q"][k] / dof)
    return {
        "theta": theta, "sigma2": sigma2, "beta": ev["beta"][k], "cov": sigma2 * ev["Minv"][k],
        "crit": float(ev["crit"][k]), "converged": conv, "boundary": np.sqrt(theta) < SINGULAR_TOL,
        "message": "; ".join(msgs),
    }
