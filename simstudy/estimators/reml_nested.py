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

from simstudy.estimators.reml import LOG2PI, SINGULAR_TOL, GroupStats, class_stats, fit_ri, group_means


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
    ind = np.zeros((S.n.size, S.C))
    ind[np.arange(S.n.size), S.centre] = 1.0
    w = S.n / (1.0 + S.n * tr[:, None])  # (m, Rn)
    mc = w @ ind  # (m, C)
    zt = np.einsum("rc,mr,rq->mcq", ind, w, S.zbar) / mc[..., None]
    dev = S.zbar[None] - zt[:, S.centre]  # (m, Rn, q)
    ec = mc / (1.0 + tc[:, None] * mc)
    A = S.W + np.einsum("mr,mri,mrj->mij", w, dev, dev) + np.einsum("mc,mci,mcj->mij", ec, zt, zt)
    M, b, c = A[:, :p, :p], A[:, :p, p], A[:, p, p]
    L = np.linalg.cholesky(M)
    logdetM = 2.0 * np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(-1)
    Minv = np.linalg.inv(M)
    beta = np.einsum("mij,mj->mi", Minv, b)
    q = c - np.einsum("mi,mi->m", b, beta)
    dof = S.nobs - p if reml else S.nobs
    ldH = np.log1p(S.n * tr[:, None]).sum(-1) + np.log1p(tc[:, None] * mc).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        crit = dof * (1.0 + LOG2PI + np.log(q / dof)) + ldH + (logdetM if reml else 0.0)
    out = {"crit": crit, "beta": beta, "Minv": Minv, "q": q, "ldH": ldH, "logdetM": logdetM}
    if deriv:
        gam = tc[:, None] / (1.0 + tc[:, None] * mc)  # (m, C)
        P = w[..., None] * (S.zbar[None] - (gam * mc)[:, S.centre][..., None] * zt[:, S.centre])
        Cc = ec[..., None] * zt  # (m, C, q)
        u = np.concatenate([-beta, np.ones((beta.shape[0], 1))], axis=1)
        grads = []
        for G, dld in ((P, w.sum(-1) - (gam * ((w * w) @ ind)).sum(-1)), (Cc, ec.sum(-1))):
            dq = -np.einsum("mgi,mi->mg", G, u) ** 2
            gk = dof * dq.sum(-1) / q + dld
            if reml:
                gk = gk - np.einsum("mgi,mij,mgj->m", G[..., :p], Minv, G[..., :p])
            grads.append(gk)
        out["grad"] = np.stack(grads, axis=-1)
    return out


def fit_nested(S: NestedStats, reml: bool = True) -> dict:
    """Fit one replicate; returns theta (theta_r, theta_c), sigma2, beta, cov, crit, converged,
    boundary (per component), message."""
    cands: list[tuple[float, float]] = [(0.0, 0.0)]
    conv = True
    msgs = []
    starts = []
    for which, gs in (("rep", S.rep_stats()), ("centre", S.centre_stats())):
        r = fit_ri(gs, reml)
        t = float(r["theta"][0])
        cands.append((t, 0.0) if which == "rep" else (0.0, t))
        starts.append(t)

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
        th = np.exp(phi)
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
        conv = False
        msgs.append(f"L-BFGS-B: {res.message}")
    theta = T[k]
    dof = S.nobs - S.p if reml else S.nobs
    sigma2 = float(ev["q"][k] / dof)
    return {
        "theta": theta, "sigma2": sigma2, "beta": ev["beta"][k], "cov": sigma2 * ev["Minv"][k],
        "crit": float(ev["crit"][k]), "converged": conv, "boundary": np.sqrt(theta) < SINGULAR_TOL,
        "message": "; ".join(msgs),
    }
