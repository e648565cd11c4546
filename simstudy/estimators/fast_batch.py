"""Batched fitting paths of :class:`~simstudy.estimators.fast_mixedlm.FastMixedLM` for the nested and the
random-slope models.

Both follow the random-intercept path: every replicate's design matrix is built, replicates with the same
fixed-effect columns and the same grouping columns (same values: their coding and layout are computed once,
looked up by the columns' bytes) are stacked, their sufficient statistics, rank and residual checks are
computed for the whole stack, and all replicates with the same number of estimable columns (nested) or the
same columns and groups (slope) are fitted together, in lockstep (:func:`~simstudy.estimators.reml_nested.
fit_nested_batch`, :func:`~simstudy.estimators.reml_slope.fit_slope_batch`). Every step treats each
replicate on its own, so a replicate's ``Fit`` is bit-identical whichever batch it is fitted in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from simstudy.estimators import reml as ri
from simstudy.estimators import reml_nested as nested
from simstudy.estimators import reml_slope as rs
from simstudy.estimators.base import Fit, FitSlots
from simstudy.estimators.formula import ColumnCache, group_codes, nest_codes
from simstudy.estimators.nested_stats import NestedLayout, NestedStats, batch_stats, rep_level_stats
from simstudy.types import Data

_SIMPLE_KINDS = "biuUS"
_RESIDUAL_MSG = ("no variation of the response left within groups after the fixed effects: var(residual) would be 0 "
                 "and the model is degenerate")


def _column_key(data: Data, names: Sequence[str]) -> tuple | None:
    """A hashable key of the grouping columns' values (None when a column is missing or not plain)."""
    parts: list = []
    for nm in names:
        if nm not in data:
            return None
        v = np.asarray(data[nm])
        if v.ndim != 1 or v.dtype.kind not in _SIMPLE_KINDS:
            return None
        parts += [v.dtype.str, v.tobytes()]
    return tuple(parts)


# ----------------------------------------------------------------------------------------------------- nested
def _nested_layout(est: Any, data: Data, nrows: int, cache: dict) -> NestedLayout:
    """The layout of a replicate's (outer, inner) grouping, shared with earlier replicates whose grouping
    columns hold the same values; raises the same failures as fitting the replicate alone would."""
    from simstudy.estimators.fast_mixedlm import _Failure

    outer, inner = est.groups
    key = _column_key(data, (outer, inner)) if nrows <= ri._CHUNK else None  # large replicates: no copies
    if key is not None:
        hit = cache.get(key)
        if isinstance(hit, _Failure):
            raise _Failure(str(hit))
        if hit is not None and hit.nrows == nrows:
            return hit
    try:
        cc, C = group_codes(data, outer)
        if inner not in data:
            raise _Failure(f"grouping column {inner!r} is not in the data")
        inner_ids = np.asarray(data[inner])
        if inner_ids.shape != cc.shape:
            raise _Failure(f"grouping columns {outer!r} and {inner!r} differ in length")
        if C < 2:
            raise _Failure(f"only one level of {outer!r}: var({outer}) is not identifiable next to the "
                           "intercept (need at least 2 groups)")
        # reps within centres; refused when the ids look crossed, or a variance is not identifiable
        rc, Rn, problem = nest_codes(cc, inner_ids, (outer, inner), est.nested_ids)
        if problem:
            raise _Failure(problem)
        if cc.shape[0] != nrows:
            raise _Failure(f"grouping column {outer!r} has {cc.shape[0]} rows, the response {nrows}")
    except _Failure as exc:
        if key is not None:
            cache[key] = exc
        raise
    rep_centre = np.zeros(Rn, dtype=np.intp)
    rep_centre[rc] = cc  # rep codes follow (centre, label) order, so reps are in centre order
    lay = NestedLayout.build(rc, rep_centre, C)
    if key is not None:
        cache[key] = lay
    return lay


def check_units(est: Any, idx: np.ndarray, names: tuple, S: Any, XtX: np.ndarray, units: list, fits: FitSlots) -> None:
    """Estimable columns and the within-variation check for a stack of replicates (random-intercept or nested
    statistics); appends ``(indices, names, keep, stats)`` units of replicates with the same estimable columns
    and records the degenerate ones as failed fits."""
    p = S.p
    full = ri.full_rank(XtX)
    F = np.flatnonzero(full)
    if F.size:
        SF = S if F.size == idx.size else S.take(F)
        ok = ri.within_residual_ok(SF.W, np.diagonal(XtX[F], axis1=1, axis2=2), SF.nobs)
        for i in idx[F][~ok]:
            fits[i] = Fit.failed(_RESIDUAL_MSG, est._param_names(names))
        if ok.any():
            units.append((idx[F][ok], names, np.arange(p), SF if ok.all() else SF.take(np.flatnonzero(ok))))
    for r in np.flatnonzero(~full):
        keep = ri.estimable_columns(XtX[r])
        Sk = S.take(np.array([r]), keep)
        if ri.within_residual_ok(Sk.W, np.diag(XtX[r])[keep][None], Sk.nobs)[0]:
            units.append((idx[r : r + 1], names, keep, Sk))
        else:
            fits[idx[r]] = Fit.failed(_RESIDUAL_MSG, est._param_names(names))


def fit_nested_all(est: Any, datasets: Sequence[Data], fits: FitSlots, infos: list, want_info: bool) -> None:
    """Nested model: replicates sharing the fixed-effect columns and the grouping layout are stacked and their
    statistics computed together (:func:`simstudy.estimators.nested_stats.batch_stats`), in sub-batches of
    about ``_BATCH_ROWS`` rows (larger replicates one at a time, in row chunks); then all replicates with
    the same number of estimable columns are fitted together."""
    from simstudy.estimators.fast_mixedlm import _BATCH_ROWS, _Failure

    cache = ColumnCache()
    buckets: dict[tuple, list] = {}
    units: list[tuple] = []
    for i, data in enumerate(datasets):
        try:
            y, X, names = est.formula.build(data)
        except ValueError as exc:
            fits[i] = Fit.failed(str(exc))
            continue
        try:
            est._precheck(y, X)
            lay = _nested_layout(est, data, y.shape[0], cache)
        except (_Failure, ValueError) as exc:
            fits[i] = Fit.failed(str(exc), est._param_names(names))
            continue
        if y.shape[0] > ri._CHUNK:
            S, XtX = rep_level_stats(y, X, lay)
            check_units(est, np.array([i]), names, S, XtX, units, fits)
            continue
        buckets.setdefault((names, id(lay)), [lay]).append((i, y, X))
    for (names, _), members in buckets.items():
        lay, members = members[0], members[1:]
        n, p = lay.nrows, len(names)
        step = max(1, _BATCH_ROWS // max(n, 1))
        for s in range(0, len(members), step):
            part = members[s : s + step]
            Z = np.empty((len(part), p + 1, n))
            for r, (_, y, X) in enumerate(part):
                Z[r, :p] = X.T
                Z[r, p] = y
            S, XtX = batch_stats(Z, lay, p)
            check_units(est, np.array([m[0] for m in part]), names, S, XtX, units, fits)
    by_p: dict[int, list] = {}
    for u in units:
        by_p.setdefault(len(u[2]), []).append(u)
    for us in by_p.values():
        res = nested.fit_nested_batch(NestedStats.stack([u[3] for u in us]), est.reml, est.groups[::-1])
        start = 0
        for idx, names, keep, S in us:
            sl = slice(start, start + idx.size)
            start += idx.size
            _nested_results(est, idx, names, keep, S, {k: v[sl] for k, v in res.items()}, fits, infos, want_info)


def _nested_results(est: Any, idx: np.ndarray, names: tuple, keep: np.ndarray, S: NestedStats, res: dict,
                    fits: FitSlots, infos: list, want_info: bool) -> None:
    outer, inner = est.groups
    R = idx.size
    df = None
    dfmsgs = [[] for _ in range(R)]
    if est.df_method is not None:
        df = _nested_bw_df(S)
        bad = np.any(~(df > 0), axis=1)
        for r in range(R):
            if est.df_method == "satterthwaite":
                dfmsgs[r].append("satterthwaite df not implemented for the nested model: between-within used")
            if bad[r]:
                dfmsgs[r].append("some t df are not positive: their intervals are NaN")
        df = np.where(df > 0, df, np.nan)
    dropped = est._dropped_message(names, keep)
    statuses, messages = [], []
    for r in range(R):
        msgs = [m for m in (dropped, res["message"][r]) if m] + dfmsgs[r]
        status = "ok"
        if not res["converged"][r]:
            status = "nonconverged"
        elif res["boundary"][r].any():
            status = "boundary"
            which = [f"var({nm})" for nm, b in zip((inner, outer), res["boundary"][r]) if b]
            msgs.append(" and ".join(which) + " estimated at the boundary (0)")
        statuses.append(status)
        messages.append("; ".join(msgs))
    s2 = res["sigma2"]
    tr, tc = res["theta"][:, 0], res["theta"][:, 1]
    vcs = np.stack([tc * s2, tr * s2, s2], axis=1)
    est._store_batch(fits, idx, names, keep, res["beta"], res["cov"], vcs, df, statuses, messages)
    if want_info:
        for r, i in enumerate(idx.tolist()):
            c = float(res["crit"][r])
            infos[i] = {"crit": c, "llf": -0.5 * c, "theta": np.array([tc[r], tr[r]]), "reml": est.reml}


def _nested_bw_df(S: NestedStats) -> np.ndarray:
    """Between-within df (R, p) of the nested model (see :class:`~simstudy.estimators.fast_mixedlm.FastMixedLM`)."""
    p = S.p
    within_rep, within_centre, scale = S.ss[:, 0, :p], S.ss[:, 1, :p], S.ss[:, 2, :p]
    centre_level = within_centre <= 1e-12 * scale
    rep_level = (within_rep <= 1e-12 * scale) & ~centre_level
    pc, pr = centre_level.sum(axis=1), rep_level.sum(axis=1)
    n, C, Rn = S.nobs, S.ncentres, S.nreps
    df = np.repeat((n - p - (Rn - pr - pc))[:, None], p, axis=1).astype(float)
    df = np.where(rep_level, (Rn - C - pr)[:, None], df)
    return np.where(centre_level, (C - pc)[:, None], df)


# ----------------------------------------------------------------------------------------------------- slope
def fit_slope_all(est: Any, datasets: Sequence[Data], fits: FitSlots, infos: list, want_info: bool) -> None:
    """Random intercept and slope: replicates sharing the fixed-effect columns and the grouping column are
    stacked and their statistics and checks computed together
    (:func:`simstudy.estimators.slope_stats.batch_stats`), in sub-batches of about ``_BATCH_ROWS`` rows; then
    all replicates with the same number of estimable columns and of groups are fitted together."""
    from simstudy.estimators.fast_mixedlm import _BATCH_ROWS, _Failure

    xname = est.slope
    cache = ColumnCache()
    buckets: dict[tuple, list] = {}
    units: list[tuple] = []
    for i, data in enumerate(datasets):
        try:
            y, X, names = est.formula.build(data)
        except ValueError as exc:
            fits[i] = Fit.failed(str(exc))
            continue
        try:
            est._precheck(y, X)
            if xname not in data:
                raise _Failure(f"slope column {xname!r} is not in the data")
            x = np.asarray(data[xname], dtype=float)
            if x.shape != y.shape or not np.isfinite(x).all():
                raise _Failure(f"slope column {xname!r}: missing or non-finite values, or wrong length")
            lay = est._layout(data, y.shape[0], cache)
        except (_Failure, ValueError) as exc:
            fits[i] = Fit.failed(str(exc), est._param_names(names))
            continue
        buckets.setdefault((names, id(lay)), [lay]).append((i, y, X, x))
    for (names, _), members in buckets.items():
        lay, members = members[0], members[1:]
        n, p = lay.nrows, len(names)
        step = max(1, _BATCH_ROWS // max(n, 1))
        for s in range(0, len(members), step):
            part = members[s : s + step]
            Z = np.empty((len(part), p + 1, n))
            xs = np.empty((len(part), n))
            for r, (_, y, X, x) in enumerate(part):
                Z[r, :p] = X.T
                Z[r, p] = y
                xs[r] = x
            S = rs.batch_stats(Z, xs, lay, p)
            _check_slope(est, np.array([m[0] for m in part]), names, S, units, fits)
    by_shape: dict[tuple, list] = {}
    for u in units:
        by_shape.setdefault((len(u[2]), u[3].G), []).append(u)
    for us in by_shape.values():
        res = rs.fit_slope_batch(rs.SlopeStats.stack([u[3] for u in us]), est.reml)
        start = 0
        for idx, names, keep, S in us:
            sl = slice(start, start + idx.size)
            start += idx.size
            _slope_results(est, idx, names, keep, S, {k: v[sl] for k, v in res.items()}, fits, infos, want_info)


def _check_slope(est: Any, idx: np.ndarray, names: tuple, S: rs.SlopeStats, units: list, fits: FitSlots) -> None:
    """The random-slope model's identifiability checks for a stack, in the order of a single fit; appends
    ``(indices, names, keep, stats)`` units of replicates that pass."""
    g, xname = est.groups[0], est.slope
    params = est._param_names(names)
    okx = S.wx.sum(axis=1) > 1e-12 * S.q11.sum(axis=1)
    for i in idx[~okx]:
        fits[i] = Fit.failed(f"{xname!r} is constant within every group of {g!r}: var({g}:{xname}) is not "
                             "identifiable", params)
    rows = np.flatnonzero(okx)
    full = ri.full_rank(S.XtX[rows])
    groups = [(rows[full], np.arange(S.p))] + [(rows[j : j + 1], ri.estimable_columns(S.XtX[rows[j]]))
                                              for j in np.flatnonzero(~full)]
    for r, keep in groups:
        if r.size == 0:
            continue
        Sk = S.take(r, keep if keep.size < S.p else None)
        xtx = np.diagonal(Sk.T, axis1=1, axis2=2)[:, :-1]
        ok = ri.within_residual_ok(Sk.W, xtx, Sk.nobs)
        for i in idx[r[~ok]]:
            fits[i] = Fit.failed(_RESIDUAL_MSG, params)
        # nothing left after a line per group (e.g. two observations in every group): the criterion falls
        # without bound as the random-effect variances grow (lme4 refuses nobs <= number of effects)
        Wl = _line_residual(Sk)
        ok2 = (Wl[:, -1, -1] > 1e-10 * Sk.W[:, -1, -1]) & ri.within_residual_ok(Wl, xtx, Sk.nobs)
        for i in idx[r[ok & ~ok2]]:
            fits[i] = Fit.failed("no variation of the response left after a separate intercept and slope per "
                                 "group: var(residual) would be 0 and the model is degenerate", params)
        good = np.flatnonzero(ok & ok2)
        if good.size:
            units.append((idx[r[good]], names, keep, Sk if good.size == r.size else Sk.take(good)))


def _line_residual(S: rs.SlopeStats) -> np.ndarray:
    """Cross products of ``[X y]`` (R, q, q) left after a separate least-squares line per group
    (``T - sum_j C_j' Q_j^+ C_j``, pseudo-inverse with relative tolerance 1e-12)."""
    R, G = S.R, S.G
    Q = np.empty((R, G, 2, 2))
    Q[..., 0, 0], Q[..., 0, 1], Q[..., 1, 0], Q[..., 1, 1] = S.q00, S.q01, S.q01, S.q11
    Qp = np.linalg.pinv(Q, rcond=1e-12, hermitian=True)
    Cj = np.stack([S.C[:, :, :G], S.C[:, :, G:]], axis=2).transpose(0, 3, 2, 1)  # (R, G, 2, q)
    D = np.matmul(Qp, Cj).reshape(R, 2 * G, -1)
    return S.T - np.matmul(np.swapaxes(Cj.reshape(R, 2 * G, -1), 1, 2), D)


def _slope_results(est: Any, idx: np.ndarray, names: tuple, keep: np.ndarray, S: rs.SlopeStats, res: dict,
                   fits: FitSlots, infos: list, want_info: bool) -> None:
    g = est.groups[0]
    R = idx.size
    dropped = est._dropped_message(names, keep)
    msgs = [[m for m in (dropped, res["message"][r]) if m] for r in range(R)]
    df = None
    if est.df_method is not None:
        pk = S.p
        between = np.diagonal(S.W, axis1=1, axis2=2)[:, :pk] <= 1e-12 * np.maximum(
            np.diagonal(S.T, axis1=1, axis2=2)[:, :pk], np.finfo(float).tiny)
        pb = between.sum(axis=1)[:, None]
        df = np.where(between, S.G - pb, S.nobs[:, None] - pk - (S.G - pb)).astype(float)
        bad = np.any(~(df > 0), axis=1)
        for r in range(R):
            if est.df_method == "satterthwaite":
                msgs[r].append("satterthwaite df not implemented for the random-slope model: between-within used")
            if bad[r]:
                msgs[r].append("some t df are not positive: their intervals are NaN")
        df = np.where(df > 0, df, np.nan)
    statuses = []
    for r in range(R):
        if not res["converged"][r]:
            statuses.append("nonconverged")
        elif res["boundary"][r]:
            statuses.append("boundary")
            msgs[r].append(f"covariance matrix of the random effects of {g} is singular (a relative SD of its "
                           "Cholesky factor below 1e-4): a variance at 0 or a correlation at +-1")
        else:
            statuses.append("ok")
    s2, psi = res["sigma2"], res["psi"]
    vcs = np.stack([psi[:, 0, 0] * s2, psi[:, 1, 1] * s2, psi[:, 0, 1] * s2, s2], axis=1)
    est._store_batch(fits, idx, names, keep, res["beta"], res["cov"], vcs, df, statuses, ["; ".join(m) for m in msgs])
    if want_info:
        for r, i in enumerate(idx.tolist()):
            c = float(res["crit"][r])
            infos[i] = {"crit": c, "llf": -0.5 * c, "theta": res["lam"][r], "psi": psi[r], "reml": est.reml}
