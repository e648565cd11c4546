"""From chunk results to the replicate-level ``estimates`` Dataset and the ``summary`` Dataset."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from simstudy.engine.chunk import NOT_RUN, VALUES, ChunkResult
from simstudy.estimators.base import STATUSES
from simstudy.stats.measures import summarize, wald_pvalue

STATUS_ATTRS = {
    "flag_values": np.arange(-1, len(STATUSES), dtype=np.int8),
    "flag_meanings": " ".join(("not_run", *STATUSES)),
    "description": "fit status per replicate and estimator",
}


def estimates_dataset(
    factors: Mapping[str, Sequence[Any]],
    cells: Sequence[Mapping[str, Any]],
    truths: Sequence[Mapping[str, Mapping[str, float]]],
    estimators: Sequence[str],
    reps: int,
    chunks: Iterable[ChunkResult],
    params: Sequence[str] | None = None,
    nulls: Mapping[str, float] | None = None,
) -> xr.Dataset:
    """Lay chunk results out on the grid: dims (factors..., rep, estimator, param).

    ``truths`` holds, per cell, the true values by estimator (``{estimator: {param: value}}``, see
    :meth:`simstudy.study.Study.truths`); ``true`` has dims (factors..., estimator, param).
    ``pvalue`` is each fit's two-sided Wald test of ``param = nulls.get(param, 0)`` from its own reference
    distribution (t with its df, or z where it used a z interval; NaN where it has neither).
    Cells the design's filter left out, and replicates never run, hold NaN and status ``not_run``.
    Parameters are ``params`` (default: every parameter any chunk reports, which reads ``chunks`` into
    memory first), then any true value no fit reported.
    """
    if params is None:
        chunks = list(chunks)
        params = list(dict.fromkeys(p for c in chunks for p in c.params))
    params = list(params)
    params += list(dict.fromkeys(p for t in truths for by_est in t.values() for p in by_est if p not in params))
    p_index = {p: i for i, p in enumerate(params)}
    dims = list(factors)
    shape = [len(v) for v in factors.values()]
    n_m, n_p = len(estimators), len(params)
    values = {v: np.full((*shape, reps, n_m, n_p), np.nan) for v in VALUES}
    reported = np.zeros((*shape, reps, n_m, n_p), dtype=bool)
    status = np.full((*shape, reps, n_m), NOT_RUN, np.int8)
    n_warnings = np.zeros((*shape, reps, n_m), np.int32)
    message = np.full((*shape, reps, n_m), "", dtype=object)
    fit_seconds = np.full((*shape, reps, n_m), np.nan)
    generate_seconds = np.full((*shape, reps), np.nan)
    true = np.full((*shape, n_m, n_p), np.nan)

    def position(cell: Mapping[str, Any]) -> tuple[int, ...]:
        return tuple(list(factors[d]).index(cell[d]) for d in dims)

    positions = [position(c) for c in cells]
    e_index = {e: j for j, e in enumerate(estimators)}
    for pos, truth in zip(positions, truths):
        for est, by_param in truth.items():
            for p, v in by_param.items():
                true[(*pos, e_index[est], p_index[p])] = v
    for c in chunks:
        pos = positions[c.cell_index]
        rows = slice(c.start - 1, c.start - 1 + c.n)
        cols = [p_index[p] for p in c.params]
        m_cols = [list(estimators).index(m) for m in c.estimators]
        block = np.ix_(np.arange(rows.start, rows.stop), m_cols, cols)
        for v in VALUES:
            values[v][pos][block] = c.values[v]
        reported[pos][block] = ~np.isnan(c.values["estimate"]) if c.reported is None else c.reported
        status[pos][rows, m_cols] = c.status
        n_warnings[pos][rows, m_cols] = c.n_warnings
        message[pos][rows, m_cols] = c.message
        fit_seconds[pos][rows, m_cols] = c.fit_seconds
        generate_seconds[pos][rows] = c.generate_seconds

    coords = {d: list(factors[d]) for d in dims}
    coords |= {"rep": np.arange(1, reps + 1), "estimator": list(estimators), "param": params}
    full = (*dims, "rep", "estimator", "param")
    per_fit = (*dims, "rep", "estimator")
    ok_codes = [STATUSES.index("ok"), STATUSES.index("boundary")]
    data = {v: (full, values[v]) for v in VALUES}
    null = np.array([float((nulls or {}).get(p, 0.0)) for p in params])
    with_interval = np.isfinite(values["ci_lower"]) & np.isfinite(values["ci_upper"])
    data["pvalue"] = (full, wald_pvalue(values["estimate"], values["se"], values["df"], null, z=with_interval),
                      {"description": "two-sided Wald test of param = null from the fit's own t or z distribution",
                       "null": null})
    data["df"] = (full, values["df"], {"description": "degrees of freedom of t intervals; NaN where z is used"})
    data |= {
        "reported": (full, reported, {"description": "the fit listed the parameter (NaN estimate: not estimable)"}),
        "status": (per_fit, status, STATUS_ATTRS),
        "converged": (per_fit, np.isin(status, ok_codes)),
        "n_warnings": (per_fit, n_warnings),
        "message": (per_fit, message.astype(str)),
        "fit_seconds": (per_fit, fit_seconds, {"units": "s"}),
        "generate_seconds": ((*dims, "rep"), generate_seconds, {"units": "s"}),
        "true": ((*dims, "estimator", "param"), true),
    }
    ds = xr.Dataset(data, coords=coords)
    return ds


def summary_dataset(estimates: xr.Dataset, *, level: float = 0.95, ref: str | None = None,
                    alpha: float | None = None) -> xr.Dataset:
    """Performance measures of a run, over ``rep``, counting only converged fits (ok or boundary).

    Coverage and power use each fit's own interval (``ci_lower``, ``ci_upper``, at the estimator's level):
    a fit without one (a t interval whose df could not be computed, say) is left out of them and counted
    in ``note``, never replaced by a z interval. ``ref`` is the reference estimator of ``rel_precision``.
    A parameter that converged fits leave NaN is reported in ``note`` as ``not estimable: <reason>``, the
    reason taken from the fits' messages. Adds per cell and estimator the counts ``n_boundary``,
    ``n_nonconverged``, ``n_fit_failed`` and the median ``fit_seconds``.

    Power (``pvalue < alpha``, ``alpha`` default ``1 - level``) comes in two conventions: ``power`` among
    the converged fits with a test (failures excluded, with ``power_lower``/``power_upper`` its exact
    interval) and ``power_all`` among all replicates run, failed or non-converged fits counting as
    non-rejections (simr's convention).
    """
    status = estimates["status"]
    usable = estimates["converged"]
    tested = "pvalue" in estimates  # not in the outputs of simstudy 0.1
    variables = ["estimate", "se", "df", "true", "ci_lower", "ci_upper"] + (["pvalue"] if tested else [])
    masked = estimates[variables].copy()
    for var in ("estimate", "se", "ci_lower", "ci_upper", "pvalue")[: 5 if tested else 4]:
        masked[var] = estimates[var].where(usable)
    masked["present"] = status != NOT_RUN
    out = summarize(masked, level=level, ref=ref, use_limits=True, alpha=alpha)
    if tested:
        cut = 1 - level if alpha is None else alpha
        run = (status != NOT_RUN).sum("rep")
        hits = (masked["pvalue"] < cut).sum("rep")
        out["power_all"] = (hits / run.where(run > 0)).assign_attrs(
            description="rejections among all replicates run: failed and non-converged fits count as non-rejections")
        out["power_all_mcse"] = np.sqrt(out["power_all"] * (1 - out["power_all"]) / run.where(run > 0))
    counts = {f"n_{name}": (status == STATUSES.index(name)).sum("rep") for name in ("boundary", "nonconverged")}
    counts["n_fit_failed"] = (status == STATUSES.index("failed")).sum("rep")
    counts["fit_seconds"] = estimates["fit_seconds"].median("rep")
    counts["first_failure"] = _first_failure(estimates)
    out = out.assign(counts)
    _not_estimable_notes(estimates, out)
    return out


def _first_failure(estimates: xr.Dataset) -> xr.DataArray:
    """Per cell and estimator, the message of the first failed or non-converged fit ("" if none)."""
    bad = estimates["status"].isin([STATUSES.index("nonconverged"), STATUSES.index("failed")])
    message = estimates["message"].where(bad, "")
    first = bad.argmax("rep")
    return message.isel(rep=first).where(bad.any("rep"), "").astype(str).drop_vars("rep", errors="ignore")


#: The note of a parameter that an estimator does not report at all (no row in printed tables).
NOT_REPORTED = "not reported by this estimator"


def _not_estimable_notes(estimates: xr.Dataset, summary: xr.Dataset) -> None:
    """Write ``not estimable: <reason>`` into ``summary["note"]`` where converged fits left a parameter NaN."""
    listed = estimates["reported"] if "reported" in estimates else estimates["estimate"].notnull()
    usable = estimates["converged"] & listed
    n_usable = usable.sum("rep")
    missing = (usable & estimates["estimate"].isnull()).sum("rep")
    gaps = (missing > 0) & (n_usable > 0)
    note = summary["note"].transpose(*gaps.dims).values.astype(object)
    absent = (listed.sum("rep") == 0) & (summary["n_rep"] > 0)
    note[absent.transpose(*gaps.dims).values] = NOT_REPORTED
    stacked = gaps.stack(_i=gaps.dims)
    for i in np.flatnonzero(stacked.values):
        sel = {d: stacked.indexes["_i"][i][k] for k, d in enumerate(gaps.dims)}
        param = str(sel["param"])
        at = {d: v for d, v in sel.items() if d != "param"}
        messages = estimates["message"].sel(at).values
        nan_fit = (estimates["estimate"].sel(sel).isnull() & usable.sel(sel)).values
        reason = _reason(param, messages[nan_fit])
        k, n = int(missing.sel(sel)), int(n_usable.sel(sel))
        text = f"not estimable: {reason}" if k == n else f"not estimable in {k} of {n} converged fits: {reason}"
        pos = tuple(list(gaps.coords[d].values).index(sel[d]) for d in gaps.dims)
        note[pos] = text if not note[pos] or note[pos] == "fewer than 2 valid replicates" else f"{note[pos]}; {text}"
    summary["note"] = (gaps.dims, note.astype(str))


def _reason(param: str, messages: np.ndarray) -> str:
    """The clause of the first message that names ``param`` (e.g. ``C(method)[T.1] is collinear with the
    fixed effects of instructor``), else the first non-empty message, else a generic reason."""
    for message in messages:
        for clause in str(message).split("; "):
            if param in clause:
                return clause.removeprefix("not estimable: ").strip()
    first = next((str(m) for m in messages if str(m)), "")
    return first or "the estimator returned no value"
