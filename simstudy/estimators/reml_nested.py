"""Exact REML/ML for nested random intercepts at two levels (reps within centres), batched over replicates.

Model: ``V = s2 (I + theta_r Z_r Z_r' + theta_c Z_c Z_c')`` with reps nested in centres. Per centre,
``H_c = D_c + theta_c 1 1'`` with ``D_c = I + theta_r blockdiag(1 1')``; Sherman-Morrison applied per rep
and then per centre gives, with rep sizes ``n_r``, rep means ``zbar_r`` of ``z = [x, y]``,
``w_r = n_r / (1 + n_r theta_r)``, ``m_c = sum_{r in c} w_r`` and the ``w``-weighted centre means
``ztilde_c``::

    [X y]' H^-1 [X y] = W + sum_r w_r (zbar_r - ztilde_c)(zbar_r - ztilde_c)'
                          + sum_c m_c / (1 + theta_c m_c) ztilde_c ztilde_c'
    log det H = sum_r log(1 + n_r theta_r) + sum_c log(1 + theta_c m_c)

(``W`` the pooled within-rep cross products), a sum of positive semi-definite terms, so no cancellation.
The gradient is exact: ``dA/dtheta_r = -sum_r w_r^2 (zbar_r - v_c)(zbar_r - v_c)'`` with
``v_c = gamma_c m_c ztilde_c``, ``gamma_c = theta_c / (1 + theta_c m_c)``, and ``dA/dtheta_c = -sum_c
e_c^2 ztilde_c ztilde_c'`` with ``e_c = m_c / (1 + theta_c m_c)``.

**Compressed statistics** (:class:`NestedStats`). Reps of equal size share ``w``; a *unit* is the reps of one
size in one centre (``N_u`` reps, mean of their means ``zbar_u``). Splitting each rep's deviation into its
deviation from the unit mean and the unit's deviation from ``ztilde_c``, the rep sums become per-class
matrices ``Bw_k = sum (zbar_r - zbar_u)(zbar_r - zbar_u)'`` (weights ``w_k``, ``w_k^2``) plus unit terms. A
centre whose reps all have one size (*simple*; every centre of a balanced design) has ``ztilde_c = zbar_u``
independent of theta, so its terms collapse into ``Bc_t = sum zbar_c zbar_c'`` per *type* (rep size, number
of reps); only *mixed* centres (reps of several sizes) keep per-unit means. A balanced design costs three
``q x q`` matrices per evaluation whatever its size. All sums over classes, types, mixed centres and units
run left to right (:func:`~simstudy.estimators.reml_batch.seqsum`, explicit loops), so replicates with
different layouts are stacked by padding with empty entries, and a replicate's numbers do not depend on the
batch.

Optimisation, on lme4's scale -- the relative SDs ``s = (s_r, s_c)``, ``theta = s^2``, bound ``s >= 0`` --
run for all replicates in lockstep (:mod:`simstudy.estimators.reml_batch`):

1. the two boundary faces are random-intercept models (reps only, centres only), fitted exactly and
   together for a batch by :func:`simstudy.estimators.reml.fit_ri`;
2. Newton steps on ``s`` (exact gradient, Hessian by forward differences of it, eigenvalues made positive,
   Armijo backtracking) from the faces' SDs (at least 0.1 each). The criterion is even in each ``s_k``, so
   the bound is a reflection, not a constraint: a component can reach 0, and leave it, freely;
3. projected Newton steps on ``theta >= 0`` polish the result (near a small variance the criterion is
   quartic in ``s`` but quadratic in ``theta``);
4. the candidates -- this point, it with its components below 1e-4 set to 0, the faces and ``(0, 0)`` --
   are compared; within 1e-12 (relative) of the lowest criterion the one with the most zeros wins;
5. the winner is certified (:func:`certify_nested`, :mod:`simstudy.estimators.optimality`): Newton
   decrement on ``s`` for the components above 0, the one-sided derivative in ``theta`` for those at 0.
   The replicates that fail get Newton runs from lme4's start ``(1, 1)``, from the failing point moved into
   the interior and from three times the first start, the best candidate certified again; still failing:
   not converged, with a message saying which check failed and by how much.

A component is flagged boundary when its relative SD is below 1e-4 (lme4's ``isSingular`` rule).
Statistics of stacked replicates sharing a grouping (:class:`NestedLayout`, :func:`batch_stats`) are in
:mod:`simstudy.estimators.nested_stats`.
"""

from __future__ import annotations

import numpy as np

from simstudy.estimators import optimality as opt
from simstudy.estimators.nested_stats import NestedLayout, NestedStats, batch_stats, rep_level_stats
from simstudy.estimators.reml import LOG2PI, SINGULAR_TOL, fit_ri, logdet_inv
from simstudy.estimators.reml_batch import newton, pick_best, seqsum

__all__ = ["NestedLayout", "NestedStats", "batch_stats", "rep_level_stats", "nested_stats", "evaluate_nested",
           "fit_nested", "fit_nested_batch", "certify_nested"]


def nested_stats(y: np.ndarray, X: np.ndarray, centre: np.ndarray, rep: np.ndarray, C: int, Rn: int) -> NestedStats:
    """Statistics of one replicate (R = 1) from rows: ``centre`` codes 0..C-1 and rep codes 0..Rn-1 (unique
    overall; reps without rows and centres without reps are dropped)."""
    rep = np.asarray(rep, dtype=np.intp)
    rep_centre = np.zeros(Rn, dtype=np.intp)
    rep_centre[rep] = centre
    present = np.bincount(rep, minlength=Rn) > 0
    reps = np.flatnonzero(present)
    order = reps[np.lexsort((reps, rep_centre[reps]))]  # reps in centre order
    new = np.empty(Rn, dtype=np.intp)
    new[order] = np.arange(order.size)
    used = np.unique(rep_centre[order])
    cmap = np.empty(C, dtype=np.intp)
    cmap[used] = np.arange(used.size)
    layout = NestedLayout.build(new[rep], cmap[rep_centre[order]], used.size)
    Z = np.empty((1, X.shape[1] + 1, y.shape[0]))
    Z[0, :-1] = X.T
    Z[0, -1] = y
    return batch_stats(Z, layout, X.shape[1])[0]


def _evaluate(S: NestedStats, ridx: np.ndarray, tr: np.ndarray, tc: np.ndarray, reml: bool,
              deriv: bool = True) -> dict:
    """Criterion (k,), gradient ``grad`` (k, 2) in ``(theta_r, theta_c)`` and the GLS pieces (``beta``,
    ``q``, ``Minv``) at points ``(tr, tc)`` (k,) of replicates ``ridx`` (k,). Row by row: a row's numbers
    depend on its point and its replicate's statistics only. Floating-point warnings are the caller's to
    silence (``np.errstate``)."""
    p = S.p
    k = ridx.shape[0]
    tr_, tc_ = tr[:, None], tc[:, None]
    n_k, cnt_k, Bw = S.cls_n[ridx], S.cls_cnt[ridx], S.Bw[ridx]
    w = n_k / (1.0 + n_k * tr_)  # (k, K)
    A = S.W[ridx].copy()
    for j in range(w.shape[1]):
        A += w[:, j, None, None] * Bw[:, j]
    ldH = seqsum(cnt_k * np.log1p(n_k * tr_))
    tn, tN, tcnt, Bc = S.typ_n[ridx], S.typ_N[ridx], S.typ_cnt[ridx], S.Bc[ridx]
    wt = tn / (1.0 + tn * tr_)
    mt = tN * wt
    den = 1.0 + tc_ * mt
    et = mt / den
    for j in range(et.shape[1]):
        A += et[:, j, None, None] * Bc[:, j]
    ldH = ldH + seqsum(tcnt * np.log1p(tc_ * mt))
    Cm = S.mix_n.shape[1]
    if Cm:
        un, uN, uz = S.mix_n[ridx], S.mix_N[ridx], S.mix_z[ridx]  # (k, Cm, U), (k, Cm, U, q)
        wu = un / (1.0 + un * tr_[:, :, None])
        a = uN * wu
        mc = seqsum(a)  # (k, Cm)
        zt = np.zeros(uz.shape[:2] + uz.shape[3:])
        for u in range(a.shape[2]):
            zt += a[:, :, u, None] * uz[:, :, u]
        zt /= np.where(mc > 0, mc, 1.0)[..., None]
        dev = uz - zt[:, :, None, :]
        ec = mc / (1.0 + tc_ * mc)
        T1 = ec[..., None, None] * (zt[..., :, None] * zt[..., None, :])
        for u in range(a.shape[2]):
            T1 += a[:, :, u, None, None] * (dev[:, :, u, :, None] * dev[:, :, u, None, :])
        A += np.add.accumulate(T1, axis=1)[:, -1]
        ldH = ldH + seqsum(np.log1p(tc_ * mc))
    logdetM, Minv = logdet_inv(A[:, :p, :p])
    b = A[:, :p, p]
    beta = np.matmul(Minv, b[:, :, None])[:, :, 0]
    q = A[:, p, p] - (b * beta).sum(-1)
    dof = (S.nobs[ridx] - p) if reml else S.nobs[ridx]
    crit = dof * (1.0 + LOG2PI + np.log(q / dof)) + ldH + (logdetM if reml else 0.0)
    out = {"crit": crit, "beta": beta, "q": q, "ldH": ldH, "logdetM": logdetM, "Minv": Minv}
    if not deriv:
        return out
    gt = tc_ / den  # gamma of the simple types
    Dr = np.zeros_like(A)
    for j in range(w.shape[1]):
        Dr -= (w[:, j] * w[:, j])[:, None, None] * Bw[:, j]
    fr = tN * (wt / den) ** 2
    Dc = np.zeros_like(A)
    for j in range(et.shape[1]):
        Dr -= fr[:, j, None, None] * Bc[:, j]
        Dc -= (et[:, j] * et[:, j])[:, None, None] * Bc[:, j]
    dld_r = seqsum(cnt_k * w) - seqsum(tcnt * gt * tN * wt * wt)
    dld_c = seqsum(tcnt * et)
    if Cm:
        gam = tc_ / (1.0 + tc_ * mc)
        dv = uz - (gam * mc)[..., None, None] * zt[:, :, None, :]
        Tr = np.zeros(T1.shape)
        for u in range(a.shape[2]):
            Tr += (a[:, :, u] * wu[:, :, u])[..., None, None] * (dv[:, :, u, :, None] * dv[:, :, u, None, :])
        Dr -= np.add.accumulate(Tr, axis=1)[:, -1]
        Dc -= np.add.accumulate((ec * ec)[..., None, None] * (zt[..., :, None] * zt[..., None, :]), axis=1)[:, -1]
        dld_r = dld_r - seqsum(gam * seqsum(a * wu))
        dld_c = dld_c + seqsum(ec)
    u = np.concatenate([-beta, np.ones((k, 1))], axis=1)
    grads = []
    for D, dld in ((Dr, dld_r), (Dc, dld_c)):
        dq = (u * np.matmul(D, u[:, :, None])[:, :, 0]).sum(-1)
        gk = dof * dq / q + dld
        if reml:
            gk = gk + (Minv * D[:, :p, :p]).sum(axis=(1, 2))
        grads.append(gk)
    out["grad"] = np.stack(grads, axis=-1)
    return out


def evaluate_nested(tr: np.ndarray, tc: np.ndarray, S: NestedStats, reml: bool, deriv: bool = True,
                    replicate: int = 0) -> dict:
    """Criterion (m,), gradient ``grad`` (m, 2) in (theta_r, theta_c) and GLS pieces at ``m`` points
    ``(tr, tc)`` of one replicate of ``S`` (default the first)."""
    tr, tc = np.asarray(tr, dtype=float), np.asarray(tc, dtype=float)
    with np.errstate(all="ignore"):
        return _evaluate(S, np.full(tr.shape[0], replicate, dtype=np.intp), tr, tc, reml, deriv)


class _Criterion:
    """The criterion of the replicates of ``S`` on the relative-SD scale, for problems owned by replicates
    ``owner`` (a problem: a replicate and a start)."""

    def __init__(self, S: NestedStats, reml: bool, owner: np.ndarray) -> None:
        self.S, self.reml, self.owner = S, reml, owner
        # natural scales of theta: 1 / mean rep size, 1 / mean centre size (theta enters as 1 + n theta)
        self.scale = np.stack([S.nreps / S.nobs, S.ncentres / S.nobs], axis=1)

    def crit(self, idx: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Criterion at ``s`` (k, 2) of problems ``idx`` (NaN where not finite)."""
        th = s * s
        return _evaluate(self.S, self.owner[idx], th[:, 0], th[:, 1], self.reml, deriv=False)["crit"]

    def full(self, idx: np.ndarray, s: np.ndarray) -> dict:
        """Criterion, gradient and Hessian at ``s`` (k, 2) in theta (``g``, ``H``: forward differences of
        the exact gradient, steps ``1e-5 (theta + scale)``, feasible at 0) and in s (``gs``, ``Hs``), and the
        GLS pieces at ``s`` (``beta``, ``q``, ``Minv``)."""
        k = idx.shape[0]
        r = self.owner[idx]
        th = s * s
        delta = 1e-5 * (th + self.scale[r])
        tr = np.stack([th[:, 0], th[:, 0] + delta[:, 0], th[:, 0] + 0.0], axis=1)
        tc = np.stack([th[:, 1], th[:, 1] + 0.0, th[:, 1] + delta[:, 1]], axis=1)
        ev = _evaluate(self.S, np.repeat(r, 3), tr.ravel(), tc.ravel(), self.reml)
        G = ev["grad"].reshape(k, 3, 2)
        g = G[:, 0]
        H = (G[:, 1:] - g[:, None, :]) / delta[:, :, None]
        H = 0.5 * (H + np.swapaxes(H, 1, 2))
        gs = 2.0 * s * g
        Hs = 4.0 * (s[:, :, None] * s[:, None, :]) * H + 2.0 * (g[:, :, None] * np.eye(2))
        out = {"crit": ev["crit"].reshape(k, 3)[:, 0], "g": g, "H": H, "gs": gs, "Hs": Hs}
        for key in ("beta", "q", "Minv"):
            out[key] = ev[key].reshape((k, 3) + ev[key].shape[1:])[:, 0]
        return out

    def derivs(self, idx: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        D = self.full(idx, s)
        return D["crit"], D["gs"], D["Hs"]


def _newton(P: _Criterion, s0: np.ndarray, max_iter: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Newton on ``s`` in R^2 for every problem (:func:`simstudy.estimators.reml_batch.newton`; the
    criterion is even in each ``s_k``, so the bound ``s >= 0`` is a reflection). Returns ``|s|`` and the
    iterations."""
    s, its = newton(P.derivs, P.crit, s0, np.arange(2), max_iter)
    return np.abs(s), its


def _polish(P: _Criterion, s: np.ndarray, max_iter: int = 10) -> np.ndarray:
    """Projected Newton steps on theta = s^2 >= 0 from ``s`` (k, 2), problems ``0..k-1`` of ``P`` in
    lockstep (components at 0 with a negative one-sided derivative are freed), each kept only if the
    criterion does not rise beyond rounding (1e-13 relative); stops when the decrement in theta is below 1e-8
    of the certificate's tolerance. Near a small interior variance the criterion is quartic in s but
    quadratic in theta: Newton steps on s crawl there (each removes a third of the distance to 0), in theta
    one or two steps finish."""
    s = s.copy()
    k = s.shape[0]
    th = s * s
    D = P.full(np.arange(k), s)
    crit, g, H = D["crit"], D["g"], D["H"]
    active = np.ones(k, dtype=bool)
    for _ in range(max_iter):
        A = np.flatnonzero(active)
        if A.size == 0:
            break
        free = (th[A] > 0) | (g[A] < 0)
        new = th[A].copy()
        go = np.zeros(A.size, dtype=bool)
        for pattern in ((True, True), (True, False), (False, True)):
            j = np.flatnonzero((free == pattern).all(axis=1))
            if j.size == 0:
                continue
            cols = np.flatnonzero(pattern)
            Hs = H[A[j]][:, cols][:, :, cols]
            gs = g[A[j]][:, cols]
            fin = np.isfinite(Hs).all(axis=(1, 2)) & np.isfinite(gs).all(axis=1)
            pd = np.zeros(j.size, dtype=bool)
            if fin.any():
                pd[fin] = np.linalg.eigvalsh(Hs[fin]).min(axis=1) > 0
            step = np.zeros(gs.shape)
            if pd.any():
                step[pd] = _solve(Hs[pd], gs[pd])
            small = 0.5 * (gs * step).sum(-1) <= 1e-8 * opt.tolerance(crit[A[j]])
            ok = pd & np.isfinite(step).all(axis=1) & ~small
            jj = j[ok]
            new[np.ix_(jj, cols)] = np.maximum(th[A[jj]][:, cols] - step[ok], 0.0)
            go[jj] = True
        active[A[~go]] = False
        A, new = A[go], new[go]
        if A.size == 0:
            break
        snew = np.sqrt(new)
        f = P.crit(A, snew)
        rise = f > crit[A] + 1e-13 * np.maximum(1.0, np.abs(crit[A]))
        active[A[rise]] = False
        A, new, snew = A[~rise], new[~rise], snew[~rise]
        if A.size:
            th[A], s[A] = new, snew
            D = P.full(A, snew)
            crit[A], g[A], H[A] = D["crit"], D["g"], D["H"]
    return s


def _solve(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``H^-1 g`` for a stack of positive definite matrices (NaN where singular)."""
    try:
        return np.linalg.solve(H, g[..., None])[..., 0]
    except np.linalg.LinAlgError:
        out = np.full(g.shape, np.nan)
        for i in range(g.shape[0]):
            try:
                out[i] = np.linalg.solve(H[i], g[i])
            except np.linalg.LinAlgError:
                pass
        return out


def certify_nested(S: NestedStats, s: np.ndarray, reml: bool = True, names: tuple[str, str] = ("rep", "centre"),
                   owner: np.ndarray | None = None) -> tuple[np.ndarray, list[str], dict]:
    """First-order optimality of ``s`` (see :mod:`simstudy.estimators.optimality`): Newton decrement on the
    relative-SD scale over the components above 0, one-sided derivative in theta (with the curvature for
    the decrease it allows) for the components at 0.

    Parameters
    ----------
    S : NestedStats
    s : ndarray (k, 2)
        Relative SDs ``(s_rep, s_centre)``, >= 0, one row per replicate of ``owner``.
    reml : bool
    names : (str, str)
        Names of the inner and outer grouping columns, for the message.
    owner : ndarray of int (k,), optional
        The replicate of each row (default ``0..k-1``).

    Returns
    -------
    ok : ndarray of bool (k,)
    why : list of str
        "" where ok, else which check failed and by how much.
    derivs : dict
        Criterion, derivatives (``g``, ``H`` in theta; ``gs``, ``Hs`` in s) and GLS pieces (``beta``,
        ``q``, ``Minv``) at ``s``.
    """
    with np.errstate(all="ignore"):
        return _certify(S, s, reml, names, np.arange(s.shape[0]) if owner is None else owner)


def _certify(S: NestedStats, s: np.ndarray, reml: bool, names: tuple[str, str],
             owner: np.ndarray) -> tuple[np.ndarray, list[str], dict]:
    k = s.shape[0]
    D = _Criterion(S, reml, owner).full(np.arange(k), s)
    crit = D["crit"]
    tol = opt.tolerance(crit)
    free = s > 0
    dec = np.zeros(k)
    for pattern in ((True, True), (True, False), (False, True)):
        j = np.flatnonzero((free == pattern).all(axis=1))
        if j.size:
            cols = np.flatnonzero(pattern)
            dec[j] = opt.decrement(D["gs"][j][:, cols], D["Hs"][j][:, cols][:, :, cols])
    gain = np.where(~free, opt.entry_gain(D["g"], np.diagonal(D["H"], axis1=1, axis2=2)), 0.0)
    finite = np.isfinite(crit)
    ok = finite & (dec <= tol) & (gain <= tol[:, None]).all(axis=1)
    why = [""] * k
    for r in np.flatnonzero(~ok):
        if not finite[r]:
            why[r] = "criterion not finite at the optimum"
        elif not dec[r] <= tol[r]:
            why[r] = opt.failure_message(
                "not stationary (d crit / d relative SD of " + ", ".join(
                    f"var({names[c]}) {D['gs'][r, c]:.3g}" for c in np.flatnonzero(free[r])) + "): predicted decrease",
                dec[r], tol[r])
        else:
            c = int(np.flatnonzero(~(gain[r] <= tol[r]))[0])
            why[r] = opt.failure_message(
                f"var({names[c]}) at 0 but d crit / d theta = {D['g'][r, c]:.3g} < 0 there: decrease available",
                gain[r, c], tol[r])
    return ok, why, D


def _snaps(s: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """``s`` (k, 2) with each component below the singular tolerance set to exactly 0, and with both: three
    (points, present) pairs, in that order."""
    small = s < SINGULAR_TOL
    return [(np.where(np.arange(2) == c, 0.0, s), small[:, c]) for c in range(2)] + \
        [(np.zeros_like(s), small.all(axis=1))]


def _best(P: _Criterion, slots: list[tuple[np.ndarray, np.ndarray]], k: int) -> np.ndarray:
    """Per row ``0..k-1`` (problems of ``P``), the best of its candidates: ``slots`` are (points (k, 2),
    present (k,)) in candidate order; lowest criterion, and among those within rounding (1e-12 relative)
    of it the one with the most components at 0 (a variance that beats 0 only by rounding noise is 0)."""
    pts = np.abs(np.stack([p for p, _ in slots], axis=1))  # (k, n, 2)
    present = np.stack([m for _, m in slots], axis=1)
    rows, cols = np.nonzero(present)
    T = pts[rows, cols]
    f = P.crit(rows, T)
    f = np.where(np.isfinite(f), f, np.inf)
    pick = pick_best(rows, f, (T == 0).sum(axis=1))
    return T[pick]


def fit_nested(S: NestedStats, reml: bool = True, names: tuple[str, str] = ("rep", "centre")) -> dict:
    """Fit the first replicate of ``S`` alone (see :func:`fit_nested_batch`); values for that replicate."""
    res = fit_nested_batch(S.take(np.array([0])), reml, names)
    return {k: v[0] for k, v in res.items()}


def fit_nested_batch(S: NestedStats, reml: bool = True, names: tuple[str, str] = ("rep", "centre")) -> dict:
    """Fit every replicate of ``S`` (module docstring), in lockstep. A replicate's results do not depend on
    the other replicates of the batch.

    Parameters
    ----------
    S : NestedStats
    reml : bool
    names : (str, str)
        Names of the inner and outer grouping columns, for messages.

    Returns
    -------
    dict
        Arrays over replicates: ``theta`` (R, 2) variance ratios ``(theta_r, theta_c)``, ``sigma2``, ``beta``
        (R, p), ``cov`` (R, p, p), ``crit``, ``converged`` (the optimum passed its certificate), ``boundary``
        (R, 2) (relative SD below 1e-4), ``iterations`` (Newton iterations, all starts) and ``message``
        (list of str).
    """
    with np.errstate(all="ignore"):
        return _fit_batch(S, reml, names)


def _fit_batch(S: NestedStats, reml: bool, names: tuple[str, str]) -> dict:
    R = S.nobs.shape[0]
    t_rep = fit_ri(S.rep_face, reml)["theta"]
    t_cen = fit_ri(S.centre_face, reml)["theta"]
    zero = np.zeros(R)
    everywhere = np.ones(R, dtype=bool)
    faces = [(np.zeros((R, 2)), everywhere), (np.stack([np.sqrt(t_rep), zero], 1), everywhere),
             (np.stack([zero, np.sqrt(t_cen)], 1), everywhere)]
    s0 = np.maximum(np.sqrt(np.stack([t_rep, t_cen], axis=1)), 0.1)
    P = _Criterion(S, reml, np.arange(R))
    sn, iters = _newton(P, s0)
    sn = _polish(P, sn)
    s = _best(P, faces + [(sn, everywhere)] + _snaps(sn), R)
    ok, why, D = _certify(S, s, reml, names, np.arange(R))
    bad = np.flatnonzero(~ok)
    if bad.size:
        # restarts: the certified-failing point moved into the interior along the components whose one-sided
        # derivative is negative (Newton step in theta), lme4's start (1, 1), and three times the first start
        sb, g, Hd = s[bad], D["g"][bad], np.diagonal(D["H"][bad], axis1=1, axis2=2)
        step = np.where(Hd > 0, np.sqrt(-g / Hd), 1.0)
        pushed = np.where((sb == 0) & (g < 0), step, sb)
        starts = np.stack([pushed, np.ones_like(sb), 3.0 * s0[bad]], axis=1).reshape(-1, 2)
        owner = np.repeat(bad, 3)
        Pb = _Criterion(S, reml, owner)
        sr, kr = _newton(Pb, np.maximum(starts, 1e-3))
        sr = _polish(Pb, sr)
        np.add.at(iters, owner, kr)
        sr = sr.reshape(bad.size, 3, 2)
        nb = bad.size
        on = np.ones(nb, dtype=bool)
        slots = [(f[bad], on) for f, _ in faces] + [(sb, on)]
        for j in range(3):
            slots += [(sr[:, j], on)] + _snaps(sr[:, j])
        Pc = _Criterion(S, reml, bad)
        s[bad] = _best(Pc, slots, nb)
        ok2, why2, D2 = _certify(S, s[bad], reml, names, bad)
        ok[bad] = ok2
        for j, r in enumerate(bad):
            why[r] = why2[j]
        for key in D:
            D[key][bad] = D2[key]
    theta = s * s
    dof = S.nobs - S.p if reml else S.nobs
    sigma2 = D["q"] / dof
    return {"theta": theta, "sigma2": sigma2, "beta": D["beta"], "cov": sigma2[:, None, None] * D["Minv"],
            "crit": D["crit"], "converged": ok, "boundary": s < SINGULAR_TOL, "iterations": iters, "message": why}

