"""From chunk results to the replicate-level ``estimates`` Dataset and the ``summary`` Dataset."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from simstudy.chunk import NOT_RUN, VALUES, ChunkResult
from simstudy.estimators.base import STATUSES
from simstudy.measures import summarize

STATUS_ATTRS = {
    "flag_values": np.arange(-1, len(STATUSES), dtype=np.int8),
    "flag_meanings": " ".join(("not_run", *STATUSES)),
    "description": "fit status per replicate and method",
}


def estimates_dataset(
    factors: Mapping[str, Sequence[Any]],
    cells: Sequence[Mapping[str, Any]],
    truths: Sequence[Mapping[str, float]],
    methods: Sequence[str],
    reps: int,
    chunks: Iterable[ChunkResult],
    params: Sequence[str] | None = None,
) -> xr.Dataset:
    """Lay chunk results out on the grid: dims (factors..., rep, method, param).

    Cells the design's filter left out, and replicates never run, hold NaN and status ``not_run``.
    Parameters are ``params`` (default: every parameter any chunk reports, which reads ``chunks`` into
    memory first), then any true value no fit reported.
    """
    if params is None:
        chunks = list(chunks)
        params = list(dict.fromkeys(p for c in chunks for p in c.params))
    params = list(params)
    params += list(dict.fromkeys(p for t in truths for p in t if p not in params))
    p_index = {p: i for i, p in enumerate(params)}
    dims = list(factors)
    shape = [len(v) for v in factors.values()]
    n_m, n_p = len(methods), len(params)
    values = {v: np.full((*shape, reps, n_m, n_p), np.nan) for v in VALUES}
    status = np.full((*shape, reps, n_m), NOT_RUN, np.int8)
    n_warnings = np.zeros((*shape, reps, n_m), np.int32)
    message = np.full((*shape, reps, n_m), "", dtype=object)
    fit_seconds = np.full((*shape, reps, n_m), np.nan)
    generate_seconds = np.full((*shape, reps), np.nan)
    true = np.full((*shape, n_p), np.nan)

    def position(cell: Mapping[str, Any]) -> tuple[int, ...]:
        return tuple(list(factors[d]).index(cell[d]) for d in dims)

    positions = [position(c) for c in cells]
    for pos, truth in zip(positions, truths):
        for p, v in truth.items():
            true[(*pos, p_index[p])] = v
    for c in chunks:
        pos = positions[c.cell_index]
        rows = slice(c.start - 1, c.start - 1 + c.n)
        cols = [p_index[p] for p in c.params]
        m_cols = [list(methods).index(m) for m in c.methods]
        block = np.ix_(np.arange(rows.start, rows.stop), m_cols, cols)
        for v in VALUES:
            values[v][pos][block] = c.values[v]
        status[pos][rows, m_cols] = c.status
        n_warnings[pos][rows, m_cols] = c.n_warnings
        message[pos][rows, m_cols] = c.message
        fit_seconds[pos][rows, m_cols] = c.fit_seconds
        generate_seconds[pos][rows] = c.generate_seconds

    coords = {d: list(factors[d]) for d in dims}
    coords |= {"rep": np.arange(1, reps + 1), "method": list(methods), "param": params}
    full = (*dims, "rep", "method", "param")
    per_fit = (*dims, "rep", "method")
    ok_codes = [STATUSES.index("ok"), STATUSES.index("boundary")]
    data = {v: (full, values[v]) for v in VALUES}
    data["df"] = (full, values["df"], {"description": "degrees of freedom of t intervals; NaN where z is used"})
    data |= {
        "status": (per_fit, status, STATUS_ATTRS),
        "converged": (per_fit, np.isin(status, ok_codes)),
        "n_warnings": (per_fit, n_warnings),
        "message": (per_fit, message.astype(str)),
        "fit_seconds": (per_fit, fit_seconds, {"units": "s"}),
        "generate_seconds": ((*dims, "rep"), generate_seconds, {"units": "s"}),
        "true": ((*dims, "param"), true),
    }
    ds = xr.Dataset(data, coords=coords)
    return ds


def summary_dataset(estimates: xr.Dataset, *, level: float = 0.95, ref: str | None = None) -> xr.Dataset:
    """Performance measures of a run, over ``rep``, counting only converged fits (ok or boundary).

    Adds per cell and method the counts ``n_boundary``, ``n_nonconverged``, ``n_fit_failed`` and the
    median ``fit_seconds``.
    """
    status = estimates["status"]
    usable = estimates["converged"]
    masked = estimates[["estimate", "se", "df", "true"]].copy()
    masked["estimate"] = estimates["estimate"].where(usable)
    masked["se"] = estimates["se"].where(usable)
    masked["present"] = status != NOT_RUN
    out = summarize(masked, level=level, ref=ref)
    counts = {f"n_{name}": (status == STATUSES.index(name)).sum("rep") for name in ("boundary", "nonconverged")}
    counts["n_fit_failed"] = (status == STATUSES.index("failed")).sum("rep")
    counts["fit_seconds"] = estimates["fit_seconds"].median("rep")
    return out.assign(counts)
