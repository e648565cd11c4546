"""Maximum likelihood for the random-intercept GLMM: damped Newton in ``(theta, beta)``, batched over replicates.

What is optimised is lme4's: for ``nAGQ = 1`` the Laplace deviance and for ``nAGQ > 1`` the adaptive
Gauss-Hermite deviance, both minimised jointly over ``(theta, beta)`` with the random effects at their
conditional modes (lme4's second stage, :mod:`simstudy.estimators.glmm_deviance`). Steps, run in lockstep over
the replicates of a :class:`~simstudy.estimators.glmm_deviance.Batch` (each replicate stops on its own):

1. the GLM (``theta = 0``; Newton from least squares on a transformed response): the boundary candidate, and
   the separation screen (a fit that does not converge or has ``|eta| > 20`` is checked by a linear program,
   :func:`separation`: a direction of the fixed effects along which no row's likelihood decreases means
   the estimates are infinite; such replicates are not fitted further);
2. a start for theta: where ``d0 = df/d(theta^2)`` at 0 (the score-test statistic ``sum_j (W_j - S_j^2)``)
   is negative, the root of the random-intercept LMM score equation on the GLM's working weights and
   scores; else ``theta = 1`` (lme4's start), so that an interior minimum is not missed;
3. Newton on ``(theta, beta)`` with the exact Hessian (modified to be positive definite where it is not),
   Armijo backtracking, steps capped; theta may go negative (the deviance is even in it) and its sign is
   dropped at the end. Replicates that fail are restarted once from ``theta = 1`` (or 0.3). For
   ``nAGQ > 1`` this runs on the Laplace deviance first and then on the AGQ deviance from the Laplace
   optimum (a few AGQ iterations instead of many);
4. the interior optimum is compared with the GLM (``theta = 0``): the lower deviance wins (0 on ties within
   1e-12 relative);
5. certificate (:mod:`simstudy.estimators.optimality`): at an interior optimum the Newton decrement in
   ``(theta, beta)`` (positive definite Hessian) at most ``tolerance(f)``; at ``theta = 0`` the decrement in
   beta and the one-sided derivative ``d0 >= 0`` (or the decrease it allows within the tolerance).

Covariance of the fixed effects: lme4's default for ``glmer`` (``vcov(use.hessian = TRUE)``): ``2 H^-1``'s
beta block with ``H`` the Hessian of the deviance in ``(theta, beta)`` (exact here; lme4 takes finite
differences of step 1e-4). At ``theta = 0`` the deviance is even in theta, ``H`` is block diagonal and this
is the GLM's ``(X' W X)^-1``.
"""

from __future__ import annotations

import numpy as np

from simstudy.estimators import glmm_deviance as gd
from simstudy.estimators import optimality as opt

#: SD (theta) below which a fit is flagged boundary (lme4's isSingular tolerance).
SINGULAR_TOL = 1e-4
MAXIT = 100
#: Newton stops when the decrement is below this times max(1, |f|).
_CONV_RTOL = 1e-16
#: |theta| beyond which the variance is taken to diverge; |eta| beyond which the fixed effects are.
THETA_MAX = 1e3
ETA_MAX = 40.0
_SEP_SCREEN = 20.0
# Newton status codes
RUN, CONV, LSFAIL, DIVERGE, MAXITER, BADEVAL = range(6)


def _direction(g: np.ndarray, H: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Newton directions (R, k), decrements and positive-definiteness; where ``H`` is not positive definite
    its eigenvalues are replaced by their absolute values (floored) so the direction is one of descent."""
    Hs = 0.5 * (H + H.swapaxes(-1, -2))
    finite = np.isfinite(Hs).all(axis=(1, 2)) & np.isfinite(g).all(axis=1)
    Hs = np.where(finite[:, None, None], Hs, np.eye(H.shape[-1]))
    lam, V = np.linalg.eigh(Hs)
    top = np.abs(lam).max(axis=1, keepdims=True)
    floor = 1e-10 * np.maximum(top, 1e-300)
    pd = finite & (lam.min(axis=1) > floor[:, 0])
    lm = np.maximum(np.abs(lam), floor)
    c = np.einsum("rji,rj->ri", V, np.where(finite[:, None], g, 0.0))
    d = -np.einsum("rij,rj->ri", V, c / lm)
    dec = 0.5 * (c * c / lm).sum(axis=1)
    return d, np.where(finite, dec, np.inf), pd


class _State:
    """Per-replicate Newton state (full arrays over the batch's replicates)."""

    def __init__(self, x, f, g, H, u, up):
        self.x, self.f, self.g, self.H, self.u, self.up = x, f, g, H, u, up


def _clusters(b: gd.Batch, reps: np.ndarray) -> np.ndarray:
    C = b.crep.shape[0]
    end = np.append(b.rstart_c[1:], C)
    return np.concatenate([np.arange(b.rstart_c[r], end[r]) for r in reps]) if len(reps) else np.zeros(0, int)


def _eval(b: gd.Batch, x: np.ndarray, u0: np.ndarray, rule) -> dict:
    return gd.evaluate(b, x[:, 0], x[:, 1:], u0, rule, 2)


def newton(b: gd.Batch, x0: np.ndarray, rule, free_theta: bool, maxit: int | None = None) -> dict:
    """Damped Newton from ``x0`` (R, P) (theta fixed at ``x0[:, 0]`` unless ``free_theta``).

    Returns ``x``, ``f``, ``g``, ``H`` (at the last point), ``omax`` (largest ``|x' beta|``), ``status`` (codes
    ``CONV``, ``LSFAIL``, ``DIVERGE``, ``MAXITER``, ``BADEVAL``) and ``iterations``.
    """
    R, P = x0.shape
    C = b.crep.shape[0]
    maxit = MAXIT if maxit is None else maxit
    ev = _eval(b, x0, np.zeros(C), rule)
    st = _State(x0.copy(), ev["f"], ev["g"], ev["H"], ev["u"], ev["up"])
    omax = ev["omax"]
    status = np.where(np.isfinite(st.f), RUN, BADEVAL)
    iters = np.zeros(R, dtype=int)
    sl = slice(0, P) if free_theta else slice(1, P)
    xs = np.maximum(np.maximum.reduceat(np.abs(b.XT), b.rstart_r, axis=1).T, 1e-300)  # (R, p)
    for _ in range(maxit):
        act = np.flatnonzero(status == RUN)
        if not act.size:
            break
        d, dec, pd = _direction(st.g[act][:, sl], st.H[act][:, sl, sl])
        done = pd & (dec <= _CONV_RTOL * np.maximum(1.0, np.abs(st.f[act])))
        status[act[done]] = CONV
        step = ~done
        idx, d = act[step], d[step]
        if not idx.size:
            break
        iters[idx] += 1
        D = np.zeros((idx.size, P))
        D[:, sl] = d
        # cap: |d theta| <= max(1, |theta|), |d beta_k| * max|x_k| <= 10 (per replicate)
        lim = np.concatenate([np.maximum(1.0, np.abs(st.x[idx, :1])), 10.0 / xs[idx]], axis=1)
        scale = np.minimum(1.0, (lim / np.maximum(np.abs(D), 1e-300)).min(axis=1))
        D *= scale[:, None]
        slope = (st.g[idx] * D).sum(axis=1)
        t = np.ones(idx.size)
        pending = np.arange(idx.size)
        for _ls in range(45):
            reps = idx[pending]
            sub = b if reps.size == R else b.take(reps)
            cl = _clusters(b, reps) if reps.size != R else slice(None)
            xt = st.x[reps] + t[pending, None] * D[pending]
            u0 = st.u[cl] + (st.up[cl] * (xt - st.x[reps])[sub.crep]).sum(axis=1)
            e2 = _eval(sub, xt, u0, rule)
            fr = st.f[reps]
            ok = np.isfinite(e2["f"]) & (e2["f"] <= fr + 1e-4 * t[pending] * slope[pending]
                                         + 1e-13 * np.maximum(1.0, np.abs(fr)))
            if ok.any():
                acc = reps[ok]
                st.x[acc], st.f[acc], st.g[acc], st.H[acc] = xt[ok], e2["f"][ok], e2["g"][ok], e2["H"][ok]
                omax[acc] = e2["omax"][ok]
                cl_acc = _clusters(b, acc)
                cl_sub = _clusters(sub, np.flatnonzero(ok))
                st.u[cl_acc], st.up[cl_acc] = e2["u"][cl_sub], e2["up"][cl_sub]
            pending = pending[~ok]
            if not pending.size:
                break
            t[pending] *= 0.5
        status[idx[pending]] = LSFAIL
        moved = idx[np.isin(np.arange(idx.size), pending, invert=True)]
        status[moved[(np.abs(st.x[moved, 0]) > THETA_MAX) | (omax[moved] > ETA_MAX)]] = DIVERGE
    status[status == RUN] = MAXITER
    return {"x": st.x, "f": st.f, "g": st.g, "H": st.H, "omax": omax, "status": status, "iterations": iters}


def _ls_start(b: gd.Batch) -> np.ndarray:
    """Least squares of a transformed response on X, per replicate (GLM start)."""
    if b.family == "binomial":
        z = np.log((b.y + 0.5) / (b.m - b.y + 0.5))
    else:
        z = np.log(b.y + 0.5)
    p = b.p
    XX = np.add.reduceat(np.stack([b.XT[k] * b.XT[j] for k in range(p) for j in range(p)]), b.rstart_r, axis=1)
    Xz = np.add.reduceat(np.stack([b.XT[k] * z for k in range(p)]), b.rstart_r, axis=1)
    A = XX.T.reshape(-1, p, p)
    try:
        return np.linalg.solve(A, Xz.T[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return np.stack([np.linalg.lstsq(A[r], Xz[:, r], rcond=None)[0] for r in range(A.shape[0])])


def _lmm_start(b: gd.Batch, beta: np.ndarray) -> np.ndarray:
    """theta^2 solving the random-intercept LMM score equation ``sum_j [W_j / (1 + v W_j) - S_j^2 / (1 + v W_j)^2]
    = 0`` on the GLM's cluster weights ``W_j`` and scores ``S_j`` (bisection in log v; 0 where none)."""
    L1, L2 = gd.family_terms(b.family, b.y, b.m, gd.offsets(b, beta), 2, with_L=False)
    s = np.add.reduceat(np.stack([L1, L2]), b.cstart, axis=1)
    S2, W = 0.25 * s[0] ** 2, 0.5 * s[1]
    lo = np.full(b.R, np.log(1e-6))
    hi = np.full(b.R, np.log(1e4))
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        a = 1.0 / (1.0 + np.exp(mid)[b.crep] * W)
        gr = np.add.reduceat(W * a - S2 * a * a, b.rstart_c)
        lo, hi = np.where(gr < 0, mid, lo), np.where(gr < 0, hi, mid)
    return np.exp(0.5 * (lo + hi))


def separation(family: str, y: np.ndarray, m: np.ndarray, X: np.ndarray) -> np.ndarray | None:
    """A direction ``delta`` of the fixed effects along which no row's likelihood decreases and some row's
    increases (complete or quasi-complete separation: the ML estimates are infinite), or None.

    Linear program (Konis 2007): rows with ``y = 0`` need ``x' delta <= 0``, rows with ``y = m`` (binomial)
    ``x' delta >= 0``, all others ``x' delta = 0``; maximise the summed slack over ``|delta_k| <= 1`` on
    columns scaled to unit maximum.
    """
    from scipy.optimize import linprog

    scale = np.abs(X).max(axis=0)
    scale[scale == 0] = 1.0
    Xs = X / scale
    zero = (y == 0) & (m > 0)
    full = (y == m) & (m > 0) if family == "binomial" else np.zeros_like(zero)
    mid = (m > 0) & ~zero & ~full
    ub = np.unique(np.concatenate([Xs[zero], -Xs[full]]), axis=0)
    eq = np.unique(Xs[mid], axis=0)
    c = Xs[zero].sum(axis=0) - Xs[full].sum(axis=0)
    res = linprog(c, A_ub=ub if ub.size else None, b_ub=np.zeros(ub.shape[0]) if ub.size else None,
                  A_eq=eq if eq.size else None, b_eq=np.zeros(eq.shape[0]) if eq.size else None,
                  bounds=[(-1.0, 1.0)] * X.shape[1], method="highs")
    if res.status != 0 or not res.fun < -1e-6:
        return None
    d = np.where(np.abs(res.x) > 1e-9, res.x, 0.0) / scale
    return d


def _entry_gain(b: gd.Batch, beta: np.ndarray, d0: np.ndarray, rule) -> np.ndarray:
    """Decrease available by moving theta off 0 where ``d0 < 0``: ``d0^2 / (2 h)`` with ``h`` the curvature
    in ``v = theta^2`` of the deviance profiled over beta, from the exact derivatives at ``theta = 1e-2``."""
    th = 1e-2
    ev = gd.evaluate(b, np.full(b.R, th), beta, np.zeros(b.crep.shape[0]), rule, 2)
    g, H = ev["g"], ev["H"]
    hvv = H[:, 0, 0] / (4 * th * th) - g[:, 0] / (4 * th ** 3)
    hvb = H[:, 0, 1:] / (2 * th)
    hbb = H[:, 1:, 1:]
    h = hvv - np.einsum("ri,ri->r", hvb, np.linalg.solve(hbb, hvb[..., None])[..., 0])
    return opt.entry_gain(d0, h)


def _joint(b: gd.Batch, start: np.ndarray, rule, th_s: np.ndarray) -> dict:
    """Newton in (theta, beta) from ``start``; replicates that fail are restarted once from theta = 1 (0.3
    where ``th_s`` was already 1) and the better result is kept."""
    jt = newton(b, start, rule, free_theta=True)
    retry = np.flatnonzero(np.isin(jt["status"], (LSFAIL, MAXITER, BADEVAL)))
    if retry.size:
        s2 = start[retry].copy()
        s2[:, 0] = np.where(th_s[retry] == 1.0, 0.3, 1.0)
        j2 = newton(b.take(retry), s2, rule, free_theta=True)
        f1 = np.nan_to_num(jt["f"][retry], nan=np.inf)
        better = (j2["status"] == CONV) | (np.nan_to_num(j2["f"], nan=np.inf) < f1)
        for k in ("x", "f", "g", "H", "omax", "status"):
            jt[k][retry[better]] = j2[k][better]
        jt["iterations"][retry] += j2["iterations"]
    return jt


def fit_glmm(b: gd.Batch, nagq: int = 1) -> dict:
    """Fit every replicate of ``b`` (full-rank fixed effects assumed).

    Returns arrays over replicates: ``theta`` (>= 0), ``beta`` (R, p), ``cov`` (R, p, p), ``f`` (criterion at
    the optimum, without lme4's constant), ``converged``, ``boundary``, ``iterations``, and lists
    ``separated`` (None or the diverging direction), ``message``.
    """
    R, p = b.R, b.p
    lap, rule = gd.gh_rule(1), gd.gh_rule(nagq)
    x0 = np.concatenate([np.zeros((R, 1)), _ls_start(b)], axis=1)
    glm = newton(b, x0, lap, free_theta=False)
    out_theta = np.zeros(R)
    out_beta = glm["x"][:, 1:].copy()
    out_cov = np.full((R, p, p), np.nan)
    out_f = np.full(R, np.nan)
    conv = np.zeros(R, dtype=bool)
    msgs = [""] * R
    sep: list = [None] * R
    bstart = np.append(b.rstart_r, b.y.shape[0])
    suspicious = (glm["status"] != CONV) | (glm["omax"] > _SEP_SCREEN)
    for r in np.flatnonzero(suspicious):
        rows = slice(bstart[r], bstart[r + 1])
        sep[r] = separation(b.family, b.y[rows], b.m[rows], b.XT[:, rows].T)
    fitme = np.array([s is None for s in sep]) & np.isin(glm["status"], (CONV, LSFAIL, MAXITER))
    for r in np.flatnonzero(~fitme):
        out_beta[r] = np.nan
        if sep[r] is None:
            msgs[r] = "the GLM at var = 0 (the start) failed: non-finite deviance or linear predictor diverging"
    iters = glm["iterations"].copy()
    idx = np.flatnonzero(fitme)
    if idx.size:
        sb = b if idx.size == R else b.take(idx)
        bd = {k: glm[k][idx] for k in ("x", "f", "g", "H")}
        d0 = 0.5 * bd["H"][:, 0, 0]  # d deviance / d theta^2 at 0 (the same for every nAGQ)
        bx = bd["x"]
        th_s = np.where(d0 < 0, np.sqrt(_lmm_start(sb, bx[:, 1:])), 1.0)
        start = bx.copy()
        start[:, 0] = th_s
        jt = _joint(sb, start, lap, th_s)
        if nagq > 1:  # AGQ from the Laplace optimum
            jt2 = _joint(sb, jt["x"], rule, np.full(idx.size, 0.5))
            jt2["iterations"] += jt["iterations"]
            jt = jt2
            nb = np.flatnonzero(np.isfinite(bd["f"]))
            if nb.size:  # the boundary candidate under the AGQ rule (equal to the GLM's up to rounding)
                nsb = sb if nb.size == idx.size else sb.take(nb)
                eb = _eval(nsb, bx[nb], np.zeros(nsb.crep.shape[0]), rule)
                for k in ("f", "g", "H"):
                    bd[k][nb] = eb[k]
        iters[idx] += jt["iterations"]
        fi, fb = jt["f"], bd["f"]
        tol = opt.tolerance(np.where(np.isfinite(fb), fb, fi))
        use_b = ~(fi < fb - 1e-12 * np.maximum(1.0, np.abs(fb))) | ~np.isfinite(fi)
        use_b &= np.isfinite(fb)
        # certificates
        dec_i = opt.decrement(jt["g"], jt["H"])
        dec_b = opt.decrement(bd["g"][:, 1:], bd["H"][:, 1:, 1:])
        gain = np.zeros(idx.size)
        neg = np.flatnonzero(use_b & (d0 < 0))
        if neg.size:
            gain[neg] = _entry_gain(sb.take(neg), bd["x"][neg, 1:], d0[neg], rule)
        ok_i = np.isfinite(fi) & (dec_i <= tol) & (np.abs(jt["x"][:, 0]) <= THETA_MAX) & (jt["omax"] <= ETA_MAX)
        ok_b = np.isfinite(fb) & (dec_b <= tol) & (gain <= tol)
        for j, r in enumerate(idx):
            if use_b[j]:
                out_f[r], out_beta[r], conv[r] = fb[j], bd["x"][j, 1:], ok_b[j]
                out_cov[r] = _cov(bd["H"][j, 1:, 1:])
                if ok_b[j]:
                    pass
                elif dec_b[j] > tol[j]:
                    msgs[r] = opt.failure_message("fixed effects at var = 0 not stationary: predicted decrease",
                                                  dec_b[j], tol[j])
                else:
                    msgs[r] = opt.failure_message(f"var at 0 but d deviance / d theta^2 = {d0[j]:.3g} < 0 there: "
                                                  "decrease available", gain[j], tol[j])
                continue
            out_theta[r], out_beta[r], out_f[r], conv[r] = abs(jt["x"][j, 0]), jt["x"][j, 1:], fi[j], ok_i[j]
            out_cov[r] = _cov(jt["H"][j])[1:, 1:]
            if not ok_i[j]:
                msgs[r] = _why(jt, j, dec_i[j], tol[j])
    out_theta = np.abs(out_theta)
    return {"theta": out_theta, "beta": out_beta, "cov": out_cov, "f": out_f, "converged": conv,
            "boundary": out_theta < SINGULAR_TOL, "iterations": iters, "separated": sep, "message": msgs}


def _cov(H: np.ndarray) -> np.ndarray:
    """``2 H^-1`` (NaN where ``H`` is not positive definite)."""
    Hs = 0.5 * (H + H.T)
    try:
        np.linalg.cholesky(Hs)
    except np.linalg.LinAlgError:
        return np.full(H.shape, np.nan)
    return 2.0 * np.linalg.inv(Hs)


def _why(jt: dict, j: int, dec: float, tol: float) -> str:
    s, th = jt["status"][j], abs(jt["x"][j, 0])
    if th > THETA_MAX:
        return (f"the group variance diverges (theta = {th:.3g} > {THETA_MAX:g}): the data hardly bound it from "
                "above (e.g. nearly every cluster all 0 or all 1)")
    if jt["omax"][j] > ETA_MAX:
        return (f"linear predictor diverging (|x' beta| = {jt['omax'][j]:.3g} > {ETA_MAX:g}) without a detected "
                "separation")
    if not np.isfinite(jt["f"][j]):
        return "deviance not finite at the optimum (a conditional mode did not converge)"
    head = {LSFAIL: "line search failed; ", MAXITER: f"no convergence in {MAXIT} iterations; "}.get(s, "")
    return head + opt.failure_message("not stationary in (theta, beta): predicted decrease", dec, tol)
