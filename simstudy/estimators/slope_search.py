"""Starting points of the random-slope engine (:mod:`simstudy.estimators.reml_slope`): local minima of the
criterion on grids of lme4's theta, for many replicates at once.

With few observations per group, or ``x`` on an unusual scale, the criterion can have several local minima;
Newton runs from the lowest local minima of a grid start in the right basins. One vectorised evaluation per
block of replicates (each replicate's points in one ``(points x groups) @ (groups x features)`` product,
:func:`simstudy.estimators.slope_stats.evaluate_points`): a replicate's starts do not depend on the batch.
"""

from __future__ import annotations

import numpy as np

from simstudy.estimators.slope_stats import SlopeStats, evaluate_points

#: Multiples of the natural scales on which :func:`grid_starts` scans the criterion: (diagonal,
#: off-diagonal) of the fine grid (539 points) and of the coarse one (48 points).
GRID_FINE = (np.array([0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 50.0]),
             np.array([-10.0, -5.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 5.0, 10.0]))
GRID_COARSE = (np.array([0.0, 0.3, 3.0, 30.0]), np.array([-3.0, 0.0, 3.0]))
#: Largest (grid points) x (groups) for the fine grid: its cost grows with the groups, while several
#: local minima far apart are a small-design problem.
GRID_BUDGET = 20_000
#: The polar grid of the rank-1 face: angles and radii (natural scales).
FACE_PHI = np.arange(36) * np.pi / 36
FACE_R = np.array([0.1, 0.3, 1.0, 3.0, 10.0, 30.0])


def _crit(S: SlopeStats, reml: bool, pts: np.ndarray) -> np.ndarray:
    """Criterion (R, m) at points ``pts`` (R, m, 3) of every replicate, ``inf`` where not finite."""
    out = evaluate_points(S, pts, None, reml, deriv=False)["crit"]
    return np.where(np.isfinite(out), out, np.inf)


def grid_starts(S: SlopeStats, reml: bool, k: int = 3) -> tuple[tuple[np.ndarray, np.ndarray],
                                                                tuple[np.ndarray, np.ndarray]]:
    """Up to ``k`` local minima of the criterion on a grid of lme4's theta per replicate (natural scales
    times the diagonal multiples for ``l11, l22`` and the off-diagonal ones for ``l21``: ``GRID_FINE``, or
    ``GRID_COARSE`` when points x groups would exceed ``GRID_BUDGET``), lowest first (``(1, 0, 1)`` when
    there is none). A grid point is a local minimum when no neighbour (one step along each axis, diagonals
    included) is lower. Also: up to two local minima per replicate of a polar grid of the rank-1 face
    (``FACE_PHI`` x ``FACE_R``, within the same budget), starts for Newton among the rank-1 matrices (with
    the slope and the intercept nearly perfectly correlated the optimum lies in a valley a few degrees wide
    that the grid above misses).

    Returns
    -------
    (owners, points), (face owners, face points)
        Owners (replicate of each start) increasing; each replicate's starts lowest first.
    """
    R, G = S.R, S.G
    sc = S.sc
    diag, off = GRID_FINE
    if diag.size**2 * off.size * G > GRID_BUDGET:
        diag, off = GRID_COARSE
    mult = np.stack([a.ravel() for a in np.meshgrid(diag, off, diag, indexing="ij")], axis=1)  # (M, 3)
    pts = mult[None] * np.stack([sc[:, 0], sc[:, 1], sc[:, 1]], axis=1)[:, None, :]
    shape = (diag.size, off.size, diag.size)
    f = _crit(S, reml, pts).reshape((R,) + shape)
    mask = _local_minima(np.pad(f, ((0, 0), (1, 1), (1, 1), (1, 1)), constant_values=np.inf))
    own, sel = _lowest(f.reshape(R, -1), mask.reshape(R, -1), k)
    none = np.setdiff1d(np.arange(R), own)
    g_own = np.concatenate([own, none])
    g_pts = np.concatenate([pts[own, sel], np.tile([1.0, 0.0, 1.0], (none.size, 1))])
    order = np.argsort(g_own, kind="stable")
    grid = (g_own[order], g_pts[order])
    face = (np.zeros(0, dtype=int), np.zeros((0, 3)))
    if FACE_PHI.size * FACE_R.size * G <= GRID_BUDGET:
        # v v', v = r (cos phi sc_0, sin phi sc_1); phi wraps with period pi (v and -v give the same Psi)
        ph, rr = np.meshgrid(FACE_PHI, FACE_R, indexing="ij")
        a = (rr * np.cos(ph)).ravel()[None] * sc[:, :1]
        b = (rr * np.sin(ph)).ravel()[None] * sc[:, 1:]
        fpts = np.stack([np.abs(a), np.where(a < 0, -b, b), np.zeros_like(a)], axis=-1)  # (R, 216, 3)
        ff = _crit(S, reml, fpts).reshape((R,) + ph.shape)
        wrapped = np.pad(np.concatenate([ff[:, -1:], ff, ff[:, :1]], axis=1)[..., None],
                         ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=np.inf)
        fmask = _local_minima(wrapped)[..., 0]
        own, sel = _lowest(ff.reshape(R, -1), fmask.reshape(R, -1), 2)
        face = (own, fpts[own, sel])
    return grid, face


def _lowest(f: np.ndarray, mask: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``f`` (R, M), the ``k`` lowest finite entries where ``mask`` (ties: the first), lowest
    first: their rows and columns."""
    masked = np.where(mask & np.isfinite(f), f, np.inf)
    order = np.argsort(masked, axis=1, kind="stable")[:, :k]
    vals = np.take_along_axis(masked, order, axis=1)
    rows, j = np.nonzero(np.isfinite(vals))
    return rows, order[rows, j]


def _local_minima(padded: np.ndarray) -> np.ndarray:
    """Boolean mask of the interior points of the padded arrays (R, a, b, c) not above any neighbour (one
    step along each axis, diagonals included); the padding (one layer) holds the neighbours of the border
    points."""
    inner = (slice(None),) + tuple(slice(1, n - 1) for n in padded.shape[1:])
    f = padded[inner]
    local = np.ones(f.shape, dtype=bool)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            for dk in (-1, 0, 1):
                if di or dj or dk:
                    sl = (slice(None),) + tuple(slice(1 + d, n + 1 + d) for d, n in zip((di, dj, dk), f.shape[1:]))
                    local &= f <= padded[sl]
    return local
