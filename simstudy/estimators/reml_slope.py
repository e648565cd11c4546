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

and ``dcrit/dLambda = 2 (dcrit/dPsi) Lambda`` (numerics, stacked over replicates: :mod:`.slope_stats`). The
criterion is minimised over ``Lambda = (l11, l21, l22)`` by Newton steps (exact gradient, Hessian by forward
differences of it) *without* bounds -- every ``Lambda`` gives a valid ``Psi``; lme4's ``l11, l22 >= 0`` is
only its canonical form, restored at the end (:func:`chol_of`) -- from lme4's start ``(1, 0, 1)``, from up to
three local minima of a coarse grid and from ``(t0, 0, 0.3 sc)`` unless the first two runs agree;
candidates with small Cholesky diagonal elements set to 0 are compared too, and the best is polished on
scales where the criterion is quadratic near the optimum (the entries of ``Psi``; the rank-1 matrices
``v v'``). A fit is flagged ``boundary`` when a diagonal element of lme4's theta is below 1e-4 (lme4's
``isSingular`` rule): then ``Psi`` is singular (the slope and intercept perfectly correlated, or a variance
at 0).

Every optimum is certified over the covariance matrices, not over ``Lambda`` (:func:`certify_slope`): a
point can be a local minimum in lme4's bounded Cholesky coordinates and not over ``Psi``. At ``l11 = 0``
the sign of the intercept-slope covariance ``l11 l21`` is that of ``l21``, so when the criterion falls
with a covariance of the other sign, moving there means flipping ``l21``, which no local step in bounded
``Lambda`` does (lme4 stops there from its default start in ``rs_near_b``, tests/data/lme4; without the
bounds the fold is gone). The conditions are those of a minimum over the PSD cone: ``Gamma = dcrit/dPsi``
positive semi-definite on the null space of ``Psi`` and stationarity among the matrices of ``Psi``'s
rank. A failed certificate triggers more starts (among them the point moved downhill along the direction
the certificate found); a fit still failing is flagged not converged with a message. The certificate is
local: with very few observations per group (two in most groups) the criterion can have local minima far
apart, and the global one is not guaranteed (nor is it by lme4).

**Batching.** :func:`fit_slope_batch` fits replicates with the same number of groups and columns together:
every Newton run of every replicate (the problems) advances in lockstep
(:func:`simstudy.estimators.reml_batch.newton`), problems that converge leave the active set, and each
replicate's grid, candidates, polish and certificate are vectorised over the replicates. A problem's
numbers depend on its replicate only (:mod:`.slope_stats`), so a replicate's fit is bit-identical whatever
the batch.
"""

from __future__ import annotations

import numpy as np

from simstudy.estimators import optimality as opt
from simstudy.estimators.reml import SINGULAR_TOL
from simstudy.estimators.reml_batch import newton, pick_best, runs
from simstudy.estimators.slope_search import grid_starts
from simstudy.estimators.slope_stats import SlopeStats, batch_stats, chol_of, evaluate_points, psi_of, slope_stats

__all__ = ["SlopeStats", "batch_stats", "slope_stats", "psi_of", "chol_of", "evaluate_slope", "fit_slope",
           "fit_slope_batch", "certify_slope"]


def evaluate_slope(lam: np.ndarray, S: SlopeStats, reml: bool, deriv: bool = True, replicate: int = 0) -> dict:
    """Criterion (m,), gradient ``grad`` (m, 3) in ``(l11, l21, l22)``, ``gpsi`` (m, 2, 2) the symmetric
    ``Gamma = dcrit/dPsi`` (``dcrit = tr(Gamma dPsi)``) and the GLS pieces at ``m`` points of one replicate."""
    lam = np.atleast_2d(np.asarray(lam, dtype=float))
    with np.errstate(all="ignore"):
        ev = evaluate_points(S, lam[None], np.array([replicate]), reml, deriv, need_inv=True)
    out = {k: v[0] for k, v in ev.items()}
    out["psi"] = psi_of(lam)
    return out


class _Problem:
    """The criterion as a function of ``Lambda`` for problems (a replicate and a start) owned by replicates
    ``owner``.

    An evaluation lays the points out per replicate, ``(replicates, rows x points, 3)``: the rows of a
    replicate are its problems in that call, in problem order, and replicates with the same number of rows
    are evaluated together (:func:`~simstudy.estimators.slope_stats.evaluate_points`). A replicate's rows --
    which of its problems are still running -- depend on that replicate alone, so the shape of each product
    ``(rows x points, groups) @ (groups, features)`` does not depend on the batch."""

    def __init__(self, S: SlopeStats, reml: bool, owner: np.ndarray) -> None:
        self.S, self.reml, self.owner = S, reml, np.asarray(owner)
        self.csc = np.stack([S.sc[:, 0], S.sc[:, 1], S.sc[:, 1]], axis=1)

    def evaluate(self, idx: np.ndarray, pts: np.ndarray, deriv: bool) -> dict:
        """:func:`~simstudy.estimators.slope_stats.evaluate_points` at ``pts`` (k, m, 3) of problems ``idx``;
        arrays (k, m, ...)."""
        k, m = pts.shape[:2]
        own = self.owner[idx]
        order = np.argsort(own, kind="stable")
        so = own[order]
        starts, counts = runs(so)
        reps = so[starts]
        out: dict = {}
        for n in np.unique(counts):
            sel = np.flatnonzero(counts == n)
            rows = order[(starts[sel][:, None] + np.arange(n)).ravel()]
            ridx = None if sel.size == self.S.R else reps[sel]
            ev = evaluate_points(self.S, pts[rows].reshape(sel.size, n * m, 3), ridx, self.reml, deriv)
            for key, v in ev.items():
                if v is None:
                    continue
                if key not in out:
                    out[key] = np.empty((k, m) + v.shape[2:])
                out[key][rows] = v.reshape((sel.size * n, m) + v.shape[2:])
        return out

    def crit(self, idx: np.ndarray, lam: np.ndarray) -> np.ndarray:
        """Criterion at ``lam`` (k, 3) of problems ``idx`` (``inf`` where not finite)."""
        f = self.evaluate(idx, lam[:, None, :], deriv=False)["crit"][:, 0]
        return np.where(np.isfinite(f), f, np.inf)

    def derivs(self, free: np.ndarray):
        """``derivs(idx, lam)``: criterion, gradient and Hessian (forward differences of the exact gradient,
        steps ``1e-6 (|lambda_k| + natural scale)``) in the coordinates ``free``."""

        def fn(idx: np.ndarray, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            h = 1e-6 * (np.abs(lam) + self.csc[self.owner[idx]])
            pts = np.repeat(lam[:, None, :], 1 + free.size, axis=1)
            for j, k in enumerate(free):
                pts[:, 1 + j, k] = lam[:, k] + h[:, k]
            ev = self.evaluate(idx, pts, deriv=True)
            grad = ev["grad"][:, :, free]
            g = grad[:, 0]
            H = (grad[:, 1:] - g[:, None, :]) / h[:, free][:, :, None]  # row j: along coordinate free[j]
            return ev["crit"][:, 0], g, 0.5 * (H + np.swapaxes(H, 1, 2))

        return fn

    def newton(self, x0: np.ndarray, free: np.ndarray = np.arange(3), max_iter: int = 60) -> np.ndarray:
        """Newton runs from ``x0`` (k, 3), problem ``i`` at row ``i`` (:func:`~.reml_batch.newton`: no bounds,
        any ``Lambda`` is a valid factor)."""
        return newton(self.derivs(free), self.crit, x0, free, max_iter)[0]


def _canonical(lam: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """lme4's form of ``Lambda`` (k, 3) (diagonal >= 0) and its singular neighbours, as (points, present)
    pairs in order: the rank-1 matrix with the same first column when the Cholesky diagonal is below the
    singular tolerance, the intercept variance set to 0 when that is, and ``Psi = 0``."""
    c = chol_of(psi_of(lam))
    k = c.shape[0]
    return [(c, np.ones(k, dtype=bool)),
            (c * [1.0, 1.0, 0.0], c[:, 2] < SINGULAR_TOL),
            (np.stack([np.zeros(k), np.zeros(k), np.hypot(c[:, 1], c[:, 2])], axis=1), c[:, 0] < SINGULAR_TOL),
            (np.zeros_like(c), np.minimum(c[:, 0], c[:, 2]) < SINGULAR_TOL)]


class _Cands:
    """Candidate optima of several replicates, kept with their order (replicate, phase, run, index)."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(self, owner: np.ndarray, run: np.ndarray, phase: int, slots: list[tuple[np.ndarray, np.ndarray]]) -> None:
        for j, (pts, present) in enumerate(slots):
            i = np.flatnonzero(present)
            self.parts.append((owner[i], np.full(i.size, phase), run[i], np.full(i.size, j), pts[i]))

    def best(self, S: SlopeStats, reml: bool, rep_of: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per owner (in increasing order), the candidate with the lowest criterion; within rounding (1e-12
        relative) of it, the one with the most zeros on the Cholesky diagonal (a variance that beats a
        singular matrix only by noise is 0). Owners are replicates, or rows whose replicates are ``rep_of``
        (distinct). Returns the owners and their choices."""
        owner, phase, run, idx, pts = (np.concatenate(a) for a in zip(*self.parts))
        order = np.lexsort((idx, run, phase, owner))
        owner, pts = owner[order], pts[order]
        f = _Problem(S, reml, owner if rep_of is None else rep_of[owner]).crit(np.arange(owner.size), pts)
        pick = pick_best(owner, f, (pts[:, [0, 2]] == 0).sum(axis=1))
        return owner[pick], pts[pick]


def _search(S: SlopeStats, reml: bool, reps: np.ndarray, starts: tuple[np.ndarray, np.ndarray],
            also: tuple[np.ndarray, np.ndarray] | None = None, optional: np.ndarray | None = None,
            face: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """For every replicate of ``reps`` (increasing): Newton from its ``starts`` (owners, points; in order per
    replicate), and from ``optional`` (one per replicate) unless its first two runs agree (criterion within
    1e-10 relative); Newton among the rank-1 matrices (``l22 = 0``) from its ``face`` starts; the best
    candidate (with ``also``) polished, in lme4's form. Returns (len(reps), 3)."""
    cands = _Cands()
    if also is not None:
        cands.add(also[0], np.arange(also[0].size), 0, [(also[1], np.ones(also[0].size, dtype=bool))])
    if face is not None and face[0].size:
        P = _Problem(S, reml, face[0])
        ends = P.newton(face[1], np.array([0, 1]), 30)
        cands.add(face[0], np.arange(face[0].size), 1, _canonical(ends))
    own, x0 = starts
    P = _Problem(S, reml, own)
    ends = P.newton(x0)
    slots = _canonical(ends)
    cands.add(own, np.arange(own.size), 2, slots)
    if optional is not None:
        # the first two runs of each replicate: do they agree?
        first = runs(own)[0]
        f = P.crit(np.arange(own.size), slots[0][0])
        f0, f1 = f[first], f[first + 1]
        with np.errstate(invalid="ignore"):
            agree = np.abs(f0 - f1) <= 1e-10 * np.maximum(1.0, np.abs(f0))
        todo = np.flatnonzero(~agree)
        if todo.size:
            Po = _Problem(S, reml, reps[todo])
            cands.add(reps[todo], np.arange(todo.size), 3, _canonical(Po.newton(optional[todo])))
    owners, best = cands.best(S, reml)
    return _polish(S, reml, owners, best)


def _polish(S: SlopeStats, reml: bool, owner: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Newton polish of canonical ``Lambda`` (k, 3) of replicates ``owner`` on scales where the criterion is
    quadratic near the optimum (near a small ``l22`` it is quartic in ``l22``, where Newton steps on ``Lambda``
    crawl): on the entries of ``Psi`` when it is full rank (:func:`_polish_psi`), and among the rank-1
    matrices ``v v'`` with ``v`` its first column (``v = (l11, l21)``, or ``(0, sqrt(Psi_11))`` when ``l11 =
    0``; both signs of ``v_0``); the best of the point and the polished ones (a rank-1 matrix within rounding
    of the best wins). ``Psi = 0`` is returned as is."""
    out = lam.copy()
    j = np.flatnonzero(lam.any(axis=1))
    if j.size == 0:
        return out
    L, own = lam[j], owner[j]
    k = j.size
    run = np.arange(k)
    cands = _Cands()
    cands.add(run, run, 0, [(L, np.ones(k, dtype=bool))])
    full = (L[:, 0] > 0) & (L[:, 2] > 0)
    if full.any():
        pp = np.zeros_like(L)
        pp[full] = _polish_psi(S, reml, own[full], L[full])
        cands.add(run, run, 1, [(pp, full)])
    v0 = np.where(L[:, 0] > 0, L[:, 0], 0.0)
    v1 = np.where(L[:, 0] > 0, L[:, 1], np.hypot(L[:, 1], L[:, 2]))
    chart = _Problem(S, reml, own).newton(np.stack([v0, v1, np.zeros(k)], axis=1), np.array([0, 1]), 30)
    cands.add(run, run, 2, [(chol_of(psi_of(chart)) * [1.0, 1.0, 0.0], np.ones(k, dtype=bool))])
    rows, best = cands.best(S, reml, own)
    out[j[rows]] = best
    return out


def _lam_of(x: np.ndarray) -> np.ndarray:
    """lme4's theta of ``Psi`` given by its entries ``x = (Psi_00, Psi_01, Psi_11)`` (..., 3)."""
    psi = np.stack([np.stack([x[..., 0], x[..., 1]], -1), np.stack([x[..., 1], x[..., 2]], -1)], -2)
    return chol_of(psi)


def _polish_psi(S: SlopeStats, reml: bool, owner: np.ndarray, lam: np.ndarray, max_iter: int = 10) -> np.ndarray:
    """Newton steps on ``x = (Psi_00, Psi_01, Psi_11)`` (gradient ``(G_00, 2 G_01, G_11)`` with
    ``G = dcrit/dPsi``, Hessian by forward differences), halved until ``Psi`` stays positive definite and
    the criterion does not rise beyond rounding (1e-13 relative); all rows in lockstep."""
    psi = psi_of(lam)
    x = np.stack([psi[:, 0, 0], psi[:, 0, 1], psi[:, 1, 1]], axis=1)
    k = x.shape[0]
    P = _Problem(S, reml, owner)
    active = np.ones(k, dtype=bool)
    eye = np.eye(3)
    for _ in range(max_iter):
        A = np.flatnonzero(active)
        if A.size == 0:
            break
        xa = x[A]
        det = xa[:, 0] * xa[:, 2] - xa[:, 1] ** 2
        h = 1e-6 * np.stack([xa[:, 0], np.sqrt(np.maximum(det, 0.0)), xa[:, 2]], axis=1)
        go = (det > 0) & (h > 0).all(axis=1)
        active[A[~go]] = False
        A, xa, h = A[go], xa[go], h[go]
        if A.size == 0:
            break
        pts = xa[:, None, :] + h[:, :, None] * eye  # (k, 3, 3): x + h_k e_k
        pts = np.concatenate([xa[:, None, :], pts], axis=1)
        ev = evaluate_points(S, _lam_of(pts), owner[A], reml)
        G = ev["gpsi"]
        g = np.stack([G[..., 0, 0], 2.0 * G[..., 0, 1], G[..., 1, 1]], axis=-1)  # (k, 4, 3)
        f = ev["crit"][:, 0]
        H = (g[:, 1:] - g[:, :1]) / h[:, :, None]
        H = 0.5 * (H + np.swapaxes(H, 1, 2))
        fin = np.isfinite(H).all(axis=(1, 2))
        pd = np.zeros(A.size, dtype=bool)
        if fin.any():
            pd[fin] = np.linalg.eigvalsh(H[fin]).min(axis=1) > 0
        step = np.zeros_like(xa)
        if pd.any():
            step[pd] = np.linalg.solve(H[pd], g[pd, 0][:, :, None])[:, :, 0]
        small = 0.5 * (g[:, 0] * step).sum(-1) <= 1e-8 * opt.tolerance(f)
        go = pd & ~small
        active[A[~go]] = False
        A, xa, step, f = A[go], xa[go], step[go], f[go]
        accepted = np.zeros(A.size, dtype=bool)
        pending = np.ones(A.size, dtype=bool)
        new = xa.copy()
        for _ in range(30):
            j = np.flatnonzero(pending)
            if j.size == 0:
                break
            cand = xa[j] - step[j]
            pdn = (cand[:, 0] > 0) & (cand[:, 2] > 0) & (cand[:, 0] * cand[:, 2] > cand[:, 1] ** 2)
            good = np.zeros(j.size, dtype=bool)
            if pdn.any():
                jj = j[pdn]
                fc = P.crit(A[jj], _lam_of(cand[pdn]))
                good[pdn] = fc <= f[jj] + 1e-13 * np.maximum(1.0, np.abs(f[jj]))
            accepted[j[good]] = True
            new[j[good]] = cand[good]
            pending[j[good]] = False
            step[j[~good]] *= 0.5
        active[A[~accepted]] = False
        x[A[accepted]] = new[accepted]
    return _lam_of(x)


def certify_slope(S: SlopeStats, reml: bool, lam: np.ndarray, owner: np.ndarray | None = None
                  ) -> tuple[np.ndarray, list[str], list[list[np.ndarray]]]:
    """First-order optimality of ``Psi = Lambda Lambda'`` over the cone of PSD matrices (see
    :mod:`simstudy.estimators.optimality`), with ``Gamma = dcrit/dPsi``:

    - rank 2 (``l11, l22 > 0``): Newton decrement in the three Cholesky coordinates;
    - rank 1, ``Psi = v v'`` (``v = (l11, l21)``, or ``(0, sqrt(l21^2 + l22^2))`` when ``l11 = 0``):
      Newton decrement in ``v`` (the rank-1 matrices near ``Psi``, both signs of ``v_0``), and the
      one-sided derivative ``w' Gamma w`` along the null direction ``w`` (unit, ``w' v = 0``), with the
      decrease it allows (curvature from a forward difference along ``Psi + t w w'``);
    - ``Psi = 0``: ``Gamma`` positive semi-definite: the same one-sided test along its eigenvector of
      smallest eigenvalue.

    Finite differences: steps ``1e-6 (|coordinate| + natural scale)`` for the Hessians and ``1e-5`` of
    the natural scale for the curvature along ``w``; natural scales ``1 / sqrt(mean_j Q_j)``.

    Parameters
    ----------
    S : SlopeStats
    reml : bool
    lam : ndarray (3,) or (k, 3)
        lme4's theta ``(l11, l21, l22)`` in canonical form (``l11, l22 >= 0``).
    owner : ndarray of int (k,), optional
        The replicate of each row of ``lam`` (default ``0..k-1``).

    Returns
    -------
    ok : bool, or ndarray of bool (k,)
    why : str, or list of str
        "" when ok, else which check failed and by how much.
    restarts : list of ndarray, or a list of them per row
        Points (lme4's theta) to restart from when not ok: the point moved along the descent direction.
    """
    single = np.ndim(lam) == 1
    L = np.atleast_2d(np.asarray(lam, dtype=float))
    own = np.arange(L.shape[0]) if owner is None else np.asarray(owner)
    with np.errstate(all="ignore"):
        ok, why, restarts = _certify(S, reml, L, own)
    return (bool(ok[0]), why[0], restarts[0]) if single else (ok, why, restarts)


def _certify(S: SlopeStats, reml: bool, lam: np.ndarray, owner: np.ndarray):
    k = lam.shape[0]
    sc = S.sc[owner]
    l11, l21, l22 = lam[:, 0], lam[:, 1], lam[:, 2]
    rank = np.where((l11 > 0) & (l22 > 0), 2, np.where((l11 == 0) & (l21 == 0) & (l22 == 0), 0, 1))
    base = np.where((rank == 2)[:, None], lam, 0.0)
    r1 = rank == 1
    base[r1, 0] = np.where(l11[r1] > 0, l11[r1], 0.0)
    base[r1, 1] = np.where(l11[r1] > 0, l21[r1], np.hypot(l21[r1], l22[r1]))
    csc = np.stack([sc[:, 0], sc[:, 1], sc[:, 1]], axis=1)
    h = 1e-6 * (np.abs(base) + csc)
    ok = np.zeros(k, dtype=bool)
    why = [""] * k
    restarts: list[list[np.ndarray]] = [[] for _ in range(k)]
    crit, gam = np.full(k, np.nan), np.full((k, 2, 2), np.nan)
    dec, tol = np.zeros(k), np.zeros(k)
    gs: list = [None] * k
    Hs: list = [None] * k
    for rk, coords in ((2, [0, 1, 2]), (1, [0, 1]), (0, [])):
        j = np.flatnonzero(rank == rk)
        if j.size == 0:
            continue
        pts = np.repeat(base[j][:, None, :], 1 + len(coords), axis=1)
        for i, c in enumerate(coords):
            pts[:, 1 + i, c] = base[j, c] + h[j, c]
        ev = evaluate_points(S, pts, owner[j], reml)
        crit[j], gam[j] = ev["crit"][:, 0], ev["gpsi"][:, 0]
        tol[j] = opt.tolerance(crit[j])
        grad = ev["grad"][:, :, coords]
        g = grad[:, 0]
        H = (grad[:, 1:] - g[:, None, :]) / h[j][:, coords][:, :, None]  # row i: along coords[i]
        H = np.swapaxes(H, 1, 2)  # column i: along coords[i]
        if coords:
            dec[j] = opt.decrement(g, H)
        for n, r in enumerate(j):
            gs[r], Hs[r] = g[n], H[n]
    finite = np.isfinite(crit)
    for r in np.flatnonzero(~finite):
        why[r] = "criterion not finite at the optimum"
    fail_dec = finite & ~(dec <= tol)
    for r in np.flatnonzero(fail_dec):
        g, H = gs[r], Hs[r]
        what = ("not stationary (gradient in lme4's theta " if rank[r] == 2 else
                "not stationary among the rank-1 covariance matrices (gradient ")
        if rank[r] == 1:  # v moved downhill (a Newton step with |eigenvalues|, a short gradient step)
            lam_h, V = np.linalg.eigh(0.5 * (H + H.T))
            step_n = -V @ ((V.T @ g) / np.maximum(np.abs(lam_h), 1e-12 * np.abs(lam_h).max() + 1e-300))
            step_s = -0.1 * (np.hypot(base[r, 0], base[r, 1]) + sc[r].min()) * g / max(np.hypot(g[0], g[1]), 1e-300)
            for step in (step_n, step_s):
                v = base[r, :2] + step
                restarts[r].append(np.array([abs(v[0]), np.copysign(1.0, v[0]) * v[1], 0.0]))
        why[r] = opt.failure_message(what + np.array2string(g, precision=3) + "): predicted decrease", dec[r], tol[r])
    ok[finite & ~fail_dec & (rank == 2)] = True
    j = np.flatnonzero(finite & ~fail_dec & (rank < 2))
    if j.size == 0:
        return ok, why, restarts
    w = np.empty((j.size, 2))
    one = rank[j] == 1
    w[one] = np.stack([-base[j[one], 1], base[j[one], 0]], axis=1) / np.hypot(base[j[one], 0], base[j[one], 1])[:, None]
    if (~one).any():
        w[~one] = np.linalg.eigh(gam[j[~one]])[1][:, :, 0]
    d = _quad(w, gam[j])
    ok[j[d >= 0]] = True
    j, w, d = j[d < 0], w[d < 0], d[d < 0]
    if j.size == 0:
        return ok, why, restarts
    psi = psi_of(base[j])
    qb = S.qbar[owner[j]]
    t = 1e-5 / (w[:, 0] * w[:, 0] * qb[:, 0] + 2.0 * w[:, 0] * w[:, 1] * qb[:, 1] + w[:, 1] * w[:, 1] * qb[:, 2])
    ww = w[:, :, None] * w[:, None, :]
    Gt = evaluate_points(S, chol_of(psi + t[:, None, None] * ww)[:, None, :], owner[j], reml)["gpsi"][:, 0]
    curv = (_quad(w, Gt) - d) / t
    gain = opt.entry_gain(d, curv)
    ok[j[gain <= tol[j]]] = True
    for n in np.flatnonzero(~(gain <= tol[j])):
        r = j[n]
        step = -d[n] / curv[n] if curv[n] > 0 else 100 * t[n]
        what = ("covariance matrix singular (rank 1)" if rank[r] == 1 else "covariance matrix 0") + \
            f" but d crit / d t = {d[n]:.3g} < 0 along Psi + t w w' (w = {np.array2string(w[n], precision=3)}): " \
            "decrease available"
        why[r] = opt.failure_message(what, gain[n], tol[r])
        restarts[r] = [chol_of(psi[n] + step * ww[n])]
    return ok, why, restarts


def _quad(w: np.ndarray, M: np.ndarray) -> np.ndarray:
    """``w' M w`` for rows of ``w`` (k, 2) and ``M`` (k, 2, 2), elementwise."""
    w0, w1 = w[:, 0], w[:, 1]
    return w0 * (w0 * M[:, 0, 0] + w1 * M[:, 1, 0]) + w1 * (w0 * M[:, 0, 1] + w1 * M[:, 1, 1])


def fit_slope(S: SlopeStats, reml: bool = True, ri_theta: float | None = None) -> dict:
    """Fit the first replicate of ``S`` alone (see :func:`fit_slope_batch`); values for that replicate."""
    res = fit_slope_batch(S.take(np.array([0])), reml, None if ri_theta is None else np.array([ri_theta]))
    return {k: v[0] for k, v in res.items()}


def fit_slope_batch(S: SlopeStats, reml: bool = True, ri_theta: np.ndarray | None = None) -> dict:
    """Fit every replicate of ``S`` (module docstring), in lockstep: Newton runs over ``Lambda``
    unconstrained from lme4's start, from up to three local minima of a coarse grid
    (:func:`simstudy.estimators.slope_search.grid_starts`) and from ``(t0, 0, 0.3 sc)`` (``t0`` from
    ``ri_theta``, else 0.5) unless the first two runs agree, and among the rank-1 matrices from up to two
    local minima of a polar grid; the best candidate (also with its small Cholesky diagonal elements set to
    0) polished (on ``Psi`` when it is full rank, among the rank-1 matrices when singular) and certified
    (:func:`certify_slope`). Replicates whose certificate fails get more starts (among them the point moved
    downhill along the direction the certificate found) and a second certificate; a fit still failing is
    flagged not converged, with a message saying which check failed and by how much. A replicate's results
    do not depend on the other replicates of the batch.

    Parameters
    ----------
    S : SlopeStats
    reml : bool
    ri_theta : ndarray (R,), optional
        Variance ratios of random-intercept fits of the same data (starts ``(sqrt(ri_theta), 0, .)``).

    Returns
    -------
    dict
        Arrays over replicates: ``psi`` (R, 2, 2) relative covariance, ``lam`` (R, 3) lme4's theta
        (canonical: diagonal >= 0), ``sigma2``, ``beta`` (R, p), ``cov`` (R, p, p), ``crit``, ``converged``
        (certified optimum), ``boundary`` (a diagonal element of lme4's theta below 1e-4) and ``message``
        (list of str).
    """
    with np.errstate(all="ignore"):
        return _fit_batch(S, reml, ri_theta)


def _fit_batch(S: SlopeStats, reml: bool, ri_theta: np.ndarray | None) -> dict:
    R = S.R
    reps = np.arange(R)
    sc = S.sc
    t0 = np.full(R, 0.5) if ri_theta is None else np.where(ri_theta > 0, np.sqrt(np.maximum(ri_theta, 0.0)), 0.5)
    (g_own, g_pts), face = grid_starts(S, reml)
    # starts per replicate: the best grid point, lme4's (1, 0, 1), the other grid points
    first, n_g = runs(g_own)
    rank_in = np.arange(g_own.size) - np.repeat(first, n_g)
    own = np.concatenate([g_own, reps])
    key = np.concatenate([np.where(rank_in == 0, 0, rank_in + 1), np.ones(R, dtype=int)])
    pts = np.concatenate([g_pts, np.tile([1.0, 0.0, 1.0], (R, 1))])
    order = np.lexsort((key, own))
    optional = np.stack([t0, np.zeros(R), 0.3 * sc[:, 1]], axis=1)
    lam = _search(S, reml, reps, (own[order], pts[order]), optional=optional, face=face)
    ok, why, extra = _certify(S, reml, lam, reps)
    bad = np.flatnonzero(~ok)
    if bad.size:
        own_r, pts_r = [], []
        for r in bad:
            more = extra[r] + [lam[r] + 0.05 * np.array([sc[r, 0], 0.0, sc[r, 1]]), np.array([1.0, 0.5, 1.0]),
                               np.array([1.0, -0.5, 1.0]), np.array([0.1, 0.0, 0.1])]
            own_r += [r] * len(more)
            pts_r += more
        lam2 = _search(S, reml, bad, (np.array(own_r), np.array(pts_r)), also=(bad, lam[bad]))
        ok2, why2, _ = _certify(S, reml, lam2, bad)
        both = np.stack([lam[bad], lam2], axis=1).reshape(-1, 3)
        f = _Problem(S, reml, np.repeat(bad, 2)).crit(np.arange(2 * bad.size), both).reshape(-1, 2)
        take = ok2 | (f[:, 1] < f[:, 0])
        for n, r in enumerate(bad):
            if take[n]:
                lam[r], ok[r], why[r] = lam2[n], ok2[n], why2[n]
    ev = evaluate_points(S, lam[:, None, :], None, reml, deriv=False, need_inv=True)
    dof = S.nobs - S.p if reml else S.nobs
    sigma2 = ev["q"][:, 0] / dof
    return {"psi": psi_of(lam), "lam": lam, "sigma2": sigma2, "beta": ev["beta"][:, 0],
            "cov": sigma2[:, None, None] * ev["Minv"][:, 0], "crit": ev["crit"][:, 0], "converged": ok,
            "boundary": np.minimum(lam[:, 0], lam[:, 2]) < SINGULAR_TOL, "message": why}
