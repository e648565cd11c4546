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

and ``dcrit/dLambda = 2 (dcrit/dPsi) Lambda``. The criterion is minimised over ``Lambda = (l11, l21, l22)``
by Newton steps (exact gradient, Hessian by forward differences of it) *without* bounds -- every
``Lambda`` gives a valid ``Psi``; lme4's ``l11, l22 >= 0`` is only its canonical form, restored at the end
(:func:`chol_of`) -- from lme4's start ``(1, 0, 1)``, from up to three local minima of a coarse grid and
from the random-intercept fit; candidates with small Cholesky diagonal elements set to 0 are compared too,
and the best is polished on scales where the criterion is quadratic near the optimum (the entries of
``Psi``; the rank-1 matrices ``v v'``). A fit is flagged ``boundary`` when a diagonal element of lme4's
theta is below 1e-4 (lme4's ``isSingular`` rule): then ``Psi`` is singular (the slope and intercept
perfectly correlated, or a variance at 0).

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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simstudy.estimators import optimality as opt
from simstudy.estimators.reml import LOG2PI, SINGULAR_TOL, logdet_inv


@dataclass
class SlopeStats:
    """Sufficient statistics of one replicate: ``T`` (q, q), ``Q`` (G, 2, 2), ``C`` (G, 2, q), ``nobs``,
    ``p`` (number of fixed-effect columns; ``q = p + 1``, the response last)."""

    T: np.ndarray
    Q: np.ndarray
    C: np.ndarray
    nobs: float
    p: int

    def take(self, cols: np.ndarray) -> "SlopeStats":
        keep = np.append(cols, self.p)
        return SlopeStats(self.T[np.ix_(keep, keep)], self.Q, self.C[:, :, keep], self.nobs, len(cols))

    @property
    def XtX(self) -> np.ndarray:
        return self.T[: self.p, : self.p]

    def within_x(self) -> np.ndarray:
        """Within-group sum of squares of the slope covariate, per group."""
        n, sx, sxx = self.Q[:, 0, 0], self.Q[:, 0, 1], self.Q[:, 1, 1]
        return sxx - sx * sx / n


def slope_stats(y: np.ndarray, X: np.ndarray, x: np.ndarray, codes: np.ndarray, G: int) -> SlopeStats:
    """Per-group ``Q_j``, ``C_j`` and the total cross products, in one pass of ``bincount`` per column."""
    p = X.shape[1]
    q = p + 1
    Z = np.empty((y.shape[0], q))
    Z[:, :p] = X
    Z[:, p] = y
    n = np.bincount(codes, minlength=G).astype(float)
    sx = np.bincount(codes, weights=x, minlength=G)
    sxx = np.bincount(codes, weights=x * x, minlength=G)
    Q = np.empty((G, 2, 2))
    Q[:, 0, 0], Q[:, 0, 1], Q[:, 1, 0], Q[:, 1, 1] = n, sx, sx, sxx
    C = np.empty((G, 2, q))
    for k in range(q):
        C[:, 0, k] = np.bincount(codes, weights=Z[:, k], minlength=G)
        C[:, 1, k] = np.bincount(codes, weights=x * Z[:, k], minlength=G)
    T = Z.T @ Z
    return SlopeStats(T, Q, C, float(y.shape[0]), p)


def psi_of(lam: np.ndarray) -> np.ndarray:
    """``Psi = Lambda Lambda'`` (m, 2, 2) from ``(l11, l21, l22)`` (m, 3)."""
    l11, l21, l22 = lam[:, 0], lam[:, 1], lam[:, 2]
    psi = np.empty((lam.shape[0], 2, 2))
    psi[:, 0, 0] = l11 * l11
    psi[:, 0, 1] = psi[:, 1, 0] = l11 * l21
    psi[:, 1, 1] = l21 * l21 + l22 * l22
    return psi


def chol_of(psi: np.ndarray) -> np.ndarray:
    """lme4's theta ``(l11, l21, l22)`` (diagonal >= 0) of a PSD 2x2 ``psi``."""
    l11 = np.sqrt(max(psi[0, 0], 0.0))
    if l11 > 0:
        l21 = psi[0, 1] / l11
        l22 = np.sqrt(max(psi[1, 1] - l21 * l21, 0.0))
    else:
        l21, l22 = 0.0, np.sqrt(max(psi[1, 1], 0.0))
    return np.array([l11, l21, l22])


def evaluate_slope(lam: np.ndarray, S: SlopeStats, reml: bool, deriv: bool = True) -> dict:
    """Criterion (m,), gradient ``grad`` (m, 3) in ``(l11, l21, l22)``, ``gpsi`` (m, 2, 2) the symmetric
    ``Gamma = dcrit/dPsi`` (``dcrit = tr(Gamma dPsi)``) and the GLS pieces at ``m`` points.

    The 2x2 algebra per group is written out elementwise over (points, groups)."""
    p = S.p
    m = lam.shape[0]
    psi = psi_of(lam)  # (m, 2, 2)
    p00, p01, p11 = (psi[:, 0, 0, None], psi[:, 0, 1, None], psi[:, 1, 1, None])  # (m, 1)
    q00, q01, q11 = S.Q[:, 0, 0], S.Q[:, 0, 1], S.Q[:, 1, 1]  # (G,)
    a = 1.0 + q00 * p00 + q01 * p01  # I + Q Psi, (m, G)
    b = q00 * p01 + q01 * p11
    c = q01 * p00 + q11 * p01
    d = 1.0 + q01 * p01 + q11 * p11
    det = a * d - b * c  # >= 1
    n00, n01, n10, n11 = d / det, -b / det, -c / det, a / det  # N = (I + Q Psi)^-1
    C0, C1 = S.C[:, 0], S.C[:, 1]  # (G, q)
    NC0 = n00[..., None] * C0 + n01[..., None] * C1  # (m, G, q)
    NC1 = n10[..., None] * C0 + n11[..., None] * C1
    KC0 = p00[..., None] * NC0 + p01[..., None] * NC1  # Psi N C
    KC1 = p01[..., None] * NC0 + p11[..., None] * NC1
    A = S.T - np.matmul(C0.T, KC0) - np.matmul(C1.T, KC1)
    A = 0.5 * (A + A.transpose(0, 2, 1))
    M, bv, cc = A[:, :p, :p], A[:, :p, p], A[:, p, p]
    logdetM, Minv = logdet_inv(M)
    beta = np.matmul(Minv, bv[..., None])[..., 0]
    qf = cc - (bv * beta).sum(-1)
    dof = S.nobs - p if reml else S.nobs
    ldH = np.log(det).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        crit = dof * (1.0 + LOG2PI + np.log(qf / dof)) + ldH + (logdetM if reml else 0.0)
    out = {"crit": crit, "beta": beta, "Minv": Minv, "q": qf, "psi": psi}
    if deriv:
        u = np.concatenate([-beta, np.ones((m, 1))], axis=1)[:, :, None]  # (m, q, 1)
        v0, v1 = np.matmul(NC0, u)[..., 0], np.matmul(NC1, u)[..., 0]  # (m, G)
        w = -dof / qf
        g00 = w * (v0 * v0).sum(-1) + (q00 * n00 + q01 * n01).sum(-1)
        g01 = w * (v0 * v1).sum(-1) + 0.5 * ((q00 * n10 + q01 * n11) + (q01 * n00 + q11 * n01)).sum(-1)
        g11 = w * (v1 * v1).sum(-1) + (q01 * n10 + q11 * n11).sum(-1)
        if reml:
            P0, P1 = NC0[..., :p], NC1[..., :p]
            P0M = np.matmul(P0, Minv)  # (m, G, p)
            g00 = g00 - (P0M * P0).sum((-1, -2))
            g01 = g01 - (P0M * P1).sum((-1, -2))
            g11 = g11 - (np.matmul(P1, Minv) * P1).sum((-1, -2))
        l11, l21, l22 = lam[:, 0], lam[:, 1], lam[:, 2]
        # dcrit/dLambda = 2 Gamma Lambda, lower-triangular entries
        out["grad"] = 2.0 * np.stack([g00 * l11 + g01 * l21, g01 * l11 + g11 * l21, g11 * l22], axis=-1)
        out["gpsi"] = np.stack([np.stack([g00, g01], -1), np.stack([g01, g11], -1)], -2)  # dcrit/dPsi
    return out


def fit_slope(S: SlopeStats, reml: bool = True, ri_theta: float | None = None) -> dict:
    """Fit one replicate (module docstring): Newton runs over ``Lambda`` unconstrained (every ``Lambda``
    gives a valid ``Psi``; lme4's bounds ``l11, l22 >= 0`` are only its canonical form) from lme4's start,
    from up to three local minima of a coarse grid (:func:`_grid_starts`) and from the random-intercept
    fit; the best candidate (also with its small Cholesky diagonal elements set to 0) polished (on ``Psi``
    when it is full rank, among the rank-1 matrices when singular) and certified (:func:`certify_slope`).
    When the certificate fails: more starts (among them the point moved downhill along the direction the
    certificate found) and a second certificate; a fit still failing is flagged not converged, with a
    message saying which check failed and by how much.

    Parameters
    ----------
    S : SlopeStats
    reml : bool
    ri_theta : float, optional
        Variance ratio of a random-intercept fit of the same data (a start ``(sqrt(ri_theta), 0, .)``).

    Returns
    -------
    dict
        ``psi`` (2, 2) relative covariance, ``lam`` (lme4's theta, canonical: diagonal >= 0), ``sigma2``,
        ``beta``, ``cov``, ``crit``, ``converged`` (certified optimum), ``boundary`` (a diagonal element of
        lme4's theta below 1e-4) and ``message``.
    """
    P = _Problem(S, reml)
    sc = _scales(S)
    t0 = np.sqrt(ri_theta) if ri_theta is not None and ri_theta > 0 else 0.5
    grid, face = _grid_starts(S, reml)
    lam = _search(P, grid[:1] + [np.array([1.0, 0.0, 1.0])] + grid[1:],
                  optional=[np.array([t0, 0.0, 0.3 * sc[1]])], face=face)
    ok, why, extra = certify_slope(S, reml, lam)
    if not ok:
        retry = extra + [lam + 0.05 * np.array([sc[0], 0.0, sc[1]]), np.array([1.0, 0.5, 1.0]),
                         np.array([1.0, -0.5, 1.0]), np.array([0.1, 0.0, 0.1])]
        lam2 = _search(P, retry, also=[lam])
        ok2, why2, _ = certify_slope(S, reml, lam2)
        f = P.crit(np.stack([lam, lam2]))
        if ok2 or f[1] < f[0]:
            lam, ok, why = lam2, ok2, why2
    ev = evaluate_slope(lam[None], S, reml, deriv=False)
    psi = ev["psi"][0]
    dof = S.nobs - S.p if reml else S.nobs
    sigma2 = float(ev["q"][0] / dof)
    return {
        "psi": psi, "lam": lam, "sigma2": sigma2, "beta": ev["beta"][0], "cov": sigma2 * ev["Minv"][0],
        "crit": float(ev["crit"][0]), "converged": ok,
        "boundary": bool(min(lam[0], lam[2]) < SINGULAR_TOL), "message": why,
    }


class _Problem:
    """The criterion of one replicate as a function of ``Lambda`` (points (m, 3)), with counters."""

    def __init__(self, S: SlopeStats, reml: bool) -> None:
        self.S, self.reml = S, reml
        sc = _scales(S)
        self.csc = np.array([sc[0], sc[1], sc[1]])

    def crit(self, lam: np.ndarray) -> np.ndarray:
        f = evaluate_slope(np.atleast_2d(lam), self.S, self.reml, deriv=False)["crit"]
        return np.where(np.isfinite(f), f, np.inf)

    def derivs(self, lam: np.ndarray, free: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """Criterion, gradient and Hessian (forward differences of the exact gradient, steps
        ``1e-6 (|lambda_k| + natural scale)``) in the coordinates ``free``."""
        h = 1e-6 * (np.abs(lam) + self.csc)
        pts = np.array([lam] + [lam + h[k] * np.eye(3)[k] for k in free])
        ev = evaluate_slope(pts, self.S, self.reml)
        g = ev["grad"][0][free]
        H = np.stack([(ev["grad"][1 + j][free] - g) / h[k] for j, k in enumerate(free)], axis=1)
        return float(ev["crit"][0]), g, 0.5 * (H + H.T)


def _newton(P: _Problem, lam0: np.ndarray, free: np.ndarray = np.arange(3), max_iter: int = 60) -> np.ndarray:
    """Newton steps in the coordinates ``free`` of ``Lambda`` (no bounds: any ``Lambda`` is a valid factor),
    the Hessian's eigenvalues made positive (``|lambda|``), Armijo backtracking; in the quadratic region
    (decrement below the certificate's tolerance) full steps unless the criterion rises beyond rounding
    (1e-13 relative). Stops when the decrement is below 1e-8 of the tolerance or stops falling tenfold
    per step there, or after ``max_iter`` steps."""
    lam = np.asarray(lam0, dtype=float).copy()
    f, g, H = P.derivs(lam, free)
    last = np.inf
    for _ in range(max_iter):
        if not (np.isfinite(f) and np.isfinite(H).all() and np.isfinite(g).all()):
            break
        tol = float(opt.tolerance(f))
        ev, V = np.linalg.eigh(H)
        c = V.T @ g
        dec = 0.5 * float(np.sum(c * c / ev)) if ev[0] > 0 else np.inf
        if dec <= 1e-8 * tol or (dec <= tol and dec > 0.1 * last):
            break
        last = dec
        d = -V @ (c / np.maximum(np.abs(ev), 1e-10 * np.abs(ev).max() + 1e-300))
        dmax = np.abs(d).max()
        if not np.isfinite(dmax) or dmax == 0:
            break
        step = np.zeros(3)
        if dec <= tol:
            step[free] = d
            if float(P.crit(lam + step)[0]) > f + 1e-13 * max(1.0, abs(f)):
                break
        else:
            d *= min(1.0, 2.0 * (1.0 + np.abs(lam).max()) / dmax)
            slope, alpha, accepted = float(g @ d), 1.0, False
            while alpha * np.abs(d).max() > 1e-15 * (1.0 + np.abs(lam).max()):
                step[free] = alpha * d
                if float(P.crit(lam + step)[0]) <= f + 1e-4 * alpha * slope:
                    accepted = True
                    break
                alpha *= 0.5
            if not accepted:
                break
        lam = lam + step
        f, g, H = P.derivs(lam, free)
    return lam


def _canonical(lam: np.ndarray) -> list[np.ndarray]:
    """lme4's form of ``Lambda`` (diagonal >= 0) and its singular neighbours: the rank-1 matrix with the
    same first column when the Cholesky diagonal is below the singular tolerance, the intercept variance
    set to 0 when that is, and ``Psi = 0``."""
    c = chol_of(psi_of(np.asarray(lam, dtype=float)[None])[0])
    out = [c]
    if c[2] < SINGULAR_TOL:
        out.append(np.array([c[0], c[1], 0.0]))
    if c[0] < SINGULAR_TOL:
        out.append(np.array([0.0, 0.0, np.hypot(c[1], c[2])]))
    if min(c[0], c[2]) < SINGULAR_TOL:
        out.append(np.zeros(3))
    return out


def _best(P: _Problem, cands: list[np.ndarray]) -> np.ndarray:
    """The candidate with the lowest criterion; within rounding (1e-12 relative) of it, the one with the
    most zeros on the Cholesky diagonal (a variance that beats a singular matrix only by noise is 0)."""
    T = np.array(cands)
    f = P.crit(T)
    near = np.flatnonzero(f <= f.min() + 1e-12 * max(1.0, abs(f.min())))
    zeros = (T[:, [0, 2]] == 0).sum(axis=1)
    return T[max(near, key=lambda i: (zeros[i], -f[i]))]


def _search(P: _Problem, starts: list[np.ndarray], also: list[np.ndarray] = (),
            optional: list[np.ndarray] = (), face: list[np.ndarray] = ()) -> np.ndarray:
    """Newton from every start, and from the ``optional`` ones unless two runs already agree (criterion
    within 1e-10 relative); Newton among the rank-1 matrices (``l22 = 0``) from the ``face`` starts; the
    best candidate (with ``also``) polished, in lme4's form."""
    cands = list(also)
    for x0 in face:
        cands += _canonical(_newton(P, x0, free=np.array([0, 1]), max_iter=30))
    ends = []
    for x0 in starts:
        c = _canonical(_newton(P, x0))
        ends.append(float(P.crit(c[0])[0]))
        cands += c
    agree = len(ends) >= 2 and abs(ends[0] - ends[1]) <= 1e-10 * max(1.0, abs(ends[0]))
    for x0 in () if agree else optional:
        cands += _canonical(_newton(P, x0))
    return _polish(P, _best(P, cands))


def _polish(P: _Problem, lam: np.ndarray) -> np.ndarray:
    """Newton polish of a canonical ``Lambda`` on scales where the criterion is quadratic near the optimum
    (near a small ``l22`` it is quartic in ``l22``, where Newton steps on ``Lambda`` crawl): on the entries
    of ``Psi`` when it is full rank (:func:`_polish_psi`), and among the rank-1 matrices ``v v'`` with
    ``v`` its first column (``v = (l11, l21)``, or ``(0, sqrt(Psi_11))`` when ``l11 = 0``; both signs of
    ``v_0``); the best of the point and the polished ones (:func:`_best`: a rank-1 matrix within rounding
    of the best wins)."""
    if not lam.any():
        return lam
    cands = [lam]
    if lam[0] > 0 and lam[2] > 0:
        cands.append(_polish_psi(P, lam))
    v = np.array([lam[0], lam[1]]) if lam[0] > 0 else np.array([0.0, np.hypot(lam[1], lam[2])])
    chart = _newton(P, np.array([v[0], v[1], 0.0]), free=np.array([0, 1]), max_iter=30)
    cands.append(chol_of(psi_of(chart[None])[0]) * [1.0, 1.0, 0.0])
    return _best(P, cands)


def _polish_psi(P: _Problem, lam: np.ndarray, max_iter: int = 10) -> np.ndarray:
    """Newton steps on ``x = (Psi_00, Psi_01, Psi_11)`` (gradient ``(G_00, 2 G_01, G_11)`` with
    ``G = dcrit/dPsi``, Hessian by forward differences), halved until ``Psi`` stays positive definite and
    the criterion does not rise beyond rounding (1e-13 relative)."""
    psi = psi_of(lam[None])[0]
    x = np.array([psi[0, 0], psi[0, 1], psi[1, 1]])

    def lam_of(x: np.ndarray) -> np.ndarray:
        return chol_of(np.array([[x[0], x[1]], [x[1], x[2]]]))

    for _ in range(max_iter):
        det = x[0] * x[2] - x[1] ** 2
        h = 1e-6 * np.array([x[0], np.sqrt(max(det, 0.0)), x[2]])
        if not (det > 0 and (h > 0).all()):
            break
        pts = [x] + [x + h[k] * np.eye(3)[k] for k in range(3)]
        ev = evaluate_slope(np.array([lam_of(xx) for xx in pts]), P.S, P.reml)
        G = ev["gpsi"]
        g = np.stack([G[:, 0, 0], 2.0 * G[:, 0, 1], G[:, 1, 1]], axis=1)
        f = float(ev["crit"][0])
        H = (g[1:] - g[0]) / h[:, None]
        H = 0.5 * (H + H.T)
        if not (np.isfinite(H).all() and np.linalg.eigvalsh(H).min() > 0):
            break
        step = np.linalg.solve(H, g[0])
        if 0.5 * float(g[0] @ step) <= 1e-8 * float(opt.tolerance(f)):
            break
        for _ in range(30):
            new = x - step
            if new[0] > 0 and new[2] > 0 and new[0] * new[2] > new[1] ** 2 \
                    and float(P.crit(lam_of(new))[0]) <= f + 1e-13 * max(1.0, abs(f)):
                break
            step = 0.5 * step
        else:
            break
        x = new
    return lam_of(x)


#: Multiples of the natural scales (:func:`_scales`) on which :func:`_grid_starts` scans the criterion:
#: (diagonal, off-diagonal) of the fine grid (539 points) and of the coarse one (48 points).
_GRID_FINE = (np.array([0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 50.0]),
              np.array([-10.0, -5.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 5.0, 10.0]))
_GRID_COARSE = (np.array([0.0, 0.3, 3.0, 30.0]), np.array([-3.0, 0.0, 3.0]))
#: Largest (grid points) x (groups) for the fine grid: its cost grows with the groups, while several
#: local minima far apart are a small-design problem.
_GRID_BUDGET = 20_000


def _grid_starts(S: SlopeStats, reml: bool, k: int = 3) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Up to ``k`` local minima of the criterion on a grid of lme4's theta (natural scales times the
    diagonal multiples for ``l11, l22`` and the off-diagonal ones for ``l21``: ``_GRID_FINE``, or
    ``_GRID_COARSE`` when points x groups would exceed ``_GRID_BUDGET``; one vectorised evaluation),
    lowest first: starts in the right basins when the criterion has several local minima (small designs,
    x on an unusual scale). A grid point is a local minimum when no neighbour (one step along each axis,
    diagonals included) is lower. Also returned: up to two local minima of a polar grid of the rank-1 face
    (``_FACE_PHI`` x ``_FACE_R``, within the same budget), starts for Newton among the rank-1 matrices."""
    sc = _scales(S)
    diag, off = _GRID_FINE
    if diag.size**2 * off.size * S.Q.shape[0] > _GRID_BUDGET:
        diag, off = _GRID_COARSE
    axes = (diag * sc[0], off * sc[1], diag * sc[1])
    grids = np.meshgrid(*axes, indexing="ij")
    pts = np.stack([a.ravel() for a in grids], axis=1)
    f = evaluate_slope(pts, S, reml, deriv=False)["crit"]
    f = np.where(np.isfinite(f), f, np.inf).reshape(grids[0].shape)
    cand = _lowest(pts, f, _local_minima(np.pad(f, 1, constant_values=np.inf)), k)
    face = []
    # the rank-1 face v v', v = r (cos phi sc_0, sin phi sc_1), on a polar grid: with the slope and the
    # intercept (nearly) perfectly correlated the optimum lies in a valley a few degrees wide that the
    # grid above misses. phi wraps with period pi (v and -v give the same Psi)
    if _FACE_PHI.size * _FACE_R.size * S.Q.shape[0] <= _GRID_BUDGET:
        ph, r = np.meshgrid(_FACE_PHI, _FACE_R, indexing="ij")
        a, b = r * np.cos(ph) * sc[0], r * np.sin(ph) * sc[1]
        fpts = np.stack([np.abs(a), np.where(a < 0, -b, b), np.zeros_like(a)], axis=-1).reshape(-1, 3)
        ff = evaluate_slope(fpts, S, reml, deriv=False)["crit"]
        ff = np.where(np.isfinite(ff), ff, np.inf).reshape(ph.shape)
        wrapped = np.pad(np.concatenate([ff[-1:], ff, ff[:1]])[..., None], ((0, 0), (1, 1), (1, 1)),
                         constant_values=np.inf)
        face = _lowest(fpts, ff, _local_minima(wrapped)[..., 0], 2)
    return [c[1] for c in cand] or [np.array([1.0, 0.0, 1.0])], [c[1] for c in face]


#: The polar grid of the rank-1 face (:func:`_grid_starts`): angles and radii (natural scales).
_FACE_PHI = np.arange(36) * np.pi / 36
_FACE_R = np.array([0.1, 0.3, 1.0, 3.0, 10.0, 30.0])


def _lowest(pts: np.ndarray, f: np.ndarray, mask: np.ndarray, k: int) -> list[tuple[float, np.ndarray]]:
    """The ``k`` lowest ``(f, point)`` among the finite points where ``mask``."""
    idx = np.flatnonzero(mask.ravel() & np.isfinite(f.ravel()))
    return [(float(f.ravel()[i]), pts[i]) for i in idx[np.argsort(f.ravel()[idx], kind="stable")][:k]]


def _local_minima(padded: np.ndarray) -> np.ndarray:
    """Boolean mask of the interior points of the padded 3-D array not above any neighbour (one step along
    each axis, diagonals included); the padding (one layer) holds the neighbours of the border points."""
    inner = tuple(slice(1, n - 1) for n in padded.shape)
    f = padded[inner]
    local = np.ones(f.shape, dtype=bool)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            for dk in (-1, 0, 1):
                if di or dj or dk:
                    a, b, c = (slice(1 + d, n + 1 + d) for d, n in zip((di, dj, dk), f.shape))
                    local &= f <= padded[a, b, c]
    return local


def _scales(S: SlopeStats) -> np.ndarray:
    """Natural scales of the relative SDs of the intercept and the slope: ``1 / sqrt(mean_j Q_j)`` diagonal."""
    Qbar = S.Q.mean(axis=0)
    return 1.0 / np.sqrt(np.maximum(np.diag(Qbar), 1e-300))


def certify_slope(S: SlopeStats, reml: bool, lam: np.ndarray) -> tuple[bool, str, list[np.ndarray]]:
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
    lam : ndarray (3,)
        lme4's theta ``(l11, l21, l22)`` in canonical form (``l11, l22 >= 0``).

    Returns
    -------
    ok : bool
    why : str
        "" when ok, else which check failed and by how much.
    restarts : list of ndarray
        Points (lme4's theta) to restart from when not ok: the point moved along the descent direction.
    """
    sc = _scales(S)
    l11, l21, l22 = (float(v) for v in lam)
    if l11 > 0 and l22 > 0:
        base, coords, rank = np.asarray(lam, dtype=float), [0, 1, 2], 2
    elif l11 == 0 and l21 == 0 and l22 == 0:
        base, coords, rank = np.zeros(3), [], 0
    else:
        v = np.array([l11, l21]) if l11 > 0 else np.array([0.0, np.hypot(l21, l22)])
        base, coords, rank = np.array([v[0], v[1], 0.0]), [0, 1], 1
    csc = np.array([sc[0], sc[1], sc[1]])
    h = 1e-6 * (np.abs(base) + csc)
    pts = [base] + [base + h[k] * np.eye(3)[k] for k in coords]
    ev = evaluate_slope(np.array(pts), S, reml)
    crit = float(ev["crit"][0])
    tol = float(opt.tolerance(crit))
    if not np.isfinite(crit):
        return False, "criterion not finite at the optimum", []
    g = ev["grad"][0][coords]
    H = np.stack([(ev["grad"][1 + j][coords] - g) / h[k] for j, k in enumerate(coords)], axis=1) if coords \
        else np.zeros((0, 0))
    dec = float(opt.decrement(g, H))
    if not dec <= tol:
        what = ("not stationary (gradient in lme4's theta " if rank == 2 else
                "not stationary among the rank-1 covariance matrices (gradient ")
        restarts = []
        if rank == 1:  # v moved downhill (a Newton step with |eigenvalues|, a short gradient step)
            lam_h, V = np.linalg.eigh(0.5 * (H + H.T))
            newton = -V @ ((V.T @ g) / np.maximum(np.abs(lam_h), 1e-12 * np.abs(lam_h).max() + 1e-300))
            short = -0.1 * (np.hypot(base[0], base[1]) + sc.min()) * g / max(np.hypot(g[0], g[1]), 1e-300)
            for step in (newton, short):
                v = base[:2] + step
                restarts.append(np.array([abs(v[0]), np.copysign(1.0, v[0]) * v[1], 0.0]))
        return False, opt.failure_message(what + np.array2string(g, precision=3) + "): predicted decrease",
                                          dec, tol), restarts
    if rank == 2:
        return True, "", []
    Gam = ev["gpsi"][0]
    if rank == 1:
        w = np.array([-base[1], base[0]]) / np.hypot(base[0], base[1])
    else:
        w = np.linalg.eigh(Gam)[1][:, 0]
    d = float(w @ Gam @ w)
    if d >= 0:
        return True, "", []
    psi = psi_of(base[None])[0]
    t = 1e-5 / float(w @ S.Q.mean(axis=0) @ w)
    psi_t = psi + t * np.outer(w, w)
    Gt = evaluate_slope(chol_of(psi_t)[None], S, reml)["gpsi"][0]
    curv = (float(w @ Gt @ w) - d) / t
    gain = float(opt.entry_gain(d, curv))
    if gain <= tol:
        return True, "", []
    step = -d / curv if curv > 0 else 100 * t
    what = ("covariance matrix singular (rank 1)" if rank == 1 else "covariance matrix 0") + \
        f" but d crit / d t = {d:.3g} < 0 along Psi + t w w' (w = {np.array2string(w, precision=3)}): " \
        "decrease available"
    return False, opt.failure_message(what, gain, tol), [chol_of(psi + step * np.outer(w, w))]
