"""Sufficient statistics of the nested random-intercept model (reps within centres), stacked over replicates.

:class:`NestedLayout` is a grouping of rows into reps and of reps into centres, computed once and shared by
every replicate with the same grouping columns: rep sizes and their classes, *units* (the reps of one size
in one centre), *simple* centres (one unit) grouped into *types* (rep size, number of reps), *mixed* centres
(several units), and the centre sizes. :func:`batch_stats` turns a stack of replicates ``(R, q, rows)`` with
one layout into :class:`NestedStats` (the compressed statistics of :mod:`simstudy.estimators.reml_nested`,
and both boundary faces as random-intercept statistics); :func:`rep_level_stats` does it for one large
replicate in row chunks. Every replicate's numbers come from operations on that replicate alone (sums over
rows by ``np.add.reduceat`` along the last axis, one matrix product per replicate and class), so they are the
same whatever the stack. :meth:`NestedStats.stack` concatenates replicates with different layouts by padding
classes, types, mixed centres and units with empty entries, which the evaluation's left-to-right sums leave
unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simstudy.estimators import reml as ri
from simstudy.estimators.reml import GroupStats


@dataclass
class NestedLayout:
    """Rows in reps in centres, shared by the replicates of a stack.

    ``codes`` (rows,) each row's rep (reps numbered in centre order), ``n`` (Rn,) rep sizes, :attr:`rows` the
    rows grouped by rep (built on first use: large replicates, whose statistics are computed in row chunks,
    never need it); ``rep_centre`` (Rn,) each rep's centre,
    non-decreasing, 0..C-1. Rep-size classes: ``cls_sizes``, ``cls_cnt`` (K,), ``rep_cls`` (Rn,). Units (reps
    of one size in one centre): ``unit_order`` (Rn,) the reps sorted by (centre, class), ``unit_starts``,
    ``unit_N`` (U,), ``cls_unitpos`` positions in ``unit_order`` of each class's reps. Simple centres: types
    ``typ_n`` (rep size), ``typ_N`` (reps per centre), ``typ_cnt`` (centres), ``typ_units`` their units.
    Mixed centres: ``mix_units`` (Cm, Umax) their units (-1: padding), ``mix_n``, ``mix_N``. Centres:
    ``centre_starts``, ``reps_per_centre``, ``centre_n`` (rows), and their size classes ``c_sizes``,
    ``c_counts``, ``c_members``.
    """

    codes: np.ndarray
    n: np.ndarray
    rep_centre: np.ndarray
    C: int
    cls_sizes: np.ndarray
    cls_cnt: np.ndarray
    rep_cls: np.ndarray
    unit_order: np.ndarray
    unit_starts: np.ndarray
    unit_N: np.ndarray
    cls_unitpos: list[np.ndarray]
    typ_n: np.ndarray
    typ_N: np.ndarray
    typ_cnt: np.ndarray
    typ_units: list[np.ndarray]
    mix_units: np.ndarray
    mix_n: np.ndarray
    mix_N: np.ndarray
    centre_starts: np.ndarray
    reps_per_centre: np.ndarray
    centre_n: np.ndarray
    c_sizes: np.ndarray
    c_counts: np.ndarray
    c_members: list[np.ndarray]

    _rows: ri.Layout | None = None

    @property
    def Rn(self) -> int:
        return int(self.rep_centre.shape[0])

    @property
    def nrows(self) -> int:
        return int(self.codes.shape[0])

    @property
    def rows(self) -> ri.Layout:
        """The rows grouped by rep (:class:`simstudy.estimators.reml.Layout`)."""
        if self._rows is None:
            self._rows = ri.Layout.from_codes(self.codes, self.Rn)
        return self._rows

    @classmethod
    def build(cls, codes: np.ndarray, rep_centre: np.ndarray, C: int) -> "NestedLayout":
        """From each row's rep ``codes`` (0..Rn-1, every rep non-empty, reps numbered in centre order) and
        each rep's centre ``rep_centre`` (non-decreasing, every centre 0..C-1 present)."""
        rep_centre = np.asarray(rep_centre, dtype=np.intp)
        Rn = rep_centre.shape[0]
        codes = np.asarray(codes, dtype=np.intp)
        n = np.bincount(codes, minlength=Rn).astype(float)
        sizes, rep_cls, cnt = np.unique(n, return_inverse=True, return_counts=True)
        rep_cls = rep_cls.reshape(-1)
        K = sizes.shape[0]
        unit_order = np.lexsort((rep_cls, rep_centre))
        key = rep_centre[unit_order] * K + rep_cls[unit_order]
        unit_starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]).astype(np.intp)
        unit_N = np.diff(np.r_[unit_starts, Rn]).astype(float)
        unit_centre = rep_centre[unit_order][unit_starts]
        unit_cls = rep_cls[unit_order][unit_starts]
        cls_unitpos = [np.flatnonzero(rep_cls[unit_order] == k) for k in range(K)]
        per_centre = np.bincount(unit_centre, minlength=C)
        first_unit = np.concatenate([[0], np.cumsum(per_centre)[:-1]])
        simple = per_centre == 1
        su = first_unit[simple]  # the unit of each simple centre
        tkey = unit_cls[su] * (Rn + 1) + unit_N[su].astype(np.intp)
        tvals, tinv = np.unique(tkey, return_inverse=True)
        tinv = tinv.reshape(-1)
        typ_units = [su[tinv == t] for t in range(tvals.shape[0])]
        typ_n = sizes[tvals // (Rn + 1)]
        typ_N = (tvals % (Rn + 1)).astype(float)
        typ_cnt = np.array([float(u.size) for u in typ_units])
        mixed = np.flatnonzero(~simple)
        Umax = int(per_centre[mixed].max()) if mixed.size else 0
        mix_units = np.full((mixed.size, Umax), -1, dtype=np.intp)
        for i, c in enumerate(mixed):
            mix_units[i, : per_centre[c]] = first_unit[c] + np.arange(per_centre[c])
        valid = mix_units >= 0
        mix_n = np.where(valid, sizes[unit_cls[np.where(valid, mix_units, 0)]], 0.0)
        mix_N = np.where(valid, unit_N[np.where(valid, mix_units, 0)], 0.0)
        reps_per_centre = np.bincount(rep_centre, minlength=C)
        centre_starts = np.concatenate([[0], np.cumsum(reps_per_centre)[:-1]]).astype(np.intp)
        centre_n = np.bincount(rep_centre, weights=n, minlength=C)
        c_sizes, c_inv, c_cnt = np.unique(centre_n, return_inverse=True, return_counts=True)
        c_members = [np.flatnonzero(c_inv.reshape(-1) == k) for k in range(c_sizes.shape[0])]
        return cls(codes, n, rep_centre, C, sizes, cnt.astype(float), rep_cls, unit_order, unit_starts, unit_N,
                   cls_unitpos, typ_n, typ_N, typ_cnt, typ_units, mix_units, mix_n, mix_N, centre_starts,
                   reps_per_centre, centre_n, c_sizes, c_cnt.astype(float), c_members)


@dataclass
class NestedStats:
    """Compressed statistics of R replicates (leading axis R; see :mod:`simstudy.estimators.reml_nested`).

    ``W`` (R, q, q) within-rep cross products of ``[X y]``; rep-size classes ``cls_n``, ``cls_cnt`` (R, K) and
    ``Bw`` (R, K, q, q) the scatter of rep means about their unit means; simple-centre types ``typ_n`` (rep
    size), ``typ_N`` (reps per centre), ``typ_cnt`` (centres) (R, T) and ``Bc`` (R, T, q, q) ``sum zbar_c
    zbar_c'``; mixed centres ``mix_n``, ``mix_N`` (R, Cm, U) and ``mix_z`` (R, Cm, U, q) their units' rep
    sizes, numbers of reps and mean rep means; ``nobs``, ``nreps``, ``ncentres`` (R,); ``p``; the boundary
    faces ``rep_face`` (reps only) and ``centre_face`` (centres only) as random-intercept statistics; ``ss``
    (R, 3, q) diagonal sums of squares within reps, within centres and in total (between-within df).
    """

    W: np.ndarray
    cls_n: np.ndarray
    cls_cnt: np.ndarray
    Bw: np.ndarray
    typ_n: np.ndarray
    typ_N: np.ndarray
    typ_cnt: np.ndarray
    Bc: np.ndarray
    mix_n: np.ndarray
    mix_N: np.ndarray
    mix_z: np.ndarray
    nobs: np.ndarray
    nreps: np.ndarray
    ncentres: np.ndarray
    p: int
    rep_face: GroupStats
    centre_face: GroupStats
    ss: np.ndarray

    @property
    def R(self) -> int:
        return int(self.nobs.shape[0])

    def rep_stats(self) -> GroupStats:
        """Random intercept for reps only (theta_c = 0)."""
        return self.rep_face

    def centre_stats(self) -> GroupStats:
        """Random intercept for centres only (theta_r = 0)."""
        return self.centre_face

    def take(self, idx: np.ndarray | None = None, cols: np.ndarray | None = None) -> "NestedStats":
        """Replicates ``idx`` (default all); with ``cols`` only those fixed-effect columns (the response is kept)."""
        idx = np.arange(self.R) if idx is None else np.asarray(idx)
        keep = slice(None) if cols is None else np.append(cols, self.p)
        p = self.p if cols is None else len(cols)

        def sq(a: np.ndarray) -> np.ndarray:
            a = a[idx]
            return a if cols is None else a[..., keep, :][..., keep]

        return NestedStats(sq(self.W), self.cls_n[idx], self.cls_cnt[idx], sq(self.Bw), self.typ_n[idx],
                           self.typ_N[idx], self.typ_cnt[idx], sq(self.Bc), self.mix_n[idx], self.mix_N[idx],
                           self.mix_z[idx] if cols is None else self.mix_z[idx][..., keep], self.nobs[idx],
                           self.nreps[idx], self.ncentres[idx], p, self.rep_face.take(idx, cols),
                           self.centre_face.take(idx, cols), self.ss[idx] if cols is None else self.ss[idx][..., keep])

    @staticmethod
    def stack(stats: list["NestedStats"]) -> "NestedStats":
        """Concatenate replicates (same ``p``), padding classes, types, mixed centres and units with empty ones."""
        if len(stats) == 1:
            return stats[0]

        def cat(name: str, axes: tuple[int, ...]) -> np.ndarray:
            arrs = [getattr(s, name) for s in stats]
            top = [max(a.shape[ax] for a in arrs) for ax in axes]
            out = []
            for a in arrs:
                if any(a.shape[ax] != t for ax, t in zip(axes, top)):
                    width = [(0, 0)] * a.ndim
                    for ax, t in zip(axes, top):
                        width[ax] = (0, t - a.shape[ax])
                    a = np.pad(a, width)
                out.append(a)
            return np.concatenate(out)

        return NestedStats(cat("W", ()), cat("cls_n", (1,)), cat("cls_cnt", (1,)), cat("Bw", (1,)), cat("typ_n", (1,)),
                           cat("typ_N", (1,)), cat("typ_cnt", (1,)), cat("Bc", (1,)), cat("mix_n", (1, 2)),
                           cat("mix_N", (1, 2)), cat("mix_z", (1, 2)), cat("nobs", ()), cat("nreps", ()),
                           cat("ncentres", ()), stats[0].p, ri.stack_stats([s.rep_face for s in stats]),
                           ri.stack_stats([s.centre_face for s in stats]), cat("ss", ()))


def _gram(a: np.ndarray) -> np.ndarray:
    """``a a'`` per replicate for ``a`` (R, q, m)."""
    return np.matmul(a, np.swapaxes(a, 1, 2))


def compress(zbar: np.ndarray, W: np.ndarray, lay: NestedLayout, p: int) -> tuple[NestedStats, np.ndarray]:
    """:class:`NestedStats` of replicates from their rep means ``zbar`` (R, q, Rn) and within-rep cross
    products ``W`` (R, q, q); also returns ``X'X`` (R, p, p)."""
    R, q, Rn = zbar.shape
    nr = lay.n
    # boundary face 1: reps only
    K = lay.cls_sizes.shape[0]
    members = [np.flatnonzero(lay.rep_cls == k) for k in range(K)] if K > 1 else [None]
    Brep = np.empty((R, K, q, q))
    for k, mem in enumerate(members):
        Brep[:, k] = _gram(zbar if mem is None else zbar[:, :, mem])
    XtX = W[:, :p, :p].copy()
    for k in range(K):
        XtX += lay.cls_sizes[k] * Brep[:, k, :p, :p]
    rep_face = GroupStats(W, np.broadcast_to(lay.cls_sizes, (R, K)).copy(), np.broadcast_to(lay.cls_cnt, (R, K)).copy(),
                          Brep, np.full(R, float(nr.sum())), np.full(R, float(Rn)), p)
    # boundary face 2: centres only
    zc = np.add.reduceat(zbar * nr, lay.centre_starts, axis=2) / lay.centre_n  # (R, q, C)
    dc = zbar - np.repeat(zc, lay.reps_per_centre, axis=2)
    Wc = W + np.matmul(dc * nr, np.swapaxes(dc, 1, 2))
    Kc = lay.c_sizes.shape[0]
    Bcen = np.empty((R, Kc, q, q))
    for k, mem in enumerate(lay.c_members):
        Bcen[:, k] = _gram(zc if Kc == 1 else zc[:, :, mem])
    centre_face = GroupStats(Wc, np.broadcast_to(lay.c_sizes, (R, Kc)).copy(),
                             np.broadcast_to(lay.c_counts, (R, Kc)).copy(), Bcen, np.full(R, float(nr.sum())),
                             np.full(R, float(lay.C)), p)
    total = np.diagonal(Wc, axis1=1, axis2=2).copy()
    for k in range(Kc):
        total += lay.c_sizes[k] * np.diagonal(Bcen[:, k], axis1=1, axis2=2)
    ss = np.stack([np.diagonal(W, axis1=1, axis2=2), np.diagonal(Wc, axis1=1, axis2=2), total], axis=1)
    # units: reps of one size in one centre
    zs = zbar[:, :, lay.unit_order]
    zu = np.add.reduceat(zs, lay.unit_starts, axis=2) / lay.unit_N  # (R, q, U)
    dev = zs - np.repeat(zu, lay.unit_N.astype(np.intp), axis=2)
    Bw = np.empty((R, K, q, q))
    for k, pos in enumerate(lay.cls_unitpos):
        Bw[:, k] = _gram(dev[:, :, pos])
    T = lay.typ_n.shape[0]
    Bc = np.empty((R, T, q, q))
    for t, units in enumerate(lay.typ_units):
        Bc[:, t] = _gram(zu[:, :, units])
    valid = lay.mix_units >= 0
    mix_z = np.zeros((R,) + lay.mix_units.shape + (q,))
    if valid.any():
        mix_z[:, valid] = np.swapaxes(zu, 1, 2)[:, lay.mix_units[valid]]

    def rep(a: np.ndarray) -> np.ndarray:
        return np.broadcast_to(a, (R,) + a.shape).copy()

    S = NestedStats(W, rep(lay.cls_sizes), rep(lay.cls_cnt), Bw, rep(lay.typ_n), rep(lay.typ_N), rep(lay.typ_cnt), Bc,
                    rep(lay.mix_n), rep(lay.mix_N), mix_z, np.full(R, float(nr.sum())), np.full(R, float(Rn)),
                    np.full(R, float(lay.C)), p, rep_face, centre_face, ss)
    return S, XtX


def batch_stats(Z: np.ndarray, lay: NestedLayout, p: int) -> tuple[NestedStats, np.ndarray]:
    """Statistics of replicates stacked as ``Z`` (R, q, rows), rows ``[X' ; y']``, all with layout ``lay``;
    returns them and ``X'X`` (R, p, p). ``Z`` may be overwritten.

    Rep sums by ``np.add.reduceat`` over rows sorted by rep, the within-rep cross products from the centred
    rows (no cancellation), one matrix product per replicate (see :func:`compress` for the rest)."""
    if lay.rows.order is not None:
        Z = np.take(Z, lay.rows.order, axis=2)
    nr = lay.rows.n
    zbar = np.add.reduceat(Z, lay.rows.starts, axis=2) / nr  # (R, q, Rn)
    Z -= np.repeat(zbar, nr.astype(np.intp), axis=2)
    W = np.matmul(Z, np.swapaxes(Z, 1, 2))
    return compress(zbar, W, lay, p)


def rep_level_stats(y: np.ndarray, X: np.ndarray, lay: NestedLayout) -> tuple[NestedStats, np.ndarray]:
    """:func:`batch_stats` of one large replicate (R = 1) in row chunks (:func:`simstudy.estimators.reml.group_means`):
    no copy of the data is made."""
    _, means, W = ri.group_means(y, X, lay.codes, lay.Rn)
    return compress(means.T[None].copy(), W[None], lay, X.shape[1])
