"""Exact REML/ML for the random-intercept model on per-group sufficient statistics, vectorised over replicates.

Model: ``y = X b + Z u + e`` with one grouping factor, ``u ~ N(0, s2 * theta * I)``, ``e ~ N(0, s2 * I)``.
With ``H = I + theta Z Z'`` (block diagonal, blocks ``I + theta 1 1'``) everything the profiled criterion
needs is the matrix ``A(theta) = [X y]' H^-1 [X y]``, and per group (size ``n_j``, column means ``zbar_j``
of ``z = [x, y]``)::

    A(theta) = W + sum_j n_j / (1 + n_j theta) * zbar_j zbar_j'

where ``W`` is the pooled within-group cross-product matrix of ``[X y]`` (computed from centred data, so
no cancellation). With ``M = X'H^-1X`` (the leading block), ``q = y'H^-1y - b'M b`` (the GLS residual
quadratic form) and ``dof = n - p`` (REML) or ``n`` (ML), the criterion (-2 log-likelihood, the same
constant as lme4 and statsmodels) profiled over ``s2 = q / dof`` is::

    crit(theta) = dof * (1 + log(2 pi q / dof)) + sum_j log(1 + n_j theta) [+ log det M  for REML]

Its derivative is available in closed form (``dA/dtheta = -sum_j a_j^2 zbar_j zbar_j'``), so the scalar
optimum is found by a bracketing root search on the derivative, run in lockstep over replicates:

1. criterion and derivative on a grid of ``tau = theta nbar / (1 + theta nbar)`` in [0, 1) (19 points);
2. the bracket with a sign change (-, +) of the derivative and the lowest criterion is refined by the
   Illinois (modified regula falsi) method to a relative precision of 1e-11 in theta;
3. boundary rule: the criterion at ``theta = 0`` is compared with the interior optimum and the smaller
   wins; if the derivative at 0 is >= 0 and no interior optimum exists, theta = 0. The fit is flagged
   ``boundary`` when ``sqrt(theta) < 1e-4`` (lme4's ``isSingular`` default tolerance on the relative SD);
4. certificate (:func:`certify_ri`, :mod:`simstudy.estimators.optimality`), vectorised: the Newton
   decrement on the relative SD ``sqrt(theta)`` at an interior optimum, the one-sided derivative in theta
   at 0. Replicates that fail are searched again on a wider, finer grid; those still failing are flagged
   not converged (e.g. a criterion still falling at the largest theta: var(residual) -> 0, which the
   boundary rule alone reported as theta = 0).

Groups are stored as *size classes*: groups of equal size share a weight ``a_j``, so a balanced design costs
one ``q x q`` update per evaluation whatever the number of groups. Replicates with different numbers of
classes are padded with empty classes (size 0), which contribute nothing, so a batch may mix group
structures; it needs the same fixed-effect columns in every replicate. Sums over size classes accumulate
class by class in order (:func:`_ksum`, :func:`_kmat`), so padding leaves a replicate's numbers bit-identical.

:class:`Layout` and :func:`batch_stats` compute the statistics of many replicates that share a grouping
(same rows, same groups) at once from a stack ``(R, q, n)``; :func:`full_rank` and
:func:`within_residual_ok` are the rank and degenerate-residual checks over such a stack.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simstudy.estimators import optimality as opt

LOG2PI = float(np.log(2 * np.pi))
#: Relative SD (sqrt(theta)) below which a fit is flagged as boundary (lme4's isSingular tolerance).
SINGULAR_TOL = 1e-4
#: Relative tolerance for declaring a fixed-effect column linearly dependent on earlier ones.
RANK_TOL = 1e-10
_CHUNK = 1 << 16
_GRID = np.concatenate([[0.0], 10.0 ** np.arange(-3.0, 8.01, 0.5)])  # theta * nbar


@dataclass
class GroupStats:
    """Sufficient statistics of one or more replicates (leading axis R) for the random-intercept model.

    ``W`` (R, q, q) within-group cross products of ``[X y]``; ``size``/``count`` (R, K) group size and
    number of groups of each size class; ``B`` (R, K, q, q) sum over the class's groups of
    ``zbar zbar'``; ``nobs`` (R,); ``ngroups`` (R,); ``p`` number of fixed-effect columns.
    """

    W: np.ndarray
    size: np.ndarray
    count: np.ndarray
    B: np.ndarray
    nobs: np.ndarray
    ngroups: np.ndarray
    p: int

    def take(self, idx: np.ndarray, cols: np.ndarray | None = None) -> "GroupStats":
        """Replicates ``idx``; with ``cols`` only those fixed-effect columns (the response is kept)."""
        W, B = self.W[idx], self.B[idx]
        p = self.p
        if cols is not None:
            keep = np.append(cols, self.p)
            W, B, p = W[:, keep][:, :, keep], B[:, :, keep][:, :, :, keep], len(cols)
        return GroupStats(W, self.size[idx], self.count[idx], B, self.nobs[idx], self.ngroups[idx], p)


def group_means(y: np.ndarray, X: np.ndarray, codes: np.ndarray, G: int):
    """Group sizes (G,), column means of ``[X y]`` (G, q) and within cross products ``W`` (q, q).

    One pass of ``bincount`` for the sums, then the centred cross products in chunks of rows so that
    no more than a chunk-sized temporary exists besides the inputs.
    """
    n = np.bincount(codes, minlength=G).astype(float)
    p = X.shape[1]
    sums = np.empty((G, p + 1))
    for k in range(p):
        sums[:, k] = np.bincount(codes, weights=X[:, k], minlength=G)
    sums[:, p] = np.bincount(codes, weights=y, minlength=G)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / n[:, None]
    means[n == 0] = 0.0
    W = np.zeros((p + 1, p + 1))
    for start in range(0, y.shape[0], _CHUNK):
        sl = slice(start, start + _CHUNK)
        c = codes[sl]
        Zc = np.empty((c.shape[0], p + 1))
        Zc[:, :p] = X[sl]
        Zc[:, p] = y[sl]
        Zc -= means[c]
        W += Zc.T @ Zc
    return n, means, W


def class_stats(n: np.ndarray, means: np.ndarray):
    """Collapse groups into size classes: sizes (K,), counts (K,), ``sum zbar zbar'`` per class (K, q, q)."""
    nonempty = n > 0
    n, means = n[nonempty], means[nonempty]
    if n.size and n[0] == n.min() == n.max():  # balanced
        return n[:1], np.array([float(n.size)]), (means.T @ means)[None]
    sizes, inv, counts = np.unique(n, return_inverse=True, return_counts=True)
    q = means.shape[1]
    B = np.zeros((sizes.shape[0], q, q))
    outer = means[:, :, None] * means[:, None, :]
    np.add.at(B, inv, outer)
    return sizes, counts.astype(float), B


def ri_stats(y: np.ndarray, X: np.ndarray, codes: np.ndarray, G: int) -> GroupStats:
    """Sufficient statistics of one replicate (R = 1)."""
    n, means, W = group_means(y, X, codes, G)
    sizes, counts, B = class_stats(n, means)
    return GroupStats(W[None], sizes[None], counts[None], B[None], np.array([float(y.shape[0])]),
                      np.array([float(counts.sum())]), X.shape[1])


def stack_stats(stats: list[GroupStats]) -> GroupStats:
    """Concatenate replicates (same ``p``), padding size classes with empty ones."""
    K = max(s.size.shape[1] for s in stats)

    def pad(a: np.ndarray, axis_len: int) -> np.ndarray:
        extra = K - axis_len
        if extra == 0:
            return a
        width = [(0, 0), (0, extra)] + [(0, 0)] * (a.ndim - 2)
        return np.pad(a, width)

    return GroupStats(
        np.concatenate([s.W for s in stats]),
        np.concatenate([pad(s.size, s.size.shape[1]) for s in stats]),
        np.concatenate([pad(s.count, s.size.shape[1]) for s in stats]),
        np.concatenate([pad(s.B, s.size.shape[1]) for s in stats]),
        np.concatenate([s.nobs for s in stats]),
        np.concatenate([s.ngroups for s in stats]),
        stats[0].p,
    )


def estimable_columns(XtX: np.ndarray, tol: float = RANK_TOL) -> np.ndarray:
    """Indices of columns kept in order, dropping each column that is (numerically) a linear combination
    of the columns kept before it (as R's ``lm`` aliasing does), judged on the correlation scale."""
    d = np.sqrt(np.clip(np.diag(XtX), 0, None))
    if (d > 0).all():  # fast path: full rank
        try:
            L = np.linalg.cholesky(XtX / np.outer(d, d))
            if np.diag(L).min() ** 2 > tol:
                return np.arange(XtX.shape[0])
        except np.linalg.LinAlgError:
            pass
    keep: list[int] = []
    for j in range(XtX.shape[0]):
        if d[j] == 0:
            continue
        K = keep
        c_jj = 1.0
        if K:
            C_KK = XtX[np.ix_(K, K)] / np.outer(d[K], d[K])
            c_Kj = XtX[K, j] / (d[K] * d[j])
            resid = c_jj - c_Kj @ np.linalg.solve(C_KK, c_Kj)
        else:
            resid = c_jj
        if resid > tol:
            keep.append(j)
    return np.array(keep, dtype=int)


def between_columns(S: GroupStats, tol: float = 1e-12) -> np.ndarray:
    """Boolean (R, p): columns constant within every group (within SS ~ 0 relative to the total SS)."""
    p = S.p
    within = np.diagonal(S.W, axis1=1, axis2=2)[:, :p]
    total = within + _ksum(S.size[:, None, :] * np.diagonal(S.B, axis1=2, axis2=3).transpose(0, 2, 1))[:, :p]
    return within <= tol * np.maximum(total, np.finfo(float).tiny)


def _ksum(x: np.ndarray) -> np.ndarray:
    """Sum over the last axis, strictly left to right (trailing zeros -- padded size classes -- then leave
    the result bit-identical, so a replicate's numbers do not depend on the batch it is fitted in)."""
    return np.add.accumulate(x, axis=-1)[..., -1] if x.shape[-1] else np.zeros(x.shape[:-1])


def _kmat(W: np.ndarray | None, a: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``W[:, None] + sum_k a[..., k] B[:, k]`` (R, m, q, q), accumulated class by class in order."""
    R, m, K = a.shape
    q = B.shape[-1]
    out = np.zeros((R, m, q, q)) if W is None else np.repeat(W[:, None], m, axis=1)
    for k in range(K):
        out += a[:, :, k, None, None] * B[:, None, k]
    return out


def logdet_inv(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``log det M`` and ``M^-1`` of a stack of symmetric matrices, by Cholesky.

    Parameters
    ----------
    M : ndarray (..., p, p)

    Returns
    -------
    logdet : ndarray (...)
    inv : ndarray (..., p, p)
        Both NaN for the matrices that are not numerically positive definite (e.g. ``X' H^-1 X`` at an
        extreme theta) instead of an exception, so that a search can step over such points. Each matrix is
        factorised on its own (the same numbers whatever the stack).
    """
    try:
        L = np.linalg.cholesky(M)
        return 2.0 * np.log(L.diagonal(0, -2, -1)).sum(-1), np.linalg.inv(M)
    except np.linalg.LinAlgError:
        pass
    p = M.shape[-1]
    flat = M.reshape(-1, p, p)
    logdet = np.full(flat.shape[0], np.nan)
    inv = np.full(flat.shape, np.nan)
    for i, Mi in enumerate(flat):
        try:
            L = np.linalg.cholesky(Mi)
            logdet[i] = 2.0 * np.log(np.diag(L)).sum()
            inv[i] = np.linalg.inv(Mi)
        except np.linalg.LinAlgError:
            pass
    return logdet.reshape(M.shape[:-2]), inv.reshape(M.shape)


def evaluate(theta: np.ndarray, S: GroupStats, reml: bool, deriv: bool = True):
    """Criterion, its derivative in theta, and the GLS pieces at ``theta`` of shape (R, m).

    Returns a dict with ``crit``, ``grad`` (R, m); ``beta`` (R, m, p); ``Minv`` (R, m, p, p); ``q`` (R, m).
    Sums over size classes run in class order (see :func:`_ksum`).
    """
    p = S.p
    size = S.size[:, None, :]  # (R, 1, K)
    a = size / (1.0 + size * theta[:, :, None])  # (R, m, K)
    A = _kmat(S.W, a, S.B)
    M, b, c = A[..., :p, :p], A[..., :p, p], A[..., p, p]
    logdetM, Minv = logdet_inv(M)
    beta = np.einsum("...ij,...j->...i", Minv, b)
    q = c - np.einsum("...i,...i->...", b, beta)
    dof = (S.nobs - p if reml else S.nobs)[:, None]
    ldH = _ksum(S.count[:, None, :] * np.log1p(size * theta[:, :, None]))
    with np.errstate(divide="ignore", invalid="ignore"):
        crit = dof * (1.0 + LOG2PI + np.log(q / dof)) + ldH + (logdetM if reml else 0.0)
    out = {"crit": crit, "beta": beta, "Minv": Minv, "q": q, "ldH": ldH, "logdetM": logdetM}
    if deriv:
        D = -_kmat(None, a * a, S.B)  # dA/dtheta
        u = np.concatenate([-beta, np.ones(beta.shape[:-1] + (1,))], axis=-1)
        dq = np.einsum("...i,...ij,...j->...", u, D, u)
        grad = dof * dq / q + _ksum(S.count[:, None, :] * a)
        if reml:
            grad = grad + np.einsum("...ij,...ji->...", Minv, D[..., :p, :p])
        out["grad"] = grad
    return out


def _theta_of_tau(tau: np.ndarray, scale: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return tau / ((1.0 - tau) * scale)


def fit_ri(S: GroupStats, reml: bool = True, max_iter: int = 100) -> dict:
    """Fit all replicates of ``S`` (full-rank fixed effects assumed; see :func:`estimable_columns`).

    The bracketing search (module docstring) on the default grid; every optimum is then certified
    (:func:`certify_ri`); replicates that fail are searched again on a wider, finer grid
    (``theta * nbar`` from 1e-8 to 1e12, 0.25 decades apart) and certified again; those still failing are
    flagged not converged, with a message saying which check failed and by how much. Each replicate's
    numbers depend on its own statistics only (bit-identical whatever the batch).

    Returns
    -------
    dict
        Arrays over replicates: ``theta``, ``sigma2``, ``beta`` (R, p), ``cov`` (R, p, p), ``crit``,
        ``iterations``, ``converged`` (certified optimum) and ``boundary`` (bool: ``sqrt(theta)`` below
        ``SINGULAR_TOL``), and ``message`` (list of str, "" when fine).
    """
    res = _ri_search(S, reml, _GRID, max_iter)
    ok, why = certify_ri(res["theta"], res["crit"], S, reml)
    bad = np.flatnonzero(~ok)
    if bad.size:
        Sb = S.take(bad)
        again = _ri_search(Sb, reml, _WIDE_GRID, max_iter)
        ok2, why2 = certify_ri(again["theta"], again["crit"], Sb, reml)
        better = ok2 | (again["crit"] < res["crit"][bad])
        for j, r in enumerate(bad):
            if better[j]:
                for key in ("theta", "sigma2", "beta", "cov", "crit"):
                    res[key][r] = again[key][j]
                ok[r], why[r] = ok2[j], why2[j]
            res["message"][r] = again["message"][j] or res["message"][r]
    res["message"] = [("; ".join(m for m in (why[r], res["message"][r]) if m) if not ok[r] else "")
                      for r in range(ok.size)]
    res["converged"] = ok
    res["boundary"] = np.sqrt(res["theta"]) < SINGULAR_TOL
    return res


#: Wider, finer grid of ``theta * nbar`` for replicates whose first optimum fails its certificate.
_WIDE_GRID = np.concatenate([[0.0], 10.0 ** np.arange(-8.0, 12.01, 0.25)])


def certify_ri(theta: np.ndarray, crit: np.ndarray, S: GroupStats, reml: bool) -> tuple[np.ndarray, list[str]]:
    """First-order optimality of ``theta`` for the replicates of ``S`` (see
    :mod:`simstudy.estimators.optimality`), vectorised: one evaluation of the exact derivative at
    ``theta`` and at ``theta + delta`` (``delta = 1e-5 (theta + 1 / nbar)``, a forward difference for the
    curvature). Interior: the Newton decrement on the relative-SD scale ``s = sqrt(theta)``
    (``g_s = 2 s g``, ``h_s = 4 theta h + 2 g``); at 0: the one-sided derivative in theta.

    Parameters
    ----------
    theta, crit : ndarray (R,)
        The optimum's variance ratios and criterion values.
    S : GroupStats
        The replicates' statistics.
    reml : bool

    Returns
    -------
    ok : ndarray of bool (R,)
    why : list of str
        "" where ok, else which check failed and by how much.
    """
    R = theta.shape[0]
    delta = 1e-5 * (theta + S.ngroups / S.nobs)
    ev = evaluate(np.stack([theta, theta + delta], axis=1), S, reml)
    g0, g1 = ev["grad"][:, 0], ev["grad"][:, 1]
    h = (g1 - g0) / delta
    tol = opt.tolerance(crit)
    interior = theta > 0
    gs = 2.0 * np.sqrt(theta) * g0
    hs = 4.0 * theta * h + 2.0 * g0
    with np.errstate(divide="ignore", invalid="ignore"):
        dec = np.where(interior, np.where(hs > 0, gs * gs / (2.0 * hs), np.inf), 0.0)  # 1-D decrement
    gain = np.where(interior, 0.0, opt.entry_gain(g0, h))
    ok = (dec <= tol) & (gain <= tol) & np.isfinite(crit)
    why = [""] * R
    for r in np.flatnonzero(~ok):
        if not np.isfinite(crit[r]):
            why[r] = "criterion not finite at the optimum"
        elif interior[r]:
            why[r] = opt.failure_message(
                f"not stationary (d crit / d relative SD {gs[r]:.3g}, curvature {hs[r]:.3g}): predicted "
                "decrease", dec[r], tol[r])
        else:
            why[r] = opt.failure_message(
                f"variance at 0 but d crit / d theta = {g0[r]:.3g} < 0 there: decrease available", gain[r], tol[r])
    return ok, why


def _ri_search(S: GroupStats, reml: bool, grid: np.ndarray, max_iter: int) -> dict:
    """The bracketing search of the module docstring on ``grid`` (values of ``theta * nbar``, first 0)."""
    R = S.W.shape[0]
    scale = S.nobs / S.ngroups  # mean group size
    tau_grid = grid / (1.0 + grid)
    taus = np.broadcast_to(tau_grid, (R, tau_grid.size))
    ev = evaluate(_theta_of_tau(taus, scale[:, None]), S, reml)
    f, g = ev["crit"], ev["grad"]
    # brackets: consecutive grid points with g < 0 then g >= 0; pick the one with the lowest criterion
    change = (g[:, :-1] < 0) & (g[:, 1:] >= 0)
    fb = np.where(change, np.minimum(f[:, :-1], f[:, 1:]), np.inf)
    k = np.argmin(fb, axis=1)
    rows = np.arange(R)
    interior = np.isfinite(fb[rows, k])
    lo, hi = tau_grid[k].copy(), tau_grid[k + 1].copy()
    glo, ghi = g[rows, k].copy(), g[rows, k + 1].copy()
    tau = np.where(interior, 0.5 * (lo + hi), 0.0)
    side = np.zeros(R, dtype=int)
    active = interior.copy()
    it = 0
    while active.any() and it < max_iter:
        it += 1
        idx = np.flatnonzero(active)
        a, b, ga, gb, sd = lo[idx], hi[idx], glo[idx], ghi[idx], side[idx]
        c = (a * gb - b * ga) / (gb - ga)
        bad = ~((c > a) & (c < b))
        c[bad] = 0.5 * (a[bad] + b[bad])
        Sx = S if idx.size == R else S.take(idx)
        gc = evaluate(_theta_of_tau(c[:, None], scale[idx, None]), Sx, reml)["grad"][:, 0]
        neg = gc < 0
        # c replaces the end whose derivative has its sign; Illinois: the derivative kept at the end that
        # survives twice in a row is halved
        lo[idx] = np.where(neg, c, a)
        glo[idx] = np.where(neg, gc, np.where(sd == 1, 0.5 * ga, ga))
        hi[idx] = np.where(neg, b, c)
        ghi[idx] = np.where(neg, np.where(sd == -1, 0.5 * gb, gb), gc)
        side[idx] = np.where(neg, -1, 1)
        tau[idx] = c
        width = np.where(neg, b - c, c - a)
        done = (width <= 1e-11 * c * (1.0 - c)) | (gc == 0)
        active[idx[done]] = False
    theta = _theta_of_tau(tau, scale)
    theta[~interior] = 0.0
    # boundary check: criterion at 0 vs the interior optimum
    both = evaluate(np.stack([np.zeros(R), theta], axis=1), S, reml, deriv=False)
    at_zero = both["crit"][:, 0] <= both["crit"][:, 1]
    theta[at_zero] = 0.0
    pick = np.where(at_zero, 0, 1)
    crit = both["crit"][rows, pick]
    beta = both["beta"][rows, pick]
    q = both["q"][rows, pick]
    dof = S.nobs - S.p if reml else S.nobs
    sigma2 = q / dof
    cov = sigma2[:, None, None] * both["Minv"][rows, pick]
    messages = [""] * R
    top = grid[-1]
    for r in np.flatnonzero(~interior & (g[:, -1] < 0)):  # still decreasing at the largest theta of the grid
        messages[r] = f"criterion still decreasing at theta = {top:.0e} / mean group size: var(residual) -> 0"
    for r in np.flatnonzero(active):
        messages[r] = f"no convergence in {max_iter} iterations"
    return {"theta": theta, "sigma2": sigma2, "beta": beta, "cov": cov, "crit": crit,
            "iterations": np.full(R, it), "message": messages}


def satterthwaite_ri(S: GroupStats, theta: np.ndarray, sigma2: np.ndarray, reml: bool = True,
                     boundary: np.ndarray | None = None) -> np.ndarray:
    """Satterthwaite df (R, p) for each fixed effect of the random-intercept model, as lmerTest computes them.

    ``df_k = 2 V_k^2 / (g_k' C g_k)`` with ``V_k = var(b_k) = s2 [M(theta)^-1]_kk`` as a function of the
    variance parameters, ``g_k`` its gradient and ``C = 2 H^-1`` the asymptotic covariance of the variance
    parameters from the Hessian ``H`` of the (unprofiled) -2 log-(restricted) likelihood
    ``F(theta, s2) = dof log(2 pi s2) + log det H(theta) [+ log det M(theta)] + q(theta) / s2`` at the
    optimum. At an optimum the df do not depend on how the variance parameters are parametrised (lmerTest
    uses lme4's ``(sqrt(theta), sqrt(s2))``), so the parameters here are ``(theta, s2)`` with
    ``theta = var(group) / var(residual)``. All derivatives are analytic (no finite differences, so
    nothing steps outside the parameter space near the boundary): with ``D = dA/dtheta =
    -sum_j a_j^2 zbar_j zbar_j'``, ``D2 = d2A/dtheta2 = 2 sum_j a_j^3 zbar_j zbar_j'``, ``u = (-beta, 1)`` and
    ``r = (D u)[:p]``::

        q' = u' D u,   q'' = u' D2 u - 2 r' M^-1 r,   (log det H)'' = -sum_j a_j^2,
        (log det M)'' = tr(M^-1 D2_XX) - tr(M^-1 D_XX M^-1 D_XX),   dM^-1/dtheta = -M^-1 D_XX M^-1,
        F_tt = (log det H)'' [+ (log det M)''] + q'' / s2,  F_ts = -q' / s2^2,  F_ss = 2 q / s2^3 - dof / s2^2.

    Boundary fits (``boundary`` True: ``var(group)`` estimated at 0, :func:`fit_ri`'s flag): the df of the
    model without the group component, whose only variance parameter is ``s2``; ``V_k = s2 M^-1_kk`` with
    ``M = X'X``, ``g_k = M^-1_kk`` and ``C = 2 / F_ss = 2 s2^2 / dof`` give ``df = dof`` exactly, i.e.
    ``n - p`` (REML) or ``n`` (ML), the residual df of the linear model. This is what lmerTest reports at a
    singular fit: in its parametrisation the relative SD enters ``V`` and the criterion only through its
    square, so at 0 the derivative of ``V`` in it vanishes and its Hessian row is ``(h, 0)`` (or a
    near-zero eigenvalue that lmerTest drops): only ``sigma`` contributes.

    Returns NaN where the df cannot be computed: the 2 x 2 Hessian is not positive definite, or a
    quantity is not finite (e.g. ``var(residual) -> 0``).
    """
    p = S.p
    dof = (S.nobs - p if reml else S.nobs).astype(float)
    if boundary is None:
        boundary = np.sqrt(np.clip(theta, 0.0, None)) < SINGULAR_TOL
    out = np.repeat(dof[:, None], p, axis=1)
    idx = np.flatnonzero(~np.asarray(boundary, dtype=bool))
    if idx.size == 0:
        return out
    Sx = S.take(idx)
    th, s2, dofx = theta[idx], sigma2[idx], dof[idx]
    ev = evaluate(th[:, None], Sx, reml, deriv=False)
    Minv, beta, q = ev["Minv"][:, 0], ev["beta"][:, 0], ev["q"][:, 0]
    size = Sx.size[:, None, :]
    a = size / (1.0 + size * th[:, None, None])  # (R, 1, K)
    D = -_kmat(None, a * a, Sx.B)[:, 0]
    D2 = 2.0 * _kmat(None, a * a * a, Sx.B)[:, 0]
    u = np.concatenate([-beta, np.ones((idx.size, 1))], axis=-1)
    Du = np.einsum("rij,rj->ri", D, u)
    r = Du[:, :p]
    dq = np.einsum("ri,ri->r", u, Du)
    d2q = np.einsum("ri,rij,rj->r", u, D2, u) - 2.0 * np.einsum("ri,rij,rj->r", r, Minv, r)
    d2ldH = -_ksum(Sx.count * a[:, 0] ** 2)
    MD = Minv @ D[:, :p, :p]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        Ftt = d2ldH + d2q / s2
        if reml:
            Ftt = Ftt + np.einsum("rij,rji->r", Minv, D2[:, :p, :p]) - np.einsum("rij,rji->r", MD, MD)
        Fts = -dq / s2**2
        Fss = 2.0 * q / s2**3 - dofx / s2**2
        det = Ftt * Fss - Fts**2
        # C = 2 H^-1
        Ctt, Cts, Css = 2.0 * Fss / det, -2.0 * Fts / det, 2.0 * Ftt / det
        V = s2[:, None] * np.diagonal(Minv, axis1=1, axis2=2)  # (R, p)
        gt = -s2[:, None] * np.diagonal(MD @ Minv, axis1=1, axis2=2)
        gs = np.diagonal(Minv, axis1=1, axis2=2)
        denom = Ctt[:, None] * gt**2 + 2.0 * Cts[:, None] * gt * gs + Css[:, None] * gs**2
        df = 2.0 * V**2 / denom
    pd_ok = (Ftt > 0) & (det > 0) & np.isfinite(det)
    df[~pd_ok] = np.nan
    df[~np.isfinite(df) | ~(df > 0)] = np.nan
    out[idx] = df
    return out


# ---------------------------------------------------------------------------------------------------------
# Batched sufficient statistics: many replicates that share one grouping layout (same rows, same groups)


@dataclass
class Layout:
    """A grouping of ``nrows`` rows into ``G`` non-empty groups, shared by the replicates of a batch.

    ``codes`` (nrows,) group of each row (0..G-1); ``n`` (G,) group sizes; ``order`` a stable permutation
    that sorts the rows by group (None when they already are); ``starts`` (G,) first position of each
    group in sorted order; ``sizes``/``counts`` (K,) the size classes; ``members`` the groups of each class
    (None when balanced).
    """

    codes: np.ndarray
    G: int
    n: np.ndarray
    order: np.ndarray | None
    starts: np.ndarray
    sizes: np.ndarray
    counts: np.ndarray
    members: list[np.ndarray] | None

    @property
    def nrows(self) -> int:
        return int(self.codes.shape[0])

    @classmethod
    def from_codes(cls, codes: np.ndarray, G: int) -> "Layout":
        codes = np.asarray(codes, dtype=np.intp)
        n_int = np.bincount(codes, minlength=G)
        order = None
        if codes.size > 1 and not (codes[1:] >= codes[:-1]).all():
            order = np.argsort(codes, kind="stable")
        starts = np.concatenate([[0], np.cumsum(n_int)[:-1]]).astype(np.intp)
        n = n_int.astype(float)
        if n.size and n.min() == n.max():
            sizes, counts, members = n[:1].copy(), np.array([float(G)]), None
        else:
            sizes, inv, cnt = np.unique(n, return_inverse=True, return_counts=True)
            counts = cnt.astype(float)
            members = [np.flatnonzero(inv == k) for k in range(sizes.size)]
        return cls(codes, G, n, order, starts, sizes, counts, members)


def batch_stats(Z: np.ndarray, layout: Layout, p: int) -> tuple[GroupStats, np.ndarray]:
    """Sufficient statistics of replicates stacked as ``Z`` (R, q, nrows), rows ``[X' ; y']`` of each
    replicate, all with grouping ``layout``; returns them and ``X'X`` (R, p, p). ``Z`` is overwritten.

    Group sums by ``np.add.reduceat`` over rows sorted by group, the within cross products from the
    centred rows (no cancellation), one matmul per replicate; every replicate's numbers are computed
    by the same operations whatever the other replicates of the batch (a replicate fitted alone gets
    bit-identical statistics).
    """
    R, q, _ = Z.shape
    if layout.order is not None:
        Z = np.take(Z, layout.order, axis=2)
    sums = np.add.reduceat(Z, layout.starts, axis=2)  # (R, q, G)
    means = sums / layout.n
    Z -= np.repeat(means, layout.n.astype(np.intp), axis=2)
    W = np.matmul(Z, Z.transpose(0, 2, 1))
    mt = means.transpose(0, 2, 1)  # (R, G, q)
    if layout.members is None:
        B = np.matmul(means, mt)[:, None]
    else:
        B = np.empty((R, layout.sizes.size, q, q))
        for k, mem in enumerate(layout.members):
            B[:, k] = np.matmul(means[:, :, mem], mt[:, mem])
    K = layout.sizes.size
    S = GroupStats(W, np.broadcast_to(layout.sizes, (R, K)).copy(), np.broadcast_to(layout.counts, (R, K)).copy(),
                   B, np.full(R, float(layout.nrows)), np.full(R, float(layout.G)), p)
    XtX = W[:, :p, :p] + np.einsum("k,rkij->rij", layout.sizes, B[:, :, :p, :p])
    return S, XtX


def full_rank(XtX: np.ndarray, tol: float = RANK_TOL) -> np.ndarray:
    """Boolean (R,): the fast path of :func:`estimable_columns` over a stack (True: all columns kept).

    False means "check column by column" with :func:`estimable_columns`, which may still keep all.
    """
    R, p = XtX.shape[:2]
    d = np.sqrt(np.clip(np.diagonal(XtX, axis1=1, axis2=2), 0, None))
    ok = (d > 0).all(axis=1)
    out = np.zeros(R, dtype=bool)
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return out
    C = XtX[idx] / (d[idx, :, None] * d[idx, None, :])
    try:
        L = np.linalg.cholesky(C)
        out[idx] = np.diagonal(L, axis1=1, axis2=2).min(axis=1) ** 2 > tol
    except np.linalg.LinAlgError:
        for j, r in enumerate(idx):
            try:
                L = np.linalg.cholesky(C[j])
                out[r] = np.diag(L).min() ** 2 > tol
            except np.linalg.LinAlgError:
                pass
    return out


def within_residual_ok(Wk: np.ndarray, xtx_diag: np.ndarray, nobs: np.ndarray) -> np.ndarray:
    """Boolean (R,): does the response vary within groups beyond the fixed effects?

    ``Wk`` (R, p+1, p+1) within cross products of the estimable columns and the response, ``xtx_diag``
    (R, p) the diagonal of their ``X'X``. Columns with no within-group variation (relative 1e-12) are left
    out; the within regression of the response on the others must leave a residual sum of squares above
    1e-12 of the response's within sum of squares, and ``n - p > 0``.
    """
    R, q = Wk.shape[:2]
    p = q - 1
    wx = np.diagonal(Wk, axis1=1, axis2=2)[:, :p]
    varying = wx > 1e-12 * np.maximum(xtx_diag, np.finfo(float).tiny)
    A = Wk[:, :p, :p] * (varying[:, :, None] & varying[:, None, :])
    ar = np.arange(p)
    A[:, ar, ar] = np.where(varying, wx, 1.0)
    rhs = Wk[:, :p, p] * varying
    if p == 0:
        return ~((Wk[:, 0, 0] <= 0) | (nobs <= 0))
    try:
        coef = np.linalg.solve(A, rhs[..., None])[..., 0]
    except np.linalg.LinAlgError:
        coef = np.empty_like(rhs)
        for r in range(R):
            try:
                coef[r] = np.linalg.solve(A[r], rhs[r])
            except np.linalg.LinAlgError:
                coef[r] = np.linalg.lstsq(A[r], rhs[r], rcond=1e-12)[0]
    resid = Wk[:, p, p] - (rhs * coef).sum(-1)
    return ~((resid <= 1e-12 * Wk[:, p, p]) | (nobs - p <= 0))
