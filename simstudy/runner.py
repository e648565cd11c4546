"""Running a study: cells -> tasks (chunks of replicates) -> joblib workers -> estimates and summary.

Results stream back as chunks finish (``return_as="generator_unordered"``), so the progress bar moves and
every chunk can be written as it arrives. Every worker uses one BLAS thread.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import xarray as xr

from simstudy import __version__
from simstudy.assemble import estimates_dataset, summary_dataset
from simstudy.chunk import ChunkResult, Task, run_chunk
from simstudy.display import format_compact
from simstudy.progress import Progress
from simstudy.store import read_netcdf, write_json, write_netcdf
from simstudy.study import Study, check_reps, check_seed, file_hash

DEFAULT_CHUNK = 50
DEPENDENCIES = ("numpy", "scipy", "pandas", "statsmodels", "joblib", "xarray", "netCDF4", "pyarrow")


@dataclass(frozen=True)
class RunConfig:
    """Options of one run; ``None`` means the study's own value or a default.

    Attributes
    ----------
    reps, seed : int, optional
        Override the study's replicates per cell and master seed.
    jobs : int, optional
        Worker processes (default: all cores); 1 runs in this process.
    chunk_size : int, optional
        Replicates per task (default: up to 50, fewer when there are few replicates per worker).
    out : Path, optional
        Output directory (default ``results/<study name>``).
    quiet : bool
        No progress and no printed table.
    backend : str
        joblib backend (``loky``).
    command : str
        The command line, for provenance.
    """

    reps: int | None = None
    seed: int | None = None
    jobs: int | None = None
    chunk_size: int | None = None
    out: Path | None = None
    quiet: bool = False
    backend: str = "loky"
    command: str = ""


def plan_tasks(cells: Sequence[dict[str, Any]], reps: int, chunk_size: int, seed: int) -> list[Task]:
    """Split every cell's replicates into tasks of at most ``chunk_size`` replicates."""
    return [
        Task(i, cell, start, min(start + chunk_size, reps + 1), seed)
        for i, cell in enumerate(cells)
        for start in range(1, reps + 1, chunk_size)
    ]


def default_chunk_size(n_cells: int, reps: int, jobs: int) -> int:
    """Up to 50 replicates per task, but at least ~4 tasks per worker when the study is small."""
    per_task = -(-n_cells * reps // (4 * jobs))
    return max(1, min(DEFAULT_CHUNK, reps, per_task))


def execute(study: Study, tasks: Sequence[Task], jobs: int, backend: str = "loky") -> Iterator[ChunkResult]:
    """Run tasks and yield their results as they finish (in any order)."""
    from threadpoolctl import threadpool_limits

    if jobs == 1:
        with threadpool_limits(limits=1):
            for task in tasks:
                yield run_chunk(study, task)
        return
    from joblib import Parallel, delayed, parallel_config

    with parallel_config(backend=backend, inner_max_num_threads=1):
        parallel = Parallel(n_jobs=jobs, return_as="generator_unordered", batch_size=1)
        yield from parallel(delayed(run_chunk)(study, t) for t in tasks)


def provenance(study: Study, config: RunConfig, study_file: Path | None, seed: int, reps: int) -> dict:
    """Where a run came from: seed, reps, study file hash, versions, git commit, command, host."""
    versions = {"simstudy": __version__, "python": platform.python_version()}
    for dist in DEPENDENCIES:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    info: dict[str, Any] = {
        "study": study.name, "seed": seed, "reps": reps, "versions": versions,
        "command": config.command or " ".join(sys.argv), "host": platform.node(),
    }
    if study_file is not None:
        info["study_file"] = str(study_file)
        info["study_file_sha256"] = file_hash(study_file)
        info["git_commit"] = _git_commit(study_file.resolve().parent)
    return info


def _git_commit(where: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def describe(obj: Any) -> str:
    """A readable one-line description of a DGP or estimator from its configuration."""
    fields = ", ".join(f"{k}={v!r}" for k, v in vars(obj).items() if not k.startswith("_")) if hasattr(
        obj, "__dict__") else ""
    return f"{type(obj).__name__}({fields})"


def run_study(
    study: Study,
    config: RunConfig = RunConfig(),
    *,
    study_file: Path | None = None,
    on_chunk: Callable[[ChunkResult], None] | None = None,
) -> tuple[xr.Dataset, xr.Dataset]:
    """Run a study and write ``study.json``, ``estimates.nc`` and ``summary.nc`` to the output directory.

    Returns
    -------
    estimates, summary : xarray.Dataset
    """
    reps = check_reps(config.reps if config.reps is not None else study.reps)
    seed = check_seed(config.seed if config.seed is not None else study.seed)
    jobs = config.jobs if config.jobs is not None else (os.cpu_count() or 1)
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    cells = study.validate()
    truths = [study.truth_for(c) for c in cells]
    chunk = config.chunk_size or default_chunk_size(len(cells), reps, jobs)
    out = config.out if config.out is not None else Path("results") / study.name
    _check_writable(out)

    started = datetime.now(timezone.utc)
    info = provenance(study, config, study_file, seed, reps)
    info |= {"jobs": jobs, "chunk_size": chunk, "backend": config.backend, "started": started.isoformat()}
    meta = {
        "name": study.name, "design": study.design.to_dict(), "dgp": describe(study.dgp),
        "methods": {m: describe(e) for m, e in study.estimators.items()},
        "description": dict(study.description), "provenance": info,
    }
    write_json(meta, out / "study.json")

    tasks = plan_tasks(cells, reps, chunk, seed)
    progress = Progress(len(cells) * reps, quiet=config.quiet)
    results = []
    t0 = time.perf_counter()
    for result in execute(study, tasks, jobs, config.backend):
        results.append(result)
        if on_chunk is not None:
            on_chunk(result)
        progress.update(result.n)
    progress.close()
    elapsed = time.perf_counter() - t0

    estimates = estimates_dataset(study.design.factors, cells, truths, list(study.estimators), reps, results)
    summary = summary_dataset(estimates)
    info |= {"finished": datetime.now(timezone.utc).isoformat(), "seconds": round(elapsed, 3)}
    for ds in (estimates, summary):
        ds.attrs.update(meta | {"provenance": info})
    write_netcdf(estimates, out / "estimates.nc")
    write_netcdf(summary, out / "summary.nc")
    write_json(meta | {"provenance": info}, out / "study.json")
    if not config.quiet:
        print(format_compact(summary))
        print(f"\n{len(cells)} cells x {reps} replicates x {len(study.estimators)} methods in {elapsed:.1f} s "
              f"({jobs} jobs); results in {out}/ (estimates.nc, summary.nc, study.json)")
    return estimates, summary


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create output directory {str(out)!r}: {exc.strerror}") from None
    if not os.access(out, os.W_OK):
        raise ValueError(f"output directory {str(out)!r} is not writable")


def show(out: Path) -> str:
    """The compact summary table of a finished run in ``out``."""
    summary = read_netcdf(out / "summary.nc") if out.is_dir() else None
    if summary is None:
        raise ValueError(f"{str(out)!r} is not a run's output directory")
    return format_compact(summary)
