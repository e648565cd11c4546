"""The sample-size search run on a study: the smallest level of an integer factor whose power reaches a target.

Every level the search evaluates is an ordinary cell of the study, seeded by its factor values, computed
by the run engine into one output directory: a look that asks for more replicates extends the same cell,
a rerun after a kill reuses every checkpoint (so it retraces the same decisions from the same evidence and
gives the same answer), the chunks run on as many workers (or a Dask cluster) as any run, and the evidence
ends up in an ordinary ``estimates.nc`` (each level with the replicates it needed; the rest ``not_run``).
The decisions and their guarantee are :mod:`simstudy.stats.search`'s.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from simstudy.design import Design
from simstudy.dgp.base import factor_names
from simstudy.engine.runner import RunConfig, nominal_level, run_study
from simstudy.engine.store import write_json
from simstudy.stats.search import SearchResult, smallest_level
from simstudy.study import Study

#: Smallest replicates per chunk of a search.
SEARCH_CHUNK = 50


@dataclasses.dataclass
class PowerSearch:
    """What to search: ``factor`` in ``[lo, hi]`` for the smallest level where ``estimator``'s test of
    ``param`` reaches power ``target``, other factors held at ``fixed`` (or at their single level)."""

    factor: str
    target: float
    estimator: str
    param: str
    lo: int
    hi: int
    confidence: float = 0.95
    fixed: dict[str, Any] = dataclasses.field(default_factory=dict)
    start: int = 100
    max_reps: int = 12800
    failures_reject: bool = False  # True: failed fits count as non-rejections (simr); default: left out


def held_factors(study: Study, search: PowerSearch) -> dict[str, Any]:
    """The levels of the other factors during the search: ``search.fixed``, else the design's single level."""
    takes = factor_names(study.dgp)
    if search.factor not in takes:
        raise ValueError(f"factor {search.factor!r} is not taken by {type(study.dgp).__name__} "
                         f"(it takes: {', '.join(takes)})")
    unknown = [f for f in search.fixed if f not in takes]
    if unknown:
        raise ValueError(f"--set {unknown[0]}: not a factor of {type(study.dgp).__name__}")
    held: dict[str, Any] = {}
    for name, levels in study.design.factors.items():
        if name == search.factor:
            continue
        if name in search.fixed:
            held[name] = search.fixed[name]
        elif len(levels) == 1:
            held[name] = levels[0]
        else:
            raise ValueError(f"factor {name!r} has {len(levels)} levels ({', '.join(map(str, levels))}); hold it at "
                             f"one with --set {name}=VALUE")
    held.update({k: v for k, v in search.fixed.items() if k not in held})
    return held


def search_power(study: Study, search: PowerSearch, config: RunConfig, *, study_file: Path | None = None,
                 log: Any = None) -> tuple[SearchResult, Path]:
    """Run the search; write the evidence (``estimates.nc``, ``summary.nc``) and ``search.json`` to the
    output directory. Returns the result and the directory.

    ``config`` gives the output directory, workers and backend; its ``reps`` is ignored (the search
    decides). ``log(line)`` is told each decision as it is made.
    """
    if search.estimator not in study.estimators:
        raise ValueError(f"estimator {search.estimator!r} is not among the study's ({', '.join(study.estimators)})")
    if not 0 < search.target < 1:
        raise ValueError(f"--target must lie in (0, 1), got {search.target!r}")
    held = held_factors(study, search)
    out = config.out if config.out is not None else Path("results") / f"{study.name}_power_{search.factor}"
    alpha = study.alpha if study.alpha is not None else 1 - nominal_level(study)
    base = dataclasses.replace(config, out=out, quiet=True, write=False)

    def at(levels: list[int]) -> Study:
        return dataclasses.replace(study, design=Design({**{k: [v] for k, v in held.items()}, search.factor: levels}))

    workers = config.jobs or os.cpu_count() or 1

    def evaluate(level: int, reps: int) -> tuple[int, int]:
        # chunks grow with the look (a few tasks per worker for the new replicates): fewer files to verify
        # and read back at later looks and reruns; the sizes depend only on reps, so reruns cut the same chunks
        chunk = config.chunk_size or min(1000, max(SEARCH_CHUNK, reps // (8 * workers)))
        estimates, _ = run_study(at([level]), dataclasses.replace(base, reps=reps, chunk_size=chunk),
                                 study_file=study_file)
        one = estimates.sel({"estimator": search.estimator})
        if search.param not in one.coords["param"].values:
            raise ValueError(f"estimator {search.estimator!r} reports no parameter {search.param!r} (it reports "
                             f"{', '.join(str(p) for p in one.coords['param'].values)})")
        p = np.asarray(one["pvalue"].sel({"param": search.param}).where(one["converged"]).values, dtype=float).ravel()
        status = np.asarray(one["status"].values).ravel()
        hits = int(np.sum(p < alpha))
        tested = int(np.sum(status != -1)) if search.failures_reject else int(np.sum(~np.isnan(p)))
        return hits, tested

    def logged(level: int, reps: int) -> tuple[int, int]:
        hits, tested = evaluate(level, reps)
        if log is not None:
            log(f"{search.factor} = {level}: {hits}/{tested} rejections ({hits / max(tested, 1):.3f})")
        return hits, tested

    result = smallest_level(logged, search.lo, search.hi, search.target, confidence=search.confidence,
                            start=search.start, max_reps=search.max_reps)
    levels = sorted(d.level for d in result.decisions)
    most = max(d.reps for d in result.decisions)
    run_study(at(levels), dataclasses.replace(base, reps=most, partial=True, write=True, chunk_size=SEARCH_CHUNK),
              study_file=study_file)
    write_json(search_record(result, search, held, alpha), out / "search.json")
    return result, out


def search_record(result: SearchResult, search: PowerSearch, held: dict[str, Any], alpha: float) -> dict[str, Any]:
    """The search, its answer and every decision, as ``search.json`` holds them."""
    return {
        "factor": search.factor, "target": search.target, "estimator": search.estimator, "param": search.param,
        "range": [search.lo, search.hi], "confidence": search.confidence, "alpha": alpha, "held": held,
        "failures": "non-rejections" if search.failures_reject else "excluded",
        "answer": result.answer, "sure": result.sure, "replicates": result.reps,
        "warnings": list(result.warnings),
        "decisions": [dataclasses.asdict(d) for d in result.decisions],
    }


_VERDICT = {"reaches": "reaches the target", "short": "falls short",
            "indeterminate": "too close to the target to tell"}


def format_search(result: SearchResult, search: PowerSearch, out: Path) -> str:
    """The printed answer: the level, power there and one below with exact intervals, the work done."""
    what = f"{search.param} ({search.estimator})"
    lines = []
    if result.answer is None:
        lines.append(f"no {search.factor} in {search.lo}-{search.hi} reaches power {search.target} for {what}")
    else:
        found = result.answer if result.sure == result.answer else \
            f"between {result.answer} and {result.sure}" if result.sure is not None else f"{result.answer} or more"
        lines.append(f"smallest {search.factor} with power >= {search.target} for {what}: {found} "
                     f"(every decision right with probability >= {search.confidence})")
    shown = set() if result.answer is None else {result.answer - 1, result.answer, result.sure}
    for d in sorted(result.decisions, key=lambda d: d.level):
        if d.level in shown or (d.verdict == "indeterminate" and result.answer is not None
                                and d.level >= result.answer):
            lines.append(f"  {search.factor} = {d.level}: power {d.power:.3f} ({d.hits}/{d.tested}); exact interval "
                         f"{d.lower:.3f}-{d.upper:.3f} (error {1 - d.confidence:.1e}): {_VERDICT[d.verdict]}")
    visited = ", ".join(str(d.level) for d in result.decisions)
    lines.append(f"replicates spent: {result.reps} over {len(result.decisions)} levels (visited in order: {visited})")
    lines += [f"warning: {w}" for w in result.warnings]
    lines.append(f"evidence in {out}/ (estimates.nc, summary.nc, search.json)")
    return "\n".join(lines)
