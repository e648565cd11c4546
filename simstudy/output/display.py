"""Plain-text tables of a summary Dataset, for the terminal."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from simstudy.design import cell_label, fmt  # noqa: F401 - re-exported for the output modules
from simstudy.engine.store import json_attr, read_netcdf
from simstudy.stats.measures import MEASURES

#: Measures shown by ``simstudy run`` and ``simstudy show``.
COMPACT: tuple[str, ...] = ("bias", "coverage", "rmse")


def cell(value: float, mcse: float | None, digits: int = 4) -> str:
    """``value (mcse)`` with fixed decimals; ``-`` for NaN."""
    if not np.isfinite(value):
        return "-"
    text = f"{value:.{digits}f}"
    if mcse is not None and np.isfinite(mcse):
        text += f" ({mcse:.{digits}f})"
    return text


def _render(header: Sequence[str], rows: list[Sequence[str]], right_from: int = 1) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for r in [header, *rows]:
        parts = [str(v).ljust(w) if i < right_from else str(v).rjust(w)
                 for i, (v, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(parts).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _groups(summary: xr.Dataset, exclude: Sequence[str]) -> list[dict[str, object]]:
    dims = [d for d in summary["bias"].dims if d not in exclude]
    values = [summary.coords[d].values.tolist() for d in dims]
    return [dict(zip(dims, combo)) for combo in itertools.product(*values)]


def _label(sel: dict[str, object]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sel.items())


def format_wide(
    summary: xr.Dataset, measures: Sequence[str] = MEASURES, digits: int = 4
) -> str:
    """Measures down, methods across, ``value (MCSE)``, one block per design cell and parameter."""
    blocks = []
    methods = summary.coords["estimator"].values.tolist() if "estimator" in summary.dims else [None]
    for sel in _groups(summary, exclude=("estimator",)):
        sub = summary.sel(sel) if sel else summary
        rows: list[Sequence[str]] = []
        for name in measures:
            if name == "rel_precision" and not summary.attrs.get("ref"):
                continue
            row = [name]
            for m in methods:
                s = sub.sel({"estimator": m}) if m is not None else sub
                row.append(cell(float(s[name]), float(s[f"{name}_mcse"]), digits))
            rows.append(row)
        for name in ("n_valid", "n_rep"):
            rows.append([name] + [str(int((sub.sel({"estimator": m}) if m is not None else sub)[name]))
                                  for m in methods])
        notes = {str(n) for n in np.atleast_1d(sub["note"].values) if str(n)}
        header = ["measure"] + [str(m) for m in methods]
        title = _label(sel) if sel else "all"
        block = [title] + _render(header, rows)
        block += [f"note: {n}" for n in sorted(notes)]
        blocks.append("\n".join(block))
    return "\n\n".join(blocks)


def format_run(summary: xr.Dataset, out: object) -> str:
    """What ``simstudy run`` prints at the end: the compact table of the study's featured parameters, the
    cells stopped early, and one line with the size of the run, its time and where the results are."""
    prov = json_attr(summary, "provenance", {}) or {}
    run = json_attr(summary, "run", {}) or {}
    lines = [format_compact(summary, params=json_attr(summary, "show", []) or None)]
    for cell in prov.get("stopped_early", []):
        lines.append(f"stopped early (failure rate above {run.get('max_failure_rate')}): {cell_label(cell)}")
    ran = prov.get("executed") or {}
    where = {"dask": f"{ran.get('workers')} Dask workers", "loky": f"{ran.get('workers')} jobs",
             "in-process": "1 job"}.get(ran.get("backend", ""), "all from checkpoints")
    factors = [d for d in summary["bias"].dims if d not in ("estimator", "param")]
    cells = int(np.prod([summary.sizes[d] for d in factors])) if factors else 1
    lines.append(f"\n{cells} cells x {run.get('reps')} replicates x {summary.sizes.get('estimator', 1)} estimators "
                 f"in {float(prov.get('seconds', 0.0)):.1f} s ({where}); results in {out}/ (estimates.nc, summary.nc, "
                 "study.json)")
    return "\n".join(lines)


def run_warnings(summary: xr.Dataset) -> list[str]:
    """Lines to print after a run: cells where some estimator failed on every replicate (a factor value
    the DGP or an estimator cannot handle, say), with the first failure's message."""
    if "n_fit_failed" not in summary or "first_failure" not in summary:
        return []
    failed = (summary["n_valid"].max("param") == 0) & (summary["n_rep"].max("param") > 0)
    cells = failed.any("estimator")
    if not bool(cells.any()):
        return []
    factors = [d for d in cells.dims]
    stacked = failed.stack(_cell=factors) if factors else failed.expand_dims("_cell")
    first = next(i for i in range(stacked.sizes["_cell"]) if bool(stacked.isel(_cell=i).any()))
    one = stacked.isel(_cell=first)
    estimator = str(one["estimator"].values[int(np.argmax(one.values))])
    where = {d: one.coords[d].values.item() for d in factors}
    sel = {**where, "estimator": estimator}
    message = str(summary["first_failure"].sel(sel).values)
    total = int(np.prod([summary.sizes[d] for d in factors])) if factors else 1
    return [f"every replicate failed in {int(cells.sum())} of {total} cells for some estimator, e.g. "
            f"{cell_label(where) or 'the only cell'}, {estimator}: {message or 'no message'}"]


def show_run(out: Path, measures: Sequence[str] = COMPACT, params: Sequence[str] | None = None) -> str:
    """The compact summary table of a finished run in ``out`` (``simstudy show``); ``ValueError`` for an
    unfinished or inconsistent run, naming the command that completes it, or an unknown measure."""
    from simstudy.engine.runner import check_complete

    if not out.is_dir():
        raise ValueError(f"{str(out)!r} is not a run's output directory")
    check_complete(out)
    summary = read_netcdf(out / "summary.nc")
    unknown = [m for m in measures if m not in summary or f"{m}_mcse" not in summary]
    if unknown:
        have = [m for m in summary.data_vars if f"{m}_mcse" in summary]
        raise ValueError(f"unknown measure {unknown[0]!r}; choose from {', '.join(have)}")
    missing = [p for p in params or () if p not in summary.coords["param"].values]
    if missing:
        raise ValueError(f"unknown parameter {missing[0]!r}; choose from "
                         f"{', '.join(map(str, summary.coords['param'].values))}")
    return format_compact(summary, measures=measures, params=params or json_attr(summary, "show", []) or None)


def row_kind(s: xr.Dataset) -> str:
    """What a table shows for one (cell, method, param) of a summary: ``"skip"`` (nothing run, or a
    parameter the method does not report), ``"not_estimable"`` (converged fits that cannot estimate it),
    or ``"values"``."""
    attempted = int(s["n_rep"])
    note = str(s["note"].values) if "note" in s else ""
    if attempted == 0 or note == "not reported by this estimator":
        return "skip"
    if note.startswith("not estimable:"):
        return "not_estimable"
    failures = sum(int(s[v]) for v in ("n_fit_failed", "n_nonconverged") if v in s)
    if int(s["n_valid"]) == 0 and failures == 0 and "note" not in s:
        return "skip"  # an older summary without notes: a parameter the method does not estimate
    return "values"


def format_compact(
    summary: xr.Dataset,
    measures: Sequence[str] = COMPACT,
    digits: int = 4,
    params: Sequence[str] | None = None,
) -> str:
    """One row per design cell, method and parameter: the given measures with MCSE, and counts.

    Factors held at one level go into a header line. Rows of a parameter a method does not report are
    left out. A parameter that is not estimable (or not estimable in some replicates) gets a numbered
    footnote with the reason, so it is never silently missing. ``params`` limits the parameters shown.
    """
    fixed = {d: summary.coords[d].values[0] for d in summary["bias"].dims
             if summary.sizes[d] == 1 and d not in ("estimator", "param")}
    if params:
        wanted = [p for p in params if p in summary.coords["param"].values]
        summary = summary.sel({"param": wanted})
    summary = summary.isel({d: 0 for d in fixed})
    dims = [d for d in summary["bias"].dims]
    header = [*dims, *measures, "valid/reps"]
    rows = []
    footnotes: dict[str, int] = {}
    for sel in _groups(summary, exclude=()):
        s = summary.sel(sel)
        kind = row_kind(s)
        if kind == "skip":
            continue
        row = [str(sel[d]) for d in dims]
        row += [cell(float(s[m]), float(s[f"{m}_mcse"]), digits) for m in measures]
        counts = f"{int(s['n_valid'])}/{int(s['n_rep'])}"
        note = str(s["note"].values) if "note" in s else ""
        if "not estimable" in note:
            text = next(part for part in note.split("; ") if "not estimable" in part)
            counts += f" [{footnotes.setdefault(text, len(footnotes) + 1)}]"
        row.append(counts)
        rows.append(row)
    lines = _render(header, rows, right_from=len(dims))
    if fixed:
        lines.insert(0, "fixed: " + ", ".join(f"{k}={v}" for k, v in fixed.items()))
    lines += [f"[{k}] {text}" for text, k in footnotes.items()]
    return "\n".join(lines)
