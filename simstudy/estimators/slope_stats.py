"""Sufficient statistics and the profiled criterion of the random intercept and slope model, stacked over replicates.

See :mod:`simstudy.estimators.reml_slope` for the model. Per group ``j``: ``Q_j = Z_j'Z_j`` (entries ``q00``
= n_j, ``q01`` = sum x, ``q11`` = sum x^2, ``dq = det Q_j``, computed as ``n_j sum (x - xbar_j)^2``: no
cancellation), ``C_j = Z_j'[X y]``; ``T = [X y]'[X y]``. For 2 x 2 matrices ``adj(I + Q Psi) = (1 + t) I - Q
Psi`` with ``t = tr(Q Psi)``, and ``Psi adj(I + Q Psi) = Psi + det(Psi) adj(Q)``, so with ``r_j = 1 /
det(I + Q_j Psi) = 1 / (1 + t_j + dq_j det Psi)`` (a sum of non-negative terms)::

    A(Psi) = T - sum_j C_j' Psi (I + Q_j Psi)^-1 C_j
           = T - Psi_00 S_00 - Psi_01 S_01 - Psi_11 S_11 - det(Psi) S_adj,   S_* = sum_j r_j O_j*

with the per-group matrices ``O_00 = C_j0 C_j0'``, ``O_01 = C_j0 C_j1' + C_j1 C_j0'``, ``O_11 = C_j1 C_j1'``,
``O_adj = C_j' adj(Q_j) C_j`` (``C_ja`` row ``a`` of ``C_j``). All the dependence on ``Psi`` is in the scalar
weights ``r_j``: one matrix product ``(points x groups) @ (groups x features)`` per replicate gives ``A`` at
every point, and ``sum_j (I + Q_j Psi)^-1 Q_j = sum_j r_j (Q_j + dq_j adj(Psi))`` (the log-determinant's
gradient) comes from the same product. The rest of the gradient needs ``N_j C_j`` with
``N_j = r_j adj(I + Q_j Psi)``, written out elementwise over (points, groups).

Points are laid out ``(P, m, 3)``: ``P`` problems (each a replicate, by index) with ``m`` points each, ``m``
fixed by the caller; everything is computed row by row (elementwise operations, sums over the last axis,
one ``(m x G) @ (G x F)`` product per problem, whose shape does not depend on the other problems), so a
point's numbers depend on that point and its replicate only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from simstudy.estimators import reml as ri
from simstudy.estimators.reml import LOG2PI
from simstudy.estimators.reml_batch import spd_parts


@lru_cache(maxsize=None)
def _triu(q: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the upper triangle of a ``q x q`` matrix (cached)."""
    return np.triu_indices(q)


@dataclass
class SlopeStats:
    """Statistics of R replicates with G groups each (leading axis R).

    ``T`` (R, q, q) total cross products of ``[X y]``; ``q00``, ``q01``, ``q11``, ``dq`` (R, G) the entries and
    determinant of ``Q_j``; ``wx`` (R, G) within-group sum of squares of the slope covariate; ``C`` (R, q, 2G)
    ``C_j`` rows (``[:, :, j]`` sums of ``[X y]``, ``[:, :, G + j]`` sums of ``x [X y]``); ``W`` (R, q, q)
    within-group cross products of ``[X y]``; ``nobs`` (R,); ``p`` (``q = p + 1``, the response last).
    Derived: ``F`` (R, G, 4 q(q+1)/2 + 4) the per-group features (upper triangles of ``O_00``, ``O_01``,
    ``O_11``, ``O_adj``, then ``q00, q01, q11, dq``), ``CX`` (R, 2, G, p) the ``X`` columns of ``C_j``,
    ``qbar`` (R, 3) the mean of ``Q_j`` (entries 00, 01, 11), ``sc`` (R, 2) natural scales of the relative SDs
    of the intercept and the slope, ``1 / sqrt(mean_j Q_j)`` diagonal.
    """

    T: np.ndarray
    q00: np.ndarray
    q01: np.ndarray
    q11: np.ndarray
    dq: np.ndarray
    wx: np.ndarray
    C: np.ndarray
    W: np.ndarray
    nobs: np.ndarray
    p: int

    def __post_init__(self) -> None:
        R, q, G2 = self.C.shape
        G, p = G2 // 2, self.p
        iu = _triu(q)
        C0, C1 = self.C[:, :, :G], self.C[:, :, G:]
        O00 = C0[:, iu[0]] * C0[:, iu[1]]  # (R, nT, G)
        O01 = C0[:, iu[0]] * C1[:, iu[1]] + C1[:, iu[0]] * C0[:, iu[1]]
        O11 = C1[:, iu[0]] * C1[:, iu[1]]
        q00, q01, q11, dq = self.q00[:, None], self.q01[:, None], self.q11[:, None], self.dq[:, None]
        Oad = q11 * O00 - q01 * O01 + q00 * O11
        self.F = np.ascontiguousarray(np.concatenate([O00, O01, O11, Oad], axis=1).transpose(0, 2, 1))
        self.Fq = np.ascontiguousarray(np.concatenate([q00, q01, q11, dq], axis=1).transpose(0, 2, 1))
        # linear forms in (Psi_00, Psi_01, Psi_11, det Psi) per group: det(I + Q Psi) - 1, then the entries
        # a00 - 1, a11 - 1, b, c of I + Q Psi = [[a00, b], [c, a11]]
        z = np.zeros_like(q00)
        self.Ldet = np.concatenate([q00, 2.0 * q01, q11, dq], axis=1)  # (R, 4, G)
        blocks = [[q00, 2.0 * q01, q11, dq], [q00, q01, z, z], [z, q01, q11, z], [z, q00, q01, z], [q01, q11, z, z]]
        self.L = np.concatenate([np.concatenate(b, axis=1) for b in blocks], axis=2)  # (R, 4, 5G)
        # X columns of C_j: E[(k, l), (ab, j)] = C_jak C_jbl for ab in (00, 01, 11)
        X0, X1 = C0[:, :p], C1[:, :p]  # (R, p, G)
        E = [X0[:, :, None] * X0[:, None, :], X0[:, :, None] * X1[:, None, :], X1[:, :, None] * X1[:, None, :]]
        self.E = np.ascontiguousarray(np.concatenate(E, axis=3).reshape(R, p * p, 3 * G))
        self.qbar = np.stack([self.q00.sum(-1), self.q01.sum(-1), self.q11.sum(-1)], axis=1) / G
        self.sc = 1.0 / np.sqrt(np.maximum(self.qbar[:, [0, 2]], 1e-300))
        self.T_tri = self.T[:, iu[0], iu[1]]

    @property
    def R(self) -> int:
        return int(self.nobs.shape[0])

    @property
    def G(self) -> int:
        return int(self.q00.shape[1])

    @property
    def XtX(self) -> np.ndarray:
        return self.T[:, : self.p, : self.p]

    def take(self, idx: np.ndarray | None = None, cols: np.ndarray | None = None) -> "SlopeStats":
        """Replicates ``idx`` (default all); with ``cols`` only those fixed-effect columns (the response is kept)."""
        idx = np.arange(self.R) if idx is None else np.asarray(idx)
        T, C, W, p = self.T[idx], self.C[idx], self.W[idx], self.p
        if cols is not None:
            keep = np.append(cols, self.p)
            T, C, W, p = T[:, keep][:, :, keep], C[:, keep], W[:, keep][:, :, keep], len(cols)
        return SlopeStats(T, self.q00[idx], self.q01[idx], self.q11[idx], self.dq[idx], self.wx[idx], C, W,
                          self.nobs[idx], p)

    @staticmethod
    def stack(stats: list["SlopeStats"]) -> "SlopeStats":
        """Concatenate replicates with the same number of groups and columns."""
        if len(stats) == 1:
            return stats[0]
        return SlopeStats(*(np.concatenate([getattr(s, k) for s in stats]) for k in
                            ("T", "q00", "q01", "q11", "dq", "wx", "C", "W", "nobs")), stats[0].p)


def batch_stats(Z: np.ndarray, x: np.ndarray, lay: ri.Layout, p: int) -> SlopeStats:
    """Statistics of replicates stacked as ``Z`` (R, q, rows), rows ``[X' ; y']``, with slope covariate ``x``
    (R, rows), all grouped by ``lay``. Group sums by ``np.add.reduceat`` over rows sorted by group, one matrix
    product per replicate for ``T`` and ``W``."""
    if lay.order is not None:
        Z = np.take(Z, lay.order, axis=2)
        x = np.take(x, lay.order, axis=1)
    n = lay.n
    T = np.matmul(Z, np.swapaxes(Z, 1, 2))
    sx = np.add.reduceat(x, lay.starts, axis=1)
    xc = x - np.repeat(sx / n, n.astype(np.intp), axis=1)
    wx = np.add.reduceat(xc * xc, lay.starts, axis=1)
    sxx = np.add.reduceat(x * x, lay.starts, axis=1)
    C0 = np.add.reduceat(Z, lay.starts, axis=2)
    C1 = np.add.reduceat(Z * x[:, None, :], lay.starts, axis=2)
    W = T - np.matmul(C0 / n, np.swapaxes(C0, 1, 2))
    R = Z.shape[0]
    q00 = np.broadcast_to(n, (R, n.shape[0])).copy()
    C = np.concatenate([C0, C1], axis=2)
    return SlopeStats(T, q00, sx, sxx, n * wx, wx, C, W, np.full(R, float(Z.shape[2])), p)


def slope_stats(y: np.ndarray, X: np.ndarray, x: np.ndarray, codes: np.ndarray, G: int) -> SlopeStats:
    """Statistics of one replicate (R = 1) from rows (group ``codes`` 0..G-1, every group non-empty)."""
    Z = np.empty((1, X.shape[1] + 1, y.shape[0]))
    Z[0, :-1] = X.T
    Z[0, -1] = y
    return batch_stats(Z, np.asarray(x, dtype=float)[None].copy(), ri.Layout.from_codes(codes, G), X.shape[1])


def psi_of(lam: np.ndarray) -> np.ndarray:
    """``Psi = Lambda Lambda'`` (..., 2, 2) from ``(l11, l21, l22)`` (..., 3)."""
    l11, l21, l22 = lam[..., 0], lam[..., 1], lam[..., 2]
    psi = np.empty(lam.shape[:-1] + (2, 2))
    psi[..., 0, 0] = l11 * l11
    psi[..., 0, 1] = psi[..., 1, 0] = l11 * l21
    psi[..., 1, 1] = l21 * l21 + l22 * l22
    return psi


def chol_of(psi: np.ndarray) -> np.ndarray:
    """lme4's theta ``(l11, l21, l22)`` (diagonal >= 0) of PSD 2 x 2 matrices ``psi`` (..., 2, 2)."""
    l11 = np.sqrt(np.maximum(psi[..., 0, 0], 0.0))
    pos = l11 > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        l21 = np.where(pos, psi[..., 0, 1] / np.where(pos, l11, 1.0), 0.0)
    l22 = np.sqrt(np.maximum(np.where(pos, psi[..., 1, 1] - l21 * l21, psi[..., 1, 1]), 0.0))
    return np.stack([l11, l21, l22], axis=-1)


#: Elements of the (points x groups) arrays of one block of :func:`evaluate_points`, with and without the
#: gradient (cache-sized blocks of problems run several times faster than one large array).
BLOCK_DERIV, BLOCK_CRIT = 1 << 15, 1 << 17


def evaluate_points(S: SlopeStats, lam: np.ndarray, ridx: np.ndarray | None, reml: bool, deriv: bool = True,
                    need_inv: bool = False) -> dict:
    """Criterion (P, m), gradient ``grad`` (P, m, 3) in ``(l11, l21, l22)``, ``gpsi`` (P, m, 2, 2) the symmetric
    ``Gamma = dcrit/dPsi`` (``dcrit = tr(Gamma dPsi)``), and the GLS pieces ``beta``, ``q`` and (with
    ``need_inv`` or for the REML gradient) ``Minv`` at points ``lam`` (P, m, 3) of replicates ``ridx`` (P,)
    (None: problem ``i`` is replicate ``i``), in blocks of problems (each problem's numbers are its own).
    Floating-point warnings are the caller's to silence (``np.errstate``)."""
    P, m = lam.shape[:2]
    step = max(1, (BLOCK_DERIV if deriv else BLOCK_CRIT) // max(m * S.q00.shape[1], 1))
    if P <= step:
        return _evaluate(S, lam, ridx, reml, deriv, need_inv)
    parts = []
    for s in range(0, P, step):
        sl = slice(s, min(s + step, P))
        parts.append(_evaluate(S, lam[sl], np.arange(sl.start, sl.stop) if ridx is None else ridx[sl], reml,
                               deriv, need_inv))
    return {k: (None if parts[0][k] is None else np.concatenate([d[k] for d in parts])) for k in parts[0]}


def _evaluate(S: SlopeStats, lam: np.ndarray, ridx: np.ndarray | None, reml: bool, deriv: bool,
              need_inv: bool) -> dict:
    p = S.p
    q = p + 1

    def g(a: np.ndarray) -> np.ndarray:
        return a if ridx is None else a[ridx]

    l11, l21, l22 = lam[..., 0], lam[..., 1], lam[..., 2]
    p00, p01, p11 = l11 * l11, l11 * l21, l21 * l21 + l22 * l22
    dpsi = (l11 * l22) ** 2
    w4 = np.stack([p00, p01, p11, dpsi], axis=-1)  # (P, m, 4)
    G = S.q00.shape[1]
    if deriv:
        lin = np.matmul(w4, g(S.L))  # (P, m, 5G)
        det = 1.0 + lin[..., :G]
    else:
        det = 1.0 + np.matmul(w4, g(S.Ldet))  # (P, m, G), >= 1
    r = 1.0 / det
    ldH = np.log(det).sum(-1)
    Sf = np.matmul(r, g(S.F))  # (P, m, 4 nT)
    nT = q * (q + 1) // 2
    A_tri = g(S.T_tri)[:, None] - (p00[..., None] * Sf[..., :nT] + p01[..., None] * Sf[..., nT : 2 * nT]
                                  + p11[..., None] * Sf[..., 2 * nT : 3 * nT] + dpsi[..., None] * Sf[..., 3 * nT :])
    iu = _triu(q)
    A = np.empty(lam.shape[:-1] + (q, q))
    A[..., iu[0], iu[1]] = A_tri
    A[..., iu[1], iu[0]] = A_tri
    parts = spd_parts(A, p, need_inv or (deriv and reml))
    qf = parts["q"]
    nobs = g(S.nobs)[:, None]
    dof = nobs - p if reml else nobs
    crit = dof * (1.0 + LOG2PI + np.log(qf / dof)) + ldH + (parts["logdetM"] if reml else 0.0)
    out = {"crit": crit, "beta": parts["beta"], "q": qf, "Minv": parts.get("Minv")}
    if not deriv:
        return out
    u = np.concatenate([-parts["beta"], np.ones(lam.shape[:-1] + (1,))], axis=-1)
    c = np.matmul(u, g(S.C))  # (P, m, 2G): C_j u
    c0, c1 = c[..., :G], c[..., G:]
    # N_j = r_j adj(I + Q_j Psi) = r_j [[a11, -b], [-c, a00]]
    a00, a11 = 1.0 + lin[..., G : 2 * G], 1.0 + lin[..., 2 * G : 3 * G]
    bb, cc = lin[..., 3 * G : 4 * G], lin[..., 4 * G :]
    v0 = r * (a11 * c0 - bb * c1)
    v1 = r * (a00 * c1 - cc * c0)
    w = -dof / qf
    Sq = np.matmul(r, g(S.Fq))  # sum_j r_j (q00, q01, q11, dq)
    g00 = w * (v0 * v0).sum(-1) + (Sq[..., 0] + p11 * Sq[..., 3])
    g01 = w * (v0 * v1).sum(-1) + (Sq[..., 1] - p01 * Sq[..., 3])
    g11 = w * (v1 * v1).sum(-1) + (Sq[..., 2] + p00 * Sq[..., 3])
    if reml:
        # sum_j N_j Y_j N_j' with Y_j = C_jX M^-1 C_jX'
        Minv = parts["Minv"]
        Y = np.matmul(Minv.reshape(Minv.shape[:-2] + (p * p,)), g(S.E))  # (P, m, 3G)
        y00, y01, y11 = Y[..., :G], Y[..., G : 2 * G], Y[..., 2 * G :]
        r2 = r * r
        t0 = a11 * y00 - bb * y01  # rows of adj Y
        t1 = a11 * y01 - bb * y11
        s0 = a00 * y01 - cc * y00
        s1 = a00 * y11 - cc * y01
        g00 = g00 - (r2 * (a11 * t0 - bb * t1)).sum(-1)
        g01 = g01 - (r2 * (a00 * t1 - cc * t0)).sum(-1)
        g11 = g11 - (r2 * (a00 * s1 - cc * s0)).sum(-1)
    out["grad"] = 2.0 * np.stack([g00 * l11 + g01 * l21, g01 * l11 + g11 * l21, g11 * l22], axis=-1)
    out["gpsi"] = np.stack([np.stack([g00, g01], -1), np.stack([g01, g11], -1)], -2)
    return out
