"""From chunk results to the replicate-level ``estimates`` Dataset and the ``summary`` Dataset.

A run's outputs are assembled by :func:`write_estimates`: cells are read from their checkpoints, written to
``estimates.nc`` and summarized a group at a time, so the parent's memory stays that of one group whatever
the number of replicates. :func:`estimates_dataset` builds the same Dataset in memory (the power search's
looks, tests); :func:`summary_dataset` summarizes any estimates Dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from simstudy.engine import store
from simstudy.engine.chunk import NOT_RUN, VALUES, ChunkResult
from simstudy.estimators.base import STATUSES
from simstudy.stats.measures import summarize, wald_pvalue

STATUS_ATTRS = {
    "flag_values": np.arange(-1, len(STATUSES), dtype=np.int8),
    "flag_meanings": " ".join(("not_run", *STATUSES)),
    "description": "fit status per replicate and estimator",
}


class _Grid:
    """Where results go: the design's grid (factors, estimators, parameters), its cells and true values."""

    def __init__(self, factors: Mapping[str, Sequence[Any]], cells: Sequence[Mapping[str, Any]],
                 truths: Sequence[Mapping[str, Mapping[str, float]]], estimators: Sequence[str], reps: int,
                 params: Sequence[str], nulls: Mapping[str, float] | None) -> None:
        params = list(params)
        params += list(dict.fromkeys(p for t in truths for by_est in t.values() for p in by_est if p not in params))
        self.factors, self.dims = factors, list(factors)
        self.shape = tuple(len(v) for v in factors.values())
        self.estimators, self.params, self.reps = list(estimators), params, reps
        self.truths = truths
        self.p_index = {p: i for i, p in enumerate(params)}
        self.e_index = {e: j for j, e in enumerate(self.estimators)}
        self.null = np.array([float((nulls or {}).get(p, 0.0)) for p in params])
        positions = [tuple(list(factors[d]).index(c[d]) for d in self.dims) for c in cells]
        self.flat = [int(np.ravel_multi_index(pos, self.shape)) if self.shape else 0 for pos in positions]
        #: the cell (index into ``cells``) at each flat grid position; None where the design's filter left none
        self.cell_at: list[int | None] = [None] * int(np.prod(self.shape, dtype=np.int64))
        for i, f in enumerate(self.flat):
            self.cell_at[f] = i

    def block(self, cells: Sequence[int | None], chunks: Mapping[int, Sequence[ChunkResult]]) -> dict[str, np.ndarray]:
        """The arrays of a group of grid positions (``cells``: the cell at each, or None), leading axis the
        group: values (g, rep, estimator, param), per fit (g, rep, estimator), ``true`` (g, estimator, param)."""
        g, reps, n_m, n_p = len(cells), self.reps, len(self.estimators), len(self.params)
        a: dict[str, np.ndarray] = {v: np.full((g, reps, n_m, n_p), np.nan) for v in VALUES}
        a["reported"] = np.zeros((g, reps, n_m, n_p), dtype=bool)
        a["status"] = np.full((g, reps, n_m), NOT_RUN, np.int8)
        a["n_warnings"] = np.zeros((g, reps, n_m), np.int32)
        a["message"] = np.full((g, reps, n_m), "", dtype=object)
        a["fit_seconds"] = np.full((g, reps, n_m), np.nan)
        a["generate_seconds"] = np.full((g, reps), np.nan)
        a["true"] = np.full((g, n_m, n_p), np.nan)
        texts: dict[str, str] = {}  # one str object per distinct message
        for k, i in enumerate(cells):
            if i is None:
                continue
            for est, by_param in self.truths[i].items():
                for p, v in by_param.items():
                    a["true"][k, self.e_index[est], self.p_index[p]] = v
            for c in chunks.get(i, ()):
                rows = slice(c.start - 1, c.start - 1 + c.n)
                cols = [self.p_index[p] for p in c.params]
                m_cols = [self.e_index[m] for m in c.estimators]
                at = np.ix_(np.arange(rows.start, rows.stop), m_cols, cols)
                for v in VALUES:
                    a[v][k][at] = c.values[v]
                a["reported"][k][at] = ~np.isnan(c.values["estimate"]) if c.reported is None else c.reported
                a["status"][k][rows, m_cols] = c.status
                a["n_warnings"][k][rows, m_cols] = c.n_warnings
                a["message"][k][rows, m_cols] = [[texts.setdefault(t, t) for t in row] for row in c.message.tolist()]
                a["fit_seconds"][k][rows, m_cols] = c.fit_seconds
                a["generate_seconds"][k][rows] = c.generate_seconds
        with_interval = np.isfinite(a["ci_lower"]) & np.isfinite(a["ci_upper"])
        a["pvalue"] = wald_pvalue(a["estimate"], a["se"], a["df"], self.null, z=with_interval)
        a["converged"] = np.isin(a["status"], OK_CODES)
        return a

    def dataset(self, a: Mapping[str, np.ndarray], lead: Sequence[str], coords: Mapping[str, Any]) -> xr.Dataset:
        """The estimates Dataset of arrays from :meth:`block` (leading axes reshaped to the dims ``lead``)."""
        coords = {**coords, "rep": np.arange(1, self.reps + 1), "estimator": self.estimators, "param": self.params}
        full = (*lead, "rep", "estimator", "param")
        per_fit = (*lead, "rep", "estimator")
        data: dict[str, Any] = {v: (full, a[v]) for v in VALUES}
        data["pvalue"] = (full, a["pvalue"], PVALUE_ATTRS | {"null": self.null})
        data["df"] = (full, a["df"], DF_ATTRS)
        data |= {
            "reported": (full, a["reported"], REPORTED_ATTRS),
            "status": (per_fit, a["status"], STATUS_ATTRS),
            "converged": (per_fit, a["converged"]),
            "n_warnings": (per_fit, a["n_warnings"]),
            "message": store.object_variable(per_fit, a["message"]) if a["message"].dtype == object
            else (per_fit, a["message"]),
            "fit_seconds": (per_fit, a["fit_seconds"], SECONDS),
            "generate_seconds": ((*lead, "rep"), a["generate_seconds"], SECONDS),
            "true": ((*lead, "estimator", "param"), a["true"]),
        }
        return xr.Dataset(data, coords=coords)


OK_CODES = [STATUSES.index("ok"), STATUSES.index("boundary")]
PVALUE_ATTRS = {"description": "two-sided Wald test of param = null from the fit's own t or z distribution"}
DF_ATTRS = {"description": "degrees of freedom of t intervals; NaN where z is used"}
REPORTED_ATTRS = {"description": "the fit listed the parameter (NaN estimate: not estimable)"}
SECONDS = {"units": "s"}


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
    """Lay chunk results out on the grid, in memory: dims (factors..., rep, estimator, param).

    ``truths`` holds, per cell, the true values by estimator (``{estimator: {param: value}}``, see
    :meth:`simstudy.study.Study.truths`); ``true`` has dims (factors..., estimator, param).
    ``pvalue`` is each fit's two-sided Wald test of ``param = nulls.get(param, 0)`` from its own reference
    distribution (t with its df, or z where it used a z interval; NaN where it has neither).
    Cells the design's filter left out, and replicates never run, hold NaN and status ``not_run``.
    Parameters are ``params`` (default: every parameter any chunk reports), then any true value no fit
    reported. This holds every replicate in memory; :func:`write_estimates` streams them to a file instead.
    """
    chunks = list(chunks)
    if params is None:
        params = list(dict.fromkeys(p for c in chunks for p in c.params))
    grid = _Grid(factors, cells, truths, estimators, reps, params, nulls)
    by_cell: dict[int, list[ChunkResult]] = {}
    for c in chunks:
        by_cell.setdefault(c.cell_index, []).append(c)
    a = grid.block(grid.cell_at, by_cell)
    a = {k: v.reshape(*grid.shape, *v.shape[1:]) for k, v in a.items()}
    a["message"] = a["message"].astype(str)
    return grid.dataset(a, grid.dims, {d: list(factors[d]) for d in grid.dims})


#: Values (replicates x estimators x parameters) assembled at once by :func:`write_estimates`: cells are
#: read, written and summarized in groups of about this size, so the parent's memory does not grow with
#: the replicates (a cell is never split).
GROUP_VALUES = 1 << 18
#: A group of more values than this is summarized a parameter at a time (with 2 or more estimators).
SPLIT_VALUES = 1 << 16
_CELL = "cell index"  # not an identifier: never a factor's name


def write_estimates(
    path: Any,
    factors: Mapping[str, Sequence[Any]],
    cells: Sequence[Mapping[str, Any]],
    truths: Sequence[Mapping[str, Mapping[str, float]]],
    estimators: Sequence[str],
    reps: int,
    chunks: Iterable[ChunkResult],
    params: Sequence[str],
    nulls: Mapping[str, float] | None = None,
    *,
    attrs: Callable[[], Mapping[str, Any]] = dict,
    level: float = 0.95,
    ref: str | None = None,
    alpha: float | None = None,
) -> xr.Dataset:
    """Write the estimates to ``path`` (netCDF4, the file :func:`estimates_dataset` would make, written
    atomically) group of cells by group, and return the run's summary (:func:`summary_dataset`), computed
    from each group's replicates and laid on the grid.

    ``chunks`` are read as they are needed (cells in order: :meth:`simstudy.engine.plan.Plan.results`
    yields them so; out of order they are held until their cell's turn). ``attrs()`` gives the file's
    global attributes, asked once every cell is written. Memory: one group of cells
    (:data:`GROUP_VALUES`), not the run.
    """
    grid = _Grid(factors, cells, truths, estimators, reps, params, nulls)
    n_m, n_p = len(grid.estimators), len(grid.params)
    per_cell = max(1, GROUP_VALUES // max(1, reps * n_m * max(n_p, 1)))
    todo = [i for i in grid.cell_at if i is not None]
    empty = [f for f, i in enumerate(grid.cell_at) if i is None]
    source = iter(chunks)
    held: dict[int, list[ChunkResult]] = {}
    summaries: list[tuple[list[int], int | None, xr.Dataset]] = []  # (positions, parameter or all, summary)
    coords = {d: list(factors[d]) for d in grid.dims}
    with store.netcdf_writer(path, coords | {"rep": np.arange(1, reps + 1), "estimator": grid.estimators,
                                              "param": grid.params}) as nc:
        variables: dict[str, Any] = {}

        def write(flat: Sequence[int], a: Mapping[str, np.ndarray], ds: xr.Dataset) -> None:
            if not variables:  # created from the first group's Dataset: names, dtypes and attrs as xarray's
                for name, var in ds.data_vars.items():
                    dims = tuple(grid.dims if d == _CELL else [d] for d in var.dims)
                    variables[name] = store.add_variable(nc, name, tuple(x for d in dims for x in d),
                                                         var.dtype, var.attrs)
            for k, f in enumerate(flat):
                pos = np.unravel_index(f, grid.shape) if grid.shape else ()
                for name, var in variables.items():
                    var[tuple(int(x) for x in pos)] = a[name][k]

        def summarize_group(flat: Sequence[int], a: Mapping[str, np.ndarray]) -> None:
            ds = grid.dataset(a, [_CELL], {_CELL: np.arange(len(flat))})
            write(flat, a, ds)
            if n_m < 2 or n_p < 2 or a["estimate"].size <= SPLIT_VALUES:
                summaries.append((list(flat), None, summary_dataset(ds, level=level, ref=ref, alpha=alpha)))
                return
            # a parameter at a time: every measure is one parameter's (rel_precision compares estimators,
            # which stay together), and the summary's temporaries are a parameter's, not the group's
            for j in range(n_p):
                part = summary_dataset(ds.isel(param=[j]), level=level, ref=ref, alpha=alpha)
                summaries.append((list(flat), j, part))

        seen = -1  # the last cell whose chunks have started to arrive
        for g in range(0, len(todo), per_cell):
            group = todo[g : g + per_cell]
            while seen <= group[-1]:
                c = next(source, None)
                if c is None:
                    seen = len(cells)
                    break
                if c.cell_index < group[0]:
                    raise ValueError(f"chunks out of cell order: a chunk of cell {c.cell_index} after its cell was "
                                     "written")
                held.setdefault(c.cell_index, []).append(c)
                seen = max(seen, c.cell_index)
            a = grid.block(group, held)
            for i in group:
                held.pop(i, None)
            summarize_group([grid.flat[i] for i in group], a)
        if empty:  # every position the design's filter left out holds the same (nothing)
            a = grid.block([None], {})
            ds = grid.dataset(a, [_CELL], {_CELL: np.arange(1)})
            write(empty, {k: np.broadcast_to(v, (len(empty), *v.shape[1:])) for k, v in a.items()}, ds)
            summaries.append((empty, None, summary_dataset(ds, level=level, ref=ref, alpha=alpha)))
        nc.setncatts(store.plain_attrs(dict(attrs())))
    return _on_grid(summaries, grid, coords)


def _on_grid(parts: list[tuple[list[int], int | None, xr.Dataset]], grid: _Grid, coords: Mapping[str, Any]
             ) -> xr.Dataset:
    """Summaries of groups of cells (leading dim ``_cell``), each of every parameter (None) or of one (its
    index), laid on the grid (dims factors..., ...): the summary of the whole grid at once."""
    first = parts[0][2]
    size = len(grid.cell_at)
    sizes = {"estimator": len(grid.estimators), "param": len(grid.params)}
    data = {}
    for name, var in first.data_vars.items():
        at = var.dims.index(_CELL)
        others = [d for d in var.dims if d != _CELL]
        rest = tuple(sizes.get(d, first.sizes[d]) for d in others)
        text = var.dtype.kind == "U"
        out = np.empty((size, *rest), dtype=object if text else var.dtype)
        for flat, param, part in parts:
            values = part[name].transpose(_CELL, *others).values
            if len(values) != len(flat):  # the empty positions: one summary for all
                values = np.broadcast_to(values, (len(flat), *values.shape[1:]))
            if param is None:
                out[flat] = values
            elif "param" in others:
                axis = others.index("param")
                at_param = (np.asarray(flat),) + tuple(param if d == "param" else slice(None) for d in others)
                out[at_param] = np.take(values, 0, axis=1 + axis)
            elif param == 0:  # the same in every parameter's summary
                out[flat] = values
        out = out.reshape(*grid.shape, *rest)
        if at:  # the factors where the cells were
            out = np.moveaxis(out, list(range(len(grid.shape))), list(range(at, at + len(grid.shape))))
        dims = (*others[:at], *grid.dims, *others[at:])
        data[name] = (dims, out.astype(str) if text else out, var.attrs)
    every = {**coords, **{d: first.coords[d].values for d in first.coords if d != _CELL},
             "estimator": grid.estimators, "param": grid.params}
    out = xr.Dataset(attrs=first.attrs)
    for name in first.variables:  # in the order of a summary of the whole grid (the coordinates included)
        if name == _CELL:
            out = out.assign_coords({d: every[d] for d in coords})
        elif name in data:
            out[name] = data[name]
        else:
            out = out.assign_coords({name: every[name]})
    return out


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
    masked = estimates[variables].copy(deep=False)  # the masked variables are replaced, not changed
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
