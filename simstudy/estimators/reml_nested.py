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

Optimisation, on lme4's scale -- the relative SDs ``s = (s_r, s_c)``, ``theta = s^2``, bound ``s >= 0``:

1. the two boundary faces are random-intercept models (reps only, centres only), fitted exactly and
   together for a batch by :func:`simstudy.estimators.reml.fit_ri`;
2. Newton steps on ``s`` (exact gradient, Hessian by forward differences of it, eigenvalues made positive,
   Armijo backtracking) from the faces' SDs (at least 0.1 each). The criterion is even in each ``s_k``, so
   the bound is a reflection, not a constraint: a component can reach 0, and leave it, freely (on
   ``log theta`` the gradient vanishes towards 0 and an optimiser stops at its lower bound, reporting
   convergence at a variance of 0 that is not the optimum);
3. projected Newton steps on ``theta >= 0`` polish the result (near a small variance the criterion is
   quartic in ``s`` but quadratic in ``theta``);
4. the candidates -- this point, it with its components below 1e-4 set to 0, the faces and ``(0, 0)`` --
   are compared; within 1e-12 (relative) of the lowest criterion the one with the most zeros wins;
5. the winner is certified (:func:`certify_nested`, :mod:`simstudy.estimators.optimality`): Newton
   decrement on ``s`` for the components above 0, the one-sided derivative in ``theta`` for those at 0.
   If that fails: Newton from lme4's start ``(1, 1)``, from the failing point moved into the interior and
   from three times the first start, the best candidate certified again; still failing: not converged,
   with a message saying which check failed and by how much.

A component is flagged boundary when its relative SD is below 1e-4 (lme4's ``isSingular`` rule).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simstudy.estimators import optimality as opt
from simstudy.estimators.reml import (LOG2PI, SINGULAR_TOL, GroupStats, class_stats, fit_ri, group_means,
                                      logdet_inv, stack_stats)


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
    logdetM, Minv = logdet_inv(M)
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


def fit_nested(S: NestedStats, reml: bool = True, names: tuple[str, str] = ("rep", "centre")) -> dict:
    """Fit one replicate (see :func:`fit_nested_batch`).

    Parameters
    ----------
    S : NestedStats
    reml : bool
    names : (str, str)
        Names of the inner and outer grouping columns, for messages.

    Returns
    -------
    dict
        ``theta`` (theta_r, theta_c) variance ratios, ``sigma2``, ``beta``, ``cov``, ``crit``, ``converged``
        (the optimum passed its certificate), ``boundary`` (per component: relative SD below 1e-4),
        ``iterations`` (Newton iterations, all starts) and ``message``.
    """
    return fit_nested_batch([S], reml, names)[0]


def fit_nested_batch(stats: list[NestedStats], reml: bool = True,
                     names: tuple[str, str] = ("rep", "centre")) -> list[dict]:
    """Fit replicates: the boundary faces (random-intercept models) of all replicates together, vectorised
    by :func:`simstudy.estimators.reml.fit_ri`, then each replicate on its own (module docstring).
    ``names`` (inner, outer) name the variances in messages. A replicate's results do not depend on the
    other replicates of the batch."""
    if not stats:
        return []
    faces = [fit_ri(stack_stats([S.rep_stats() for S in stats]), reml)["theta"],
             fit_ri(stack_stats([S.centre_stats() for S in stats]), reml)["theta"]]
    return [_fit_one(S, reml, float(faces[0][r]), float(faces[1][r]), names) for r, S in enumerate(stats)]


class _Problem:
    """The criterion of one replicate as a function of the relative SDs ``s = (s_r, s_c)``, ``theta = s^2``."""

    def __init__(self, S: NestedStats, reml: bool) -> None:
        self.S, self.reml = S, reml
        # natural scales of theta: 1 / mean rep size, 1 / mean centre size (theta enters as 1 + n theta)
        self.scale = np.array([S.n.size / S.nobs, S.C / S.nobs])

    def crit(self, s: np.ndarray) -> np.ndarray:
        """Criterion at points ``s`` (m, 2)."""
        th = s * s
        return evaluate_nested(th[:, 0], th[:, 1], self.S, self.reml, deriv=False)["crit"]

    def derivs(self, s: np.ndarray) -> dict:
        """Criterion, gradient and Hessian at ``s`` (2,) in theta (``g``, ``H``: forward differences of the
        exact gradient, steps ``1e-5 (theta + scale)``, feasible at 0) and in s (``gs``, ``Hs``), and the
        GLS pieces (``ev``)."""
        th = s * s
        delta = 1e-5 * (th + self.scale)
        pts = np.stack([th, th + [delta[0], 0.0], th + [0.0, delta[1]]])
        ev = evaluate_nested(pts[:, 0], pts[:, 1], self.S, self.reml)
        g = ev["grad"][0]
        H = (ev["grad"][1:] - g) / delta[:, None]
        H = 0.5 * (H + H.T)
        gs = 2.0 * s * g
        Hs = 4.0 * np.outer(s, s) * H + 2.0 * np.diag(g)
        return {"crit": float(ev["crit"][0]), "g": g, "H": H, "gs": gs, "Hs": Hs, "ev": ev}


def _newton(P: _Problem, s0: np.ndarray, max_iter: int = 50) -> tuple[np.ndarray, int]:
    """Minimise over ``s`` in R^2 (the criterion is even in each ``s_k``, so the bound ``s >= 0`` is
    reflection, not a constraint) by Newton steps with the Hessian's eigenvalues made positive (``|lambda|``)
    and an Armijo backtracking line search. Once the Newton decrement is below the certificate's
    tolerance (the quadratic region) the full step is taken unless the criterion rises beyond rounding
    (1e-13 relative); stops when the decrement is below 1e-8 of the tolerance, or stops falling tenfold
    per step in the quadratic region (rounding). Returns ``|s|`` and the number of iterations."""
    s = np.asarray(s0, dtype=float).copy()
    D = P.derivs(s)
    it, last = 0, np.inf
    for it in range(1, max_iter + 1):
        if not (np.isfinite(D["crit"]) and np.isfinite(D["Hs"]).all()):
            break
        tol = float(opt.tolerance(D["crit"]))
        lam, V = np.linalg.eigh(D["Hs"])
        c = V.T @ D["gs"]
        dec = 0.5 * float(np.sum(c * c / lam)) if lam[0] > 0 else np.inf
        if dec <= 1e-8 * tol or (dec <= tol and dec > 0.1 * last):  # converged, or at rounding level
            break
        last = dec
        big = np.abs(lam).max()
        d = -V @ (c / np.maximum(np.abs(lam), 1e-10 * big + 1e-300))
        dmax = np.abs(d).max()
        if not np.isfinite(dmax) or dmax == 0:
            break
        if dec <= tol:
            trial = s + d
            if float(P.crit(trial[None])[0]) > D["crit"] + 1e-13 * max(1.0, abs(D["crit"])):
                break
        else:
            d *= min(1.0, 2.0 * (1.0 + np.abs(s).max()) / dmax)  # no jumps across orders of magnitude
            slope = float(D["gs"] @ d)
            alpha, accepted = 1.0, False
            while alpha * np.abs(d).max() > 1e-15 * (1.0 + np.abs(s).max()):
                trial = s + alpha * d
                if float(P.crit(trial[None])[0]) <= D["crit"] + 1e-4 * alpha * slope:
                    accepted = True
                    break
                alpha *= 0.5
            if not accepted:
                break
        s = trial
        D = P.derivs(s)
    return np.abs(s), it


def _polish(P: _Problem, s: np.ndarray, max_iter: int = 10) -> np.ndarray:
    """Projected Newton steps on theta = s^2 >= 0 from ``s`` (components at 0 with a negative one-sided
    derivative are freed), each kept only if the criterion does not rise beyond rounding (1e-13 relative);
    stops when the decrement in theta is below 1e-8 of the certificate's tolerance. Near a small interior
    variance the criterion is quartic in s but quadratic in theta: Newton steps on s crawl there (each
    removes a third of the distance to 0), in theta one or two steps finish."""
    th = s * s
    D = P.derivs(s)
    for _ in range(max_iter):
        free = (th > 0) | (D["g"] < 0)
        idx = np.flatnonzero(free)
        if idx.size == 0:
            break
        H = D["H"][np.ix_(idx, idx)]
        g = D["g"][idx]
        if not (np.isfinite(H).all() and np.isfinite(g).all()):
            break
        try:
            if np.linalg.eigvalsh(H).min() <= 0:
                break
            step = np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            break
        if 0.5 * float(g @ step) <= 1e-8 * float(opt.tolerance(D["crit"])):
            break
        new = th.copy()
        new[idx] = np.maximum(th[idx] - step, 0.0)
        snew = np.sqrt(new)
        f = float(P.crit(snew[None])[0])
        if f > D["crit"] + 1e-13 * max(1.0, abs(D["crit"])):
            break
        th, s = new, snew
        D = P.derivs(s)
    return s


def certify_nested(P: _Problem, s: np.ndarray, D: dict | None = None,
                   names: tuple[str, str] = ("rep", "centre")) -> tuple[bool, str, dict]:
    """First-order optimality of ``s`` (see :mod:`simstudy.estimators.optimality`): Newton decrement on the
    relative-SD scale over the components above 0, one-sided derivative in theta (with the curvature for
    the decrease it allows) for the components at 0.

    Parameters
    ----------
    P : _Problem
        The replicate's criterion (``_Problem(stats, reml)``).
    s : ndarray (2,)
        Relative SDs ``(s_rep, s_centre)``, >= 0.
    D : dict, optional
        ``P.derivs(s)`` when already computed.
    names : (str, str)
        Names of the inner and outer grouping columns, for the message.

    Returns
    -------
    ok : bool
    why : str
        "" when ok, else which check failed and by how much.
    derivs : dict
        ``P.derivs(s)`` (its ``ev`` holds the GLS pieces at ``s``).
    """
    D = P.derivs(s) if D is None else D
    tol = float(opt.tolerance(D["crit"]))
    if not np.isfinite(D["crit"]):
        return False, "criterion not finite at the optimum", D
    free = s > 0
    dec = float(opt.decrement(D["gs"][free], D["Hs"][np.ix_(free, free)]))
    if not dec <= tol:
        return False, opt.failure_message(
            "not stationary (d crit / d relative SD of " + ", ".join(
                f"var({names[k]}) {D['gs'][k]:.3g}" for k in np.flatnonzero(free)) + "): predicted decrease",
            dec, tol), D
    for k in np.flatnonzero(~free):
        gain = float(opt.entry_gain(D["g"][k], D["H"][k, k]))
        if not gain <= tol:
            return False, opt.failure_message(
                f"var({names[k]}) at 0 but d crit / d theta = {D['g'][k]:.3g} < 0 there: decrease available",
                gain, tol), D
    return True, "", D


def _best(P: _Problem, cands: list[np.ndarray]) -> np.ndarray:
    """The candidate with the lowest criterion; among those within rounding (1e-12 relative) of it, the
    one with the most components at 0 (a variance that beats 0 only by rounding noise is 0)."""
    T = np.abs(np.array(cands))
    f = P.crit(T)
    f = np.where(np.isfinite(f), f, np.inf)
    near = f <= f.min() + 1e-12 * max(1.0, abs(f.min()))
    zeros = (T == 0).sum(axis=1)
    k = max(np.flatnonzero(near), key=lambda i: (zeros[i], -f[i]))
    return T[k]


def _snaps(s: np.ndarray) -> list[np.ndarray]:
    """``s`` with each component below the singular tolerance (and both) set to exactly 0."""
    small = np.flatnonzero(s < SINGULAR_TOL)
    out = [np.where(np.arange(2) == k, 0.0, s) for k in small]
    if small.size == 2:
        out.append(np.zeros(2))
    return out


def _fit_one(S: NestedStats, reml: bool, t_rep: float, t_centre: float, names: tuple[str, str]) -> dict:
    P = _Problem(S, reml)
    faces = [np.zeros(2), np.array([np.sqrt(t_rep), 0.0]), np.array([0.0, np.sqrt(t_centre)])]
    s0 = np.maximum(np.sqrt([t_rep, t_centre]), 0.1)
    sn, iters = _newton(P, s0)
    sn = _polish(P, sn)
    s = _best(P, faces + [sn] + _snaps(sn))
    ok, why, D = certify_nested(P, s, names=names)
    if not ok:
        # restarts: lme4's start (1, 1), and the certified-failing point moved into the interior along
        # the components whose one-sided derivative is negative (Newton step in theta)
        pushed = s.copy()
        for k in range(2):
            if s[k] == 0 and D["g"][k] < 0:
                pushed[k] = np.sqrt(-D["g"][k] / D["H"][k, k]) if D["H"][k, k] > 0 else 1.0
        cands = [s]
        for start in (pushed, np.ones(2), 3.0 * s0):
            sr, k = _newton(P, np.maximum(start, 1e-3))
            sr = _polish(P, sr)
            iters += k
            cands += [sr] + _snaps(sr)
        s = _best(P, faces + cands)
        ok, why, D = certify_nested(P, s, names=names)
    ev = D["ev"]
    theta = s * s
    dof = S.nobs - S.p if reml else S.nobs
    sigma2 = float(ev["q"][0] / dof)
    return {
        "theta": theta, "sigma2": sigma2, "beta": ev["beta"][0], "cov": sigma2 * ev["Minv"][0],
        "crit": float(ev["crit"][0]), "converged": ok, "boundary": s < SINGULAR_TOL, "iterations": iters,
        "message": why,
    }
