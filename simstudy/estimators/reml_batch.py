"""Lockstep tools shared by the batched nested and random-slope engines (:mod:`.reml_nested`, :mod:`.reml_slope`).

Many independent small optimisation *problems* (a replicate, or a replicate and one start) advance together:
every step of the algorithm is one vectorised operation over the problems still active, and a problem that
has finished drops out of the active set. Each problem's numbers must be the ones it would get alone, bit
for bit, so everything here works row by row:

- elementwise operations, sums over the last (contiguous) axis of freshly computed arrays (numpy sums each
  row on its own, pairwise, the same way whatever the number of rows), and ``np.add.accumulate`` (strictly
  left to right: trailing zeros -- padding -- leave a sum unchanged);
- stacked small linear algebra (``np.linalg.eigh``, ``solve``, ``matmul`` over a stack of matrices of one
  shape): LAPACK/BLAS is called once per matrix, with the same shape whatever the stack;
- the Cholesky factorisation of :func:`spd_parts` is written out elementwise.

:func:`newton` is the damped Newton method both engines use (eigenvalues made positive, Armijo backtracking,
a full step in the quadratic region, stopping rules relative to the certificate's tolerance); :func:`pick_best`
chooses among candidate optima per replicate.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from simstudy.estimators import optimality as opt


def seqsum(x: np.ndarray) -> np.ndarray:
    """Sum over the last axis, strictly left to right (trailing zeros leave the result bit-identical)."""
    return np.add.accumulate(x, axis=-1)[..., -1] if x.shape[-1] else np.zeros(x.shape[:-1])


def spd_parts(A: np.ndarray, p: int, need_inv: bool = False) -> dict:
    """GLS pieces of stacked ``A = [[M, b], [b', c]]`` (..., q, q), ``M`` the leading ``p x p`` block.

    The Cholesky factor ``L`` of ``M`` is computed elementwise over the stack (column by column), so each
    matrix's numbers depend on that matrix only.

    Parameters
    ----------
    A : ndarray (..., q, q)
        Symmetric; ``q = p + 1``.
    p : int
    need_inv : bool
        Also return ``M^-1``.

    Returns
    -------
    dict
        ``logdetM`` (...), ``beta = M^-1 b`` (..., p), ``q = c - b' M^-1 b`` (...) and, with ``need_inv``,
        ``Minv`` (..., p, p); all NaN where ``M`` is not numerically positive definite (a pivot <= 0).
    """
    shape = A.shape[:-2]
    L = np.zeros(shape + (p, p))
    ok = np.ones(shape, dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        for j in range(p):
            s = A[..., j, j] - (L[..., j, :j] * L[..., j, :j]).sum(-1) if j else A[..., j, j].copy()
            ok &= s > 0
            d = np.sqrt(np.where(s > 0, s, np.nan))
            L[..., j, j] = d
            if j + 1 < p:
                rest = A[..., j + 1 : p, j]
                if j:
                    rest = rest - (L[..., j + 1 :, :j] * L[..., j, None, :j]).sum(-1)
                L[..., j + 1 :, j] = rest / d[..., None]
        diag = np.diagonal(L, axis1=-2, axis2=-1)
        logdet = 2.0 * np.log(diag).sum(-1)
        b = A[..., :p, p]
        z = np.empty(shape + (p,))
        for j in range(p):
            r = b[..., j] - (L[..., j, :j] * z[..., :j]).sum(-1) if j else b[..., 0].copy()
            z[..., j] = r / diag[..., j]
        q = A[..., p, p] - (z * z).sum(-1)
        beta = np.empty(shape + (p,))
        for j in range(p - 1, -1, -1):
            r = z[..., j] - (L[..., j + 1 :, j] * beta[..., j + 1 :]).sum(-1) if j < p - 1 else z[..., j].copy()
            beta[..., j] = r / diag[..., j]
        out = {"logdetM": logdet, "beta": beta, "q": q}
        if need_inv:
            Li = np.zeros(shape + (p, p))  # L^-1, lower triangular, row by row
            for i in range(p):
                Li[..., i, i] = 1.0 / diag[..., i]
                for j in range(i):
                    Li[..., i, j] = -(L[..., i, j:i] * Li[..., j:i, j]).sum(-1) / diag[..., i]
            out["Minv"] = np.matmul(np.swapaxes(Li, -1, -2), Li)
    bad = ~ok
    if bad.any():
        for key in out:
            out[key][bad] = np.nan
    return out


#: ``derivs(idx, X) -> (f, g, H)``: criterion (k,), gradient (k, nf) and symmetric Hessian (k, nf, nf) in the
#: free coordinates, at points ``X`` (k, d) of problems ``idx`` (k,).
Derivs = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]
#: ``crit(idx, X) -> f``: criterion (k,) at points ``X`` (k, d) of problems ``idx``.
Crit = Callable[[np.ndarray, np.ndarray], np.ndarray]


def newton(derivs: Derivs, crit: Crit, x0: np.ndarray, free: np.ndarray,
           max_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """Damped Newton minimisation of many problems in lockstep, over the coordinates ``free`` of ``x``.

    Per problem, each step: stop if the criterion, gradient or Hessian is not finite; the Newton decrement
    ``dec`` from the eigen-decomposition of the Hessian (``inf`` unless positive definite); stop when
    ``dec <= 1e-8 tol`` or, in the quadratic region (``dec <= tol``, ``tol`` the certificate's tolerance),
    when it no longer falls tenfold per step (rounding); direction ``-V diag(1 / max(|lambda|, 1e-10
    max|lambda|)) V' g`` (eigenvalues made positive). In the quadratic region the full step is taken unless
    the criterion rises beyond rounding (1e-13 relative: stop); otherwise the step is capped at
    ``2 (1 + max|x|)`` (no jumps across orders of magnitude) and halved until the Armijo condition
    ``f(x + a d) <= f + 1e-4 a g'd`` holds (stop when ``a max|d|`` falls below ``1e-15 (1 + max|x|)``).

    Parameters
    ----------
    derivs, crit : callables
        See :data:`Derivs` and :data:`Crit`; ``crit`` decides how a non-finite value compares (NaN fails
        every test, ``inf`` is simply large).
    x0 : ndarray (P, d)
        Starts.
    free : ndarray of int
        The coordinates optimised (the others stay at their start).
    max_iter : int

    Floating-point warnings are the caller's to silence (``np.errstate``).

    Returns
    -------
    x : ndarray (P, d)
        The end points.
    iterations : ndarray of int (P,)
        The step at which each problem stopped (``max_iter`` if it never did).
    """
    x = np.array(x0, dtype=float)
    P = x.shape[0]
    its = np.zeros(P, dtype=int)
    if P == 0:
        return x, its
    f, g, H = derivs(np.arange(P), x)
    last = np.full(P, np.inf)
    active = np.ones(P, dtype=bool)
    for step in range(1, max_iter + 1):
        A = np.flatnonzero(active)
        if A.size == 0:
            break
        its[A] = step
        fin = np.isfinite(f[A]) & np.isfinite(H[A]).all(axis=(1, 2)) & np.isfinite(g[A]).all(axis=1)
        active[A[~fin]] = False
        B = A[fin]
        if B.size == 0:
            break
        fB, gB = f[B], g[B]
        tol = opt.tolerance(fB)
        lam, V = np.linalg.eigh(H[B])
        c = np.matmul(np.swapaxes(V, 1, 2), gB[:, :, None])[:, :, 0]
        dec = np.where(lam[:, 0] > 0, 0.5 * (c * c / lam).sum(-1), np.inf)
        stop = (dec <= 1e-8 * tol) | ((dec <= tol) & (dec > 0.1 * last[B]))
        last[B] = dec
        big = np.abs(lam).max(axis=1)
        d = -np.matmul(V, (c / np.maximum(np.abs(lam), 1e-10 * big[:, None] + 1e-300))[:, :, None])[:, :, 0]
        dmax = np.abs(d).max(axis=1)
        stop |= ~np.isfinite(dmax) | (dmax == 0)
        active[B[stop]] = False
        keep = ~stop
        B, fB, gB, d, dmax, tol, dec = B[keep], fB[keep], gB[keep], d[keep], dmax[keep], tol[keep], dec[keep]
        if B.size == 0:
            continue
        xB = x[B]
        xmax = np.abs(xB).max(axis=1)
        quad = dec <= tol
        d = np.where(quad[:, None], d, d * np.minimum(1.0, 2.0 * (1.0 + xmax) / dmax)[:, None])
        slope = (gB * d).sum(-1)
        thresh = 1e-15 * (1.0 + xmax)
        dm = np.abs(d).max(axis=1)
        alpha = np.ones(B.size)
        accepted = np.zeros(B.size, dtype=bool)
        trial = xB.copy()
        pending = quad | (alpha * dm > thresh)  # the quadratic ones are tried once, at the full step
        failed = ~pending
        while pending.any():
            j = np.flatnonzero(pending)
            pts = xB[j].copy()
            pts[:, free] = xB[j][:, free] + alpha[j, None] * d[j]
            fj = crit(B[j], pts)
            scale = 1e-13 * np.maximum(1.0, np.abs(fB[j]))
            good = np.where(quad[j], ~(fj > fB[j] + scale), fj <= fB[j] + 1e-4 * alpha[j] * slope[j])
            accepted[j[good]] = True
            trial[j[good]] = pts[good]
            pending[j[good]] = False
            qbad = j[~good & quad[j]]
            pending[qbad] = False
            failed[qbad] = True
            ls = j[~good & ~quad[j]]
            alpha[ls] *= 0.5
            more = alpha[ls] * dm[ls] > thresh[ls]
            pending[ls[~more]] = False
            failed[ls[~more]] = True
        active[B[failed]] = False
        acc = B[accepted]
        if acc.size:
            x[acc] = trial[accepted]
            f[acc], g[acc], H[acc] = derivs(acc, x[acc])
    return x, its


def runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and lengths of the runs of equal values in ``keys`` (1-D, non-empty)."""
    new = np.empty(keys.shape[0], dtype=bool)
    new[:1] = True
    new[1:] = keys[1:] != keys[:-1]
    starts = np.flatnonzero(new)
    return starts, np.diff(np.append(starts, keys.shape[0]))


def pick_best(owner: np.ndarray, f: np.ndarray, zeros: np.ndarray) -> np.ndarray:
    """Per owner, the candidate with the lowest criterion; among those within rounding (1e-12 relative) of
    it, the one with the most ``zeros`` (then the lowest criterion, then the first).

    Parameters
    ----------
    owner : ndarray of int (n,)
        Owner (replicate) of each candidate; candidates of one owner are contiguous and in order.
    f : ndarray (n,)
        Criterion values, ``inf`` where not finite.
    zeros : ndarray of int (n,)
        Number of variance components at 0 of each candidate.

    Returns
    -------
    ndarray of int
        Index of the chosen candidate for each owner, in owner order.
    """
    new = np.empty(owner.shape[0], dtype=bool)
    new[:1] = True
    new[1:] = owner[1:] != owner[:-1]
    starts = np.flatnonzero(new)
    seg = np.cumsum(new) - 1
    fmin = np.minimum.reduceat(f, starts)[seg]
    near = f <= fmin + 1e-12 * np.maximum(1.0, np.abs(fmin))
    z = np.where(near, zeros, -1)
    zmax = np.maximum.reduceat(z, starts)[seg]
    sel = near & (zeros == zmax)
    fsel = np.where(sel, f, np.inf)
    fbest = np.minimum.reduceat(fsel, starts)[seg]
    hit = np.flatnonzero(sel & (fsel == fbest))
    _, first = np.unique(seg[hit], return_index=True)
    return hit[first]
