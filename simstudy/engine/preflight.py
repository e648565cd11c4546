"""Checks before a run starts: one replicate of the first cell, so bad input fails in a second, clearly.

Catches a DGP that raises, returns something that is not a table of equal-length 1-D columns, or returns
NaN; an estimator that names a column the data do not have; and true values whose names match no
estimator's parameter, or parameters without a true value.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from simstudy.design import cell_label
from simstudy.engine.chunk import safe_fit
from simstudy.engine.dispatch import die_with_parent
from simstudy.engine.rng import cell_key, replicate_rng
from simstudy.estimators.formula import Formula


def check_data(data: Any, cell: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` unless ``data`` is a table of equal-length, NaN-free 1-D columns."""
    if not isinstance(data, (Mapping, pd.DataFrame)) or len(data.keys()) == 0:
        raise ValueError(f"the DGP must return a dict of columns or a DataFrame, got {type(data).__name__} "
                         f"(cell {cell_label(cell)})")
    lengths = set()
    for name in data.keys():
        col = np.asarray(data[name])
        if col.ndim != 1:
            raise ValueError(f"the DGP's column {name!r} is not 1-D (shape {col.shape}; cell {cell_label(cell)})")
        lengths.add(col.shape[0])
        if col.dtype.kind in "fc" and not np.isfinite(col).all():
            raise ValueError(f"the DGP returned NaN or infinite values in column {name!r} (cell {cell_label(cell)})")
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError(f"the DGP's columns have different or zero lengths {sorted(lengths)} "
                         f"(cell {cell_label(cell)})")


def check_estimator(method: str, estimator: Any, data: Any) -> None:
    """Raise ``ValueError`` if an estimator's formula or grouping names a column ``data`` lacks."""
    formula = getattr(estimator, "formula", None)
    if isinstance(formula, Formula):
        try:
            formula.check_columns(data)
        except ValueError as exc:
            raise ValueError(f"estimator {method!r}: {exc}") from None
    for attr in ("groups", "fixed_effects"):
        value = getattr(estimator, attr, None)
        names = [value] if isinstance(value, str) else list(value or [])
        for name in names:
            if isinstance(name, str) and name not in data:
                raise ValueError(f"estimator {method!r}: {attr} column {name!r} is not in the data "
                                 f"(columns: {', '.join(map(str, data.keys()))})")


def preflight(study: Any, cell: Mapping[str, Any], seed: int, *, timeout: float | None = None,
              isolate: bool = True) -> tuple[float, dict[str, tuple[str, ...]]]:
    """:func:`check_first_replicate`, in a forked child process where the platform can fork (``isolate``),
    so that a replicate that kills its process (``os._exit``, a crash in compiled code) or hangs past
    ``timeout`` cannot take the run down with it: the run then goes on with a warning (that replicate is
    recorded as failed or timed out like any other) and without the estimand check.

    Returns the seconds the replicate took and the parameter names each estimator reported (empty when
    the check could not run). The child ignores Ctrl-C (it is for this process) and dies with this process.
    """
    if not isolate or not hasattr(os, "fork"):
        return check_first_replicate(study, cell, seed)
    read_end, write_end = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: run the check, send the outcome as JSON, leave without cleanup
        os.close(read_end)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent
        die_with_parent(parent)  # a hang here must not outlive a killed run
        try:
            seconds, params = check_first_replicate(study, cell, seed)
            outcome = {"seconds": seconds, "params": {k: list(v) for k, v in params.items()}}
        except ValueError as exc:
            outcome = {"error": str(exc)}
        except BaseException as exc:  # noqa: BLE001 - the parent reports it
            outcome = {"error": f"the first replicate failed: {type(exc).__name__}: {exc}".splitlines()[0]}
        with os.fdopen(write_end, "w") as pipe:
            pipe.write(json.dumps(outcome))
        os._exit(0)
    os.close(write_end)
    limit = None if timeout is None else timeout * (2 + PARAM_TRIES) + 5.0
    text, status = _collect(pid, read_end, limit)
    if text:
        outcome = json.loads(text)
        if "error" in outcome:
            raise ValueError(outcome["error"])
        return float(outcome["seconds"]), {k: tuple(v) for k, v in outcome["params"].items()}
    why = (f"did not finish within {limit:g} s" if status is None else
           f"killed its process (exit status {os.waitstatus_to_exitcode(status)})")
    print(f"simstudy: warning: replicate 1 of {cell_label(cell)} {why}; the run goes on (such replicates are "
          "recorded as failed or timed out), without checking the estimands against the parameters",
          file=sys.stderr)
    return float(timeout or 1.0), {}


def _collect(pid: int, fd: int, limit: float | None) -> tuple[str, int | None]:
    """Read the child's outcome and reap it; kill it after ``limit`` seconds. Returns (text, wait status)."""
    chunks: list[bytes] = []
    end = None if limit is None else time.monotonic() + limit
    with os.fdopen(fd, "rb") as pipe:
        while True:
            wait = None if end is None else max(0.0, end - time.monotonic())
            ready, _, _ = select.select([pipe], [], [], wait)
            if not ready:  # past the limit: a hang
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return "", None
            data = os.read(pipe.fileno(), 1 << 16)
            if not data:
                break
            chunks.append(data)
    _, status = os.waitpid(pid, 0)
    return b"".join(chunks).decode(), status


def check_first_replicate(study: Any, cell: Mapping[str, Any], seed: int) -> tuple[float, dict[str, tuple[str, ...]]]:
    """Generate replicate 1 of ``cell``, check it and every estimator's columns against it, fit it once,
    and check that the estimators' parameter names and the cell's true values match
    (:meth:`simstudy.study.Study.check_estimands`).

    Returns the seconds that replicate took (generate and every fit), to size the tasks, and the
    parameter names each estimator reported.
    """
    key = cell_key(cell)
    t0 = time.perf_counter()
    data = _generate(study, cell, seed, key, 1)
    check_data(data, cell)
    for method, estimator in study.estimators.items():
        check_estimator(method, estimator, data)
    fits = {m: safe_fit(e, data)[0] for m, e in study.estimators.items()}  # a failed fit is data, not bad input
    seconds = time.perf_counter() - t0
    params = {m: f.params for m, f in fits.items() if f.params}
    unknown = [m for m in fits if not fits[m].params]
    for rep in range(2, 2 + PARAM_TRIES):  # estimators whose first fit failed without naming its parameters
        if not unknown:
            break
        data = _generate(study, cell, seed, key, rep)
        for m in list(unknown):
            fit = safe_fit(study.estimators[m], data)[0]
            if fit.params:
                params[m] = fit.params
                unknown.remove(m)
    for m in unknown:
        print(f"simstudy: warning: cannot check the parameter names of estimator {m!r}: its fits on "
              f"{PARAM_TRIES + 1} replicates of {cell_label(cell)} failed ({fits[m].message})", file=sys.stderr)
    check = getattr(study, "check_estimands", None)
    if check is not None:
        check(params, cell)
    return seconds, params


#: Further replicates tried to learn the parameter names of an estimator whose first fit failed.
PARAM_TRIES = 4


def _generate(study: Any, cell: Mapping[str, Any], seed: int, key: tuple[int, ...], rep: int) -> Any:
    try:
        return study.dgp.generate(replicate_rng(seed, key, rep), **cell)
    except Exception as exc:
        raise ValueError(f"the DGP failed on cell {cell_label(cell)}: {type(exc).__name__}: {exc}") from None
