"""The random-intercept GLMM deviance (Laplace and adaptive Gauss-Hermite), its gradient and Hessian, batched.

Model (lme4's parametrisation): ``eta_i = x_i' beta + theta * u_j`` for row ``i`` of cluster ``j``, spherical
random effects ``u_j ~ N(0, 1)``, so ``var(group) = theta^2``; binomial (logit link, ``m_i`` trials, ``y_i``
successes; ``m_i = 1`` for 0/1 data) or Poisson (log link). With ``L_i(eta) = -2 log p(y_i | eta)`` (without
the constant in ``y``) and, per cluster, the penalised deviance ``h_j(u) = sum_i L_i(eta_i) + u^2``, its
conditional mode ``u*_j`` and ``D_j = h_j''(u*) / 2 = 1 + theta^2 W_j`` (``W_j`` the summed GLM weights at
the mode, lme4's ``L_jj^2``), the criterion minimised over ``(theta, beta)`` is::

    f(theta, beta) = sum_j [ h_j(u*_j) + log D_j + F_j ],
    F_j = -2 log sum_k w_k exp(z_k^2 / 2) exp(-(h_j(u*_j + z_k / sqrt(D_j)) - h_j(u*_j)) / 2)

with ``(z_k, w_k)`` the ``nAGQ``-point Gauss-Hermite rule for N(0, 1): ``F_j = 0`` for ``nAGQ = 1`` (the
Laplace approximation, lme4's ``glmerLaplace``), and lme4's ``glmerAGQ`` for ``nAGQ > 1`` (nodes at the mode
plus ``z_k`` conditional SDs ``1 / L_jj``). lme4 adds constants to this (``-2 log C(m, y)`` or ``2 log y!`` for
Laplace: ``aic``; the saturated log-likelihood for AGQ: ``devResid``), see :func:`lme4_constant`.

Derivatives are exact (implicit differentiation of the mode, analytic up to the fourth derivative of
``L``): with ``a_i = (u, x_i)`` the partial derivatives of ``eta_i`` in ``p = (theta, beta)`` at fixed
``u``, ``h_u = theta sum L' + 2u``, ``h_p = sum L' a``, ``h_uu = theta^2 sum L'' + 2``,
``h_up = theta sum L'' a + sum L' e`` and so on (``e`` the unit vector of theta), ``u_p = -h_up / h_uu``,
``T = h_uu(u*(p), p)``, the Laplace gradient is ``h_p + T_p / h_uu`` and its Hessian
``h_pq - h_up h_uq / h_uu + T_pq / h_uu - T_p T_q / h_uu^2``; the AGQ term adds, with posterior node
weights ``pi_k`` and ``Delta_k = h(v_k) - h(u*)`` at the nodes ``v_k = u* + z_k sigma``,
``sigma = (h_uu / 2)^(-1/2)``: ``F_p = sum pi_k Delta_k,p`` and
``F_pq = sum pi_k Delta_k,pq - (sum pi_k Delta_k,p Delta_k,q - F_p F_q) / 2``. Terms ``sum_i c_i a_i a_i'``
are split into their theta row (cluster sums) and their beta block, accumulated per replicate as
``X' diag(c) X`` from row weights.

Batches: the rows of many replicates are concatenated (:class:`Batch`), sorted by replicate and cluster;
per-row work is vectorised over all rows, per-cluster sums are ``np.add.reduceat`` over each cluster's
own rows and per-replicate sums over each replicate's own clusters or rows, so every replicate's numbers
depend on its own data only (bit-identical whichever batch it is in).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

FAMILIES = ("binomial", "poisson")
#: Largest linear predictor passed to exp() for the Poisson family (trial points of a line search only).
_ETA_MAX = 700.0
#: Convergence of the conditional modes: Newton step at most this times (1 + |u|).
_MODE_TOL = 1e-11
_MODE_MAXIT = 60
#: Nodes x rows evaluated at once in the quadrature (bounds memory for large replicates).
_NODE_BUDGET = 1 << 20


def gh_rule(nagq: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite nodes ``z`` and weights ``w`` for the standard normal (``sum w = 1``), lme4's GHrule."""
    if nagq == 1:
        return np.zeros(1), np.ones(1)
    z, w = np.polynomial.hermite_e.hermegauss(nagq)
    return z, w / np.sqrt(2.0 * np.pi)


@dataclass
class Batch:
    """Rows of R replicates, concatenated and sorted by replicate then cluster.

    ``y`` (N,) responses (successes); ``m`` (N,) binomial trials (ones for Poisson); ``XT`` (p, N) fixed-effect
    columns; ``rcl`` (N,) global cluster of each row; ``cstart`` (C,) first row of each cluster; ``crep`` (C,)
    replicate of each cluster; ``rrow`` (N,) replicate of each row; ``rstart_c`` (R,) first cluster and
    ``rstart_r`` (R,) first row of each replicate.
    """

    family: str
    y: np.ndarray
    m: np.ndarray
    XT: np.ndarray
    rcl: np.ndarray
    cstart: np.ndarray
    crep: np.ndarray
    rrow: np.ndarray
    rstart_c: np.ndarray
    rstart_r: np.ndarray

    @property
    def R(self) -> int:
        return int(self.rstart_c.shape[0])

    @property
    def p(self) -> int:
        return int(self.XT.shape[0])

    @classmethod
    def build(cls, family: str, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]]) -> "Batch":
        """From per-replicate ``(y, m, X (n, p), codes (n,) in 0..G-1, G)``; rows are sorted by cluster
        (stably) within each replicate; every code 0..G-1 must occur."""
        ys, ms, Xs, rcl, cst, crep, rrow, rs_c, rs_r = [], [], [], [], [], [], [], [], []
        nrow = ncl = 0
        for r, (y, m, X, codes, G) in enumerate(parts):
            order = None if codes.size < 2 or (codes[1:] >= codes[:-1]).all() else np.argsort(codes, kind="stable")
            if order is not None:
                y, m, X, codes = y[order], m[order], X[order], codes[order]
            n = y.shape[0]
            sizes = np.bincount(codes, minlength=G)
            ys.append(y); ms.append(m); Xs.append(X)
            rcl.append(codes + ncl)
            cst.append(nrow + np.concatenate([[0], np.cumsum(sizes)[:-1]]))
            crep.append(np.full(G, r)); rrow.append(np.full(n, r))
            rs_c.append(ncl); rs_r.append(nrow)
            nrow += n; ncl += G
        XT = np.ascontiguousarray(np.concatenate(Xs).T)
        ip = np.intp
        return cls(family, np.concatenate(ys).astype(float), np.concatenate(ms).astype(float), XT,
                   np.concatenate(rcl).astype(ip), np.concatenate(cst).astype(ip), np.concatenate(crep).astype(ip),
                   np.concatenate(rrow).astype(ip), np.array(rs_c, dtype=ip), np.array(rs_r, dtype=ip))

    def take(self, reps: np.ndarray) -> "Batch":
        """The replicates ``reps`` (in that order) as a new batch."""
        R, N, C = self.R, self.y.shape[0], self.crep.shape[0]
        r_end = np.append(self.rstart_r[1:], N)
        c_end = np.append(self.rstart_c[1:], C)
        rows = np.concatenate([np.arange(self.rstart_r[r], r_end[r]) for r in reps]) if len(reps) else np.zeros(0, int)
        cls_ = np.concatenate([np.arange(self.rstart_c[r], c_end[r]) for r in reps]) if len(reps) else np.zeros(0, int)
        nr = r_end[reps] - self.rstart_r[reps]
        nc = c_end[reps] - self.rstart_c[reps]
        new_rs_r = np.concatenate([[0], np.cumsum(nr)[:-1]]).astype(np.intp)
        new_rs_c = np.concatenate([[0], np.cumsum(nc)[:-1]]).astype(np.intp)
        cmap = np.full(C, -1, dtype=np.intp)
        cmap[cls_] = np.arange(cls_.size)
        rmap = np.full(R, -1, dtype=np.intp)
        rmap[reps] = np.arange(len(reps))
        shift = new_rs_r - self.rstart_r[reps]  # row offset per new replicate
        return Batch(self.family, self.y[rows], self.m[rows], np.ascontiguousarray(self.XT[:, rows]),
                     cmap[self.rcl[rows]], self.cstart[cls_] + shift[rmap[self.crep[cls_]]],
                     rmap[self.crep[cls_]], rmap[self.rrow[rows]], new_rs_c, new_rs_r)


def lme4_constant(family: str, y: np.ndarray, m: np.ndarray, agq: bool) -> float:
    """What lme4 adds to ``sum L``: ``aic`` (-2 log-likelihood) for Laplace, ``devResid`` for AGQ."""
    if family == "binomial":
        if not agq:
            return float(-2.0 * (gammaln(m + 1) - gammaln(y + 1) - gammaln(m - y + 1)).sum())
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(y > 0, y * np.log(y / m), 0.0)
            b = np.where(m - y > 0, (m - y) * np.log((m - y) / m), 0.0)
        return float(2.0 * (a + b).sum())
    if not agq:
        return float(2.0 * gammaln(y + 1).sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(2.0 * (np.where(y > 0, y * np.log(y), 0.0) - y).sum())


def family_terms(family: str, y: np.ndarray, m: np.ndarray, eta: np.ndarray, nder: int,
                 with_L: bool = True) -> list[np.ndarray]:
    """``[L, L', ..., L^(nder)]`` (``L`` left out unless ``with_L``; ``nder`` up to 4) of
    ``L = -2 log p(y | eta)`` without the constant in ``y``, elementwise."""
    out = []
    if family == "binomial":
        e = np.exp(-np.abs(eta))
        ope = 1.0 + e
        if with_L:
            sp = np.log1p(e)
            # y * softplus(-eta) + (m - y) * softplus(eta)
            out.append(2.0 * (y * (sp + np.maximum(-eta, 0.0)) + (m - y) * (sp + np.maximum(eta, 0.0))))
        if nder == 0:
            return out
        pos = eta >= 0
        mu = np.where(pos, 1.0, e) / ope
        v = e / (ope * ope)  # mu (1 - mu)
        L2 = 2.0 * m * v
        out += [2.0 * (m * mu - y), L2]
        if nder >= 3:
            t = (1.0 - e) / ope  # |1 - 2 mu|
            out.append(L2 * np.where(pos, -t, t))
        if nder >= 4:
            out.append(L2 * (1.0 - 6.0 * v))
        return out
    mu = np.exp(np.minimum(eta, _ETA_MAX))
    if with_L:
        out.append(2.0 * (mu - y * eta))
    if nder == 0:
        return out
    L2 = 2.0 * mu
    return out + [L2 - 2.0 * y] + [L2] * (nder - 1)


def offsets(b: Batch, beta: np.ndarray) -> np.ndarray:
    """``X beta`` per row (columns accumulated in order)."""
    o = np.zeros(b.y.shape[0])
    for k in range(b.p):
        o += b.XT[k] * beta[:, k][b.rrow]
    return o


def solve_modes(b: Batch, o: np.ndarray, theta: np.ndarray, u0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Conditional modes ``u*`` (C,) of ``h_j(u)`` by safeguarded Newton from ``u0``, cluster by cluster
    (each cluster stops on its own: ``|step| <= 1e-11 (1 + |u|)``); returns ``u*`` and a bool (C,) of clusters
    that did not converge. ``h_u`` is increasing in ``u``: a bracket is kept and bisection replaces Newton
    steps that leave it; steps are capped at ``|theta step| <= 10``."""
    th_c = theta[b.crep]
    th_r = theta[b.rrow]
    u = u0.copy()
    lo = np.full(u.shape, -np.inf)
    hi = np.full(u.shape, np.inf)
    active = np.ones(u.shape, dtype=bool)
    cap = 10.0 / np.maximum(np.abs(th_c), 1e-300)
    buf = np.empty((2, b.y.shape[0]))
    for _ in range(_MODE_MAXIT):
        buf[:] = family_terms(b.family, b.y, b.m, o + th_r * u[b.rcl], 2, with_L=False)
        s = np.add.reduceat(buf, b.cstart, axis=1)
        g = th_c * s[0] + 2.0 * u
        H = th_c * th_c * s[1] + 2.0
        step = -g / H
        done = np.abs(step) <= _MODE_TOL * (1.0 + np.abs(u))
        active &= ~done
        if not active.any():
            break
        lo = np.where(active & (g < 0), np.maximum(lo, u), lo)
        hi = np.where(active & (g > 0), np.minimum(hi, u), hi)
        cand = u + np.clip(step, -cap, cap)
        outside = ~((cand > lo) & (cand < hi))
        both = np.isfinite(lo) & np.isfinite(hi)
        with np.errstate(invalid="ignore"):
            cand = np.where(outside & both, 0.5 * (lo + hi), cand)
        u = np.where(active, cand, u)
    return u, active


def _vec(u: np.ndarray, s: np.ndarray, Ax: np.ndarray) -> np.ndarray:
    """``sum_i c_i a_i`` (C, P) with ``a_i = (u, x_i)`` from ``s = sum c`` (C,) and ``Ax = sum c x`` (p, C)."""
    return np.concatenate([(u * s)[:, None], Ax.T], axis=1)


def _outer(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[:, :, None] * b[:, None, :]


def _sym(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a b' + b a'`` per cluster."""
    o = _outer(a, b)
    return o + o.transpose(0, 2, 1)


def _theta_part(u: np.ndarray, s: np.ndarray, Ax: np.ndarray) -> np.ndarray:
    """Theta row and column of ``sum_i c_i a_i a_i'`` (C, P, P) with ``a_i = (u, x_i)``; beta block zero."""
    C, P = u.shape[0], Ax.shape[0] + 1
    M = np.zeros((C, P, P))
    M[:, 0, 0] = u * u * s
    M[:, 0, 1:] = (u * Ax).T
    M[:, 1:, 0] = M[:, 0, 1:]
    return M


def evaluate(b: Batch, theta: np.ndarray, beta: np.ndarray, u0: np.ndarray, rule: tuple[np.ndarray, np.ndarray],
             order: int = 0) -> dict:
    """Criterion ``f`` (R,) at ``(theta, beta)`` (R,), (R, p); with ``order >= 1`` its gradient ``g`` (R, P),
    with ``order == 2`` its Hessian ``H`` (R, P, P), in ``(theta, beta)`` (``P = p + 1``). Also ``u`` (C,) the
    modes (for warm starts), ``up`` (C, P) their derivatives in ``(theta, beta)`` (order >= 1), and ``bad``
    (R,) replicates whose modes did not converge (their ``f`` is NaN)."""
    z, w = rule
    o = offsets(b, beta)
    u, notconv = solve_modes(b, o, theta, u0)
    th_c = theta[b.crep]
    th_r = theta[b.rrow]
    eta = o + th_r * u[b.rcl]
    p = b.p
    XT = b.XT
    nder = 4 if order >= 1 else 2
    buf = np.empty((1 + nder + (4 * p if order >= 1 else 0), eta.shape[0]))
    buf[:1 + nder] = family_terms(b.family, b.y, b.m, eta, nder)
    terms = buf[:5]
    if order >= 1:
        for j in range(4):
            for k in range(p):
                np.multiply(buf[1 + j], XT[k], out=buf[5 + j * p + k])
    S = np.add.reduceat(buf, b.cstart, axis=1)
    s0, s1, s2 = S[0], S[1], S[2]
    hstar = s0 + u * u
    huu = th_c * th_c * s2 + 2.0
    fc = hstar + np.log(0.5 * huu)
    nodes = z != 0.0
    zk, wk = z[nodes], w[nodes]
    w0 = float(w[~nodes].sum())
    K = zk.size
    if K:
        sigma = np.sqrt(2.0 / huu)
        v = u[:, None] + sigma[:, None] * zk  # (C, K)
        vt = np.ascontiguousarray(v.T)
        N = eta.shape[0]
        nq = 1 if order == 0 else 3 + 2 * p
        NS = np.empty((nq, K, u.shape[0]))
        L2n = np.empty((K, N)) if order == 2 else None
        step = max(1, _NODE_BUDGET // max(N, 1))
        for k0 in range(0, K, step):  # nodes in chunks (bounded memory; each node's sums are its own)
            ks = slice(k0, min(K, k0 + step))
            etak = o + th_r * vt[ks][:, b.rcl]  # (k, N)
            nb = np.empty((nq,) + etak.shape)
            nb[:1 if order == 0 else 3] = family_terms(b.family, b.y, b.m, etak, 0 if order == 0 else 2)
            if order:
                for j in (1, 2):
                    for k in range(p):
                        np.multiply(nb[j], XT[k], out=nb[3 + (j - 1) * p + k])
            NS[:, ks] = np.add.reduceat(nb, b.cstart, axis=-1)
            if L2n is not None:
                L2n[ks] = nb[2]
        delta = (NS[0] + (v * v).T) - hstar  # (K, C)
        omega = wk * np.exp(0.5 * zk * zk)
        ex = omega[:, None] * np.exp(-0.5 * delta)
        M = w0 + ex.sum(axis=0) if K > 1 else w0 + ex[0]
        fc = fc - 2.0 * np.log(M)
    f = np.add.reduceat(fc, b.rstart_c)
    bad = np.zeros(b.R, dtype=bool)
    if notconv.any():
        bad[np.unique(b.crep[notconv])] = True
        f[bad] = np.nan
    out = {"f": f, "u": u, "bad": bad, "omax": np.maximum.reduceat(np.abs(o), b.rstart_r)}
    if order == 0:
        return out
    s3, s4 = S[3], S[4]
    A1, A2, A3, A4 = (S[5 + j * p: 5 + (j + 1) * p] for j in range(4))
    P = p + 1
    C = u.shape[0]
    e = np.zeros(P); e[0] = 1.0
    E = np.broadcast_to(e, (C, P))
    V1, V2, V3, V4 = _vec(u, s1, A1), _vec(u, s2, A2), _vec(u, s3, A3), _vec(u, s4, A4)
    th2 = th_c * th_c
    h_up = th_c[:, None] * V2 + s1[:, None] * e
    h_uuu = th2 * th_c * s3
    h_uup = th2[:, None] * V3 + (2.0 * th_c * s2)[:, None] * e
    up = -h_up / huu[:, None]
    Tp = h_uup + h_uuu[:, None] * up
    gc = V1 + Tp / huu[:, None]
    if K:
        sp = -0.5 * sigma[:, None] * Tp / huu[:, None]  # d sigma / dp
        NS1, NS2 = NS[1], NS[2]  # (K, C)
        N1x, N2x = NS[3:3 + p], NS[3 + p:3 + 2 * p]  # (p, K, C)
        guk = th_c * NS1 + 2.0 * v.T  # h_u at the nodes (K, C)
        vp = up[None] + zk[:, None, None] * sp[None]  # (K, C, P)
        hpk = np.concatenate([(v.T * NS1)[..., None], N1x.transpose(1, 2, 0)], axis=-1)  # (K, C, P)
        dp = hpk + guk[..., None] * vp - V1[None]  # Delta_k,p
        pik = ex / M  # (K, C)
        pi0 = w0 / M
        Fp = (pik[..., None] * dp).sum(axis=0)
        gc = gc + Fp
    out["g"] = np.add.reduceat(gc, b.rstart_c, axis=0)
    out["up"] = up
    if order == 1:
        return out
    # ---- Hessian
    h_uuup = (th2 * th_c)[:, None] * V4 + (3.0 * th2 * s3)[:, None] * e
    h_uuuu = th2 * th2 * s4
    Upq = -(h_uuu[:, None, None] * _outer(up, up) + _sym(h_uup, up) + _sym(E, V2)) / huu[:, None, None]
    Tpq = (2.0 * th_c[:, None, None] * _sym(E, V3) + (2.0 * s2)[:, None, None] * _outer(E, E) + _sym(h_uuup, up)
           + h_uuuu[:, None, None] * _outer(up, up) + h_uuu[:, None, None] * Upq)
    hu = huu[:, None, None]
    dense = -_outer(h_up, h_up) / hu + Tpq / hu - _outer(Tp, Tp) / (hu * hu)
    # row coefficients of sum_i c_i a_i a_i' at the mode: c = a2 L'' + a3 L''' + a4 L''''
    a2 = np.ones(C)
    a3 = -th_c * h_uuu / (huu * huu)
    a4 = th2 / huu
    rw = None
    if K:
        gbar = (pik * guk).sum(axis=0)
        gzbar = (pik * guk * zk[:, None]).sum(axis=0)
        Spq = -0.5 * sigma[:, None, None] * (Tpq / hu - 1.5 * _outer(Tp, Tp) / (hu * hu))
        hupk = th_c[None, :, None] * np.concatenate([(v.T * NS2)[..., None], N2x.transpose(1, 2, 0)], axis=-1)
        hupk[..., 0] += NS1
        o1 = hupk[..., :, None] * vp[..., None, :]
        node = (pik[..., None, None] * (o1 + o1.swapaxes(-1, -2)
                                         + (th2 * NS2 + 2.0)[..., None, None] * (vp[..., :, None] * vp[..., None, :]))
                ).sum(axis=0)
        ddp = (pik[..., None, None] * (dp[..., :, None] * dp[..., None, :])).sum(axis=0)
        dense = (dense + node + gbar[:, None, None] * Upq + gzbar[:, None, None] * Spq
                 + (1.0 - pi0)[:, None, None] * _outer(h_up, h_up) / hu - 0.5 * (ddp - _outer(Fp, Fp)))
        a3 = a3 - gbar * th_c / huu + 0.5 * sigma * gzbar * th_c * h_uuu / (huu * huu)
        a4 = a4 - 0.5 * sigma * gzbar * th2 / huu
        a2 = a2 - (1.0 - pi0)
        # node terms sum_k pi_k sum_i L''(v_k) a(v_k) a(v_k)': theta parts from node sums, beta block by rows
        vt = v.T
        nd = np.zeros((C, P, P))
        nd[:, 0, 0] = (pik * vt * vt * NS2).sum(axis=0)
        nd[:, 0, 1:] = (pik[None] * vt[None] * N2x).sum(axis=1).T
        nd[:, 1:, 0] = nd[:, 0, 1:]
        dense = dense + nd
        rw = np.zeros(L2n.shape[1])
        for k in range(K):
            rw += pik[k][b.rcl] * L2n[k]
    sc = a2 * s2 + a3 * s3 + a4 * s4
    scx = a2 * A2 + a3 * A3 + a4 * A4
    dense = dense + _theta_part(u, sc, scx)
    r = a2[b.rcl] * terms[2] + a3[b.rcl] * terms[3] + a4[b.rcl] * terms[4]
    if rw is not None:
        r = r + rw
    H = np.add.reduceat(dense, b.rstart_c, axis=0)
    iu = [(k, k2) for k in range(p) for k2 in range(k, p)]
    XX = np.add.reduceat(np.stack([r * XT[k] * XT[k2] for k, k2 in iu]), b.rstart_r, axis=1)  # (npairs, R)
    for j, (k, k2) in enumerate(iu):
        H[:, 1 + k, 1 + k2] += XX[j]
        if k != k2:
            H[:, 1 + k2, 1 + k] += XX[j]
    out["H"] = H
    return out
