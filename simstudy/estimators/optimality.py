"""First-order optimality certificates for the fast REML/ML engines (random intercept, nested, slope).

Every optimum the engines report is checked after the fit, on lme4's scale: the relative standard
deviations ``s`` (``theta = s^2`` the variance ratios; for the random slope lme4's Cholesky factor).

- **Free components** (``s_k > 0``): the gradient ``g`` of the criterion (-2 log-likelihood) w.r.t. the
  relative SDs must vanish *relative to the curvature*: with ``H`` the Hessian on the same scale (which must
  be positive definite: a minimum, not a saddle), the Newton decrement ``g' H^-1 g / 2`` -- the decrease a
  Newton step predicts -- must not exceed ``tol``. This is scale-aware: as ``crit`` is -2 log-likelihood,
  ``H / 2`` is the observed information and ``sqrt(2 / H_kk)`` the standard error of ``s_k``, so in one
  dimension the test says that the estimate lies within ``sqrt(tol)`` standard errors of the stationary
  point, whatever the units of the data, the number of groups or the size of the variance.
- **Components at 0**: on the SD scale the first derivative at 0 is always 0 (the criterion is even in
  ``s_k``), so the one-sided test is made on the variance-ratio scale: ``d = dcrit/dtheta_k`` at
  ``theta_k = 0`` (for a singular covariance matrix: the derivative along the null direction,
  ``w' (dcrit/dPsi) w``). ``d >= 0`` passes (0 is a local minimum in that direction); ``d < 0`` passes only
  when the decrease it allows, ``d^2 / (2 h)`` with ``h`` the curvature there, is at most ``tol`` (a
  variance that beats 0 only by rounding noise); ``d < 0`` with ``h <= 0`` fails.

``tol = CERT_RTOL * max(1, |crit|)`` (:func:`tolerance`): criterion values are computed to about 1e-13
relative (sums of positive terms, Cholesky log-determinants), so 1e-10 relative is far above rounding
noise and far below any difference that matters (an lme4 comparison at 1e-6 absolute on a criterion of
6,000 is 1.7e-10 relative); Newton-polished optima have decrements many orders of magnitude smaller.
"""

from __future__ import annotations

import numpy as np

#: Largest predicted decrease of the criterion, relative to max(1, |crit|), that a certified optimum allows.
CERT_RTOL = 1e-10


def tolerance(crit: np.ndarray | float) -> np.ndarray:
    """The certificate's tolerance on predicted decreases of the criterion.

    Parameters
    ----------
    crit : float or ndarray
        Criterion value(s) (-2 log-likelihood) at the optimum.

    Returns
    -------
    ndarray
        ``CERT_RTOL * max(1, |crit|)``, elementwise.
    """
    return CERT_RTOL * np.maximum(1.0, np.abs(np.asarray(crit, dtype=float)))


def decrement(g: np.ndarray, H: np.ndarray) -> np.ndarray:
    """Newton decrement ``g' H^-1 g / 2``: the decrease of the criterion a Newton step predicts.

    Parameters
    ----------
    g : ndarray (..., k)
        Gradients in the free coordinates.
    H : ndarray (..., k, k)
        Hessians in the same coordinates (symmetrised here).

    Returns
    -------
    ndarray (...)
        The decrement; ``inf`` where ``H`` is not positive definite or not finite (not a minimum); 0 where
        ``k == 0`` (no free coordinate). Each entry depends on its own ``g`` and ``H`` only (stacked
        eigen-decompositions and products are computed matrix by matrix).
    """
    g = np.asarray(g, dtype=float)
    H = np.asarray(H, dtype=float)
    out = np.zeros(g.shape[:-1])
    if g.shape[-1] == 0:
        return out
    Hs = 0.5 * (H + np.swapaxes(H, -1, -2))
    finite = np.isfinite(Hs).all(axis=(-1, -2)) & np.isfinite(g).all(axis=-1)
    Hs = np.where(finite[..., None, None], Hs, np.eye(g.shape[-1]))
    lam, V = np.linalg.eigh(Hs)
    pd = finite & (lam.min(axis=-1) > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        # V' g one matrix at a time (a stack's numbers do not depend on the other matrices of the stack)
        c = np.matmul(np.swapaxes(V, -1, -2), np.where(finite[..., None], g, 0.0)[..., None])[..., 0]
        dec = 0.5 * np.where(pd[..., None], c * c / lam, 0.0).sum(axis=-1)
    return np.where(pd, dec, np.inf)


def entry_gain(d: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Decrease of the criterion available by moving a component off 0 into the feasible region.

    Parameters
    ----------
    d : ndarray
        One-sided derivative into the feasible region at 0 (variance-ratio scale).
    h : ndarray
        Curvature along the same direction there.

    Returns
    -------
    ndarray
        0 where ``d >= 0`` (0 is a local minimum in that direction); ``d^2 / (2 h)`` where ``d < 0`` and
        ``h > 0``; ``inf`` where ``d < 0`` and ``h <= 0``, and where ``d`` is NaN.
    """
    d = np.asarray(d, dtype=float)
    h = np.asarray(h, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(h > 0, d * d / (2.0 * h), np.inf)
    return np.where(d >= 0, 0.0, gain)


def failure_message(what: str, value: float, tol: float) -> str:
    """The message of a fit whose certificate failed.

    Parameters
    ----------
    what : str
        Which check failed, ending with the name of the measured quantity.
    value, tol : float
        The quantity (a predicted decrease of the criterion) and its tolerance.

    Returns
    -------
    str
        ``"optimality check failed: <what> <value> > tolerance <tol>"``.
    """
    return f"optimality check failed: {what} {value:.3g} > tolerance {tol:.3g}"
