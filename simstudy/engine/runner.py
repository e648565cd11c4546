"""Running a study: cells -> tasks (chunks of replicates) -> workers -> checkpoints -> estimates, summary.

Each finished chunk is written to ``DIR/chunks/`` as it arrives, so a run that dies loses at most the chunks
in flight, and running again (``simstudy run`` onto the same directory, or ``simstudy resume DIR``)
computes only what is missing. The final files are assembled from the checkpoints, so they are the same
bit for bit whether or not the run was interrupted.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from simstudy import __version__
from simstudy.engine.assemble import estimates_dataset, write_estimates
from simstudy.engine.checkpoint import ChunkFile, write_chunk
from simstudy.engine.chunk import ChunkResult, Task
from simstudy.engine.cluster import cap_jobs, usable_cores, workers
from simstudy.engine.dispatch import DASK_TIMEOUT, arrived, execute
from simstudy.engine.fingerprint import label
from simstudy.engine.forkpool import fork_usable
from simstudy.engine.lock import RunLock
from simstudy.engine.plan import Plan
from simstudy.engine.preflight import preflight
from simstudy.engine.progress import Interrupted, Progress, StopRequest
from simstudy.engine.store import atomic_path, open_netcdf, read_json, write_json, write_netcdf
from simstudy.estimators.base import STATUSES
from simstudy.gc_policy import collecting
from simstudy.study import Study, check_reps, check_seed, file_hash, load_study

#: Seconds of work a task aims at when the chunk size is chosen automatically.
MAX_CHUNK = 250
#: Replicates per chunk of a sharded run (all shards must cut the same blocks), unless --chunk-size.
SHARD_CHUNK = 100
DEPENDENCIES = ("numpy", "scipy", "pandas", "statsmodels", "joblib", "xarray", "netCDF4", "pyarrow")
_BAD = (STATUSES.index("nonconverged"), STATUSES.index("failed"))


@dataclass(frozen=True)
class RunConfig:
    """Options of one run; ``None`` means the study's own value or a default.

    Attributes
    ----------
    reps, seed : int, optional
        Override the study's replicates per cell and master seed.
    jobs : int, optional
        Worker processes (default: all cores; never more than the usable cores or the tasks). 1 is one worker
        process too (see ``in_process``). With ``dask``: the size of the local cluster when there is no
        ``scheduler``; tasks then go to every worker of the cluster.
    chunk_size : int, optional
        Replicates per task (default: about 2 s of work, at least 4 tasks per worker).
    out : Path, optional
        Output directory (default ``results/<study name>``).
    quiet : bool
        No progress and no printed table.
    force : bool
        Recompute cells whose checkpoints came from a different version of the study.
    retries : int
        How often a chunk whose worker died is retried before it is recorded as failed.
    max_failure_rate : float, optional
        Stop a cell early once any estimator fails (or does not converge) on more than this share of its
        replicates (judged after at least 20 replicates).
    backend : str
        ``loky`` (processes on this machine) or ``dask`` (a Dask cluster, see :mod:`simstudy.engine.cluster`).
    scheduler : str, optional
        With ``dask``: ``tcp://HOST:PORT`` of a running scheduler, or ``local:N`` (default ``local:jobs``).
    shard : (int, int), optional
        ``(i, n)``: compute only the i-th of n deterministic shares of the chunks, write them, and stop
        (an array job); ``simstudy merge`` assembles the results once every shard is done.
    merge : bool
        Compute nothing: assemble the results if every chunk is there, else say which are missing.
    command : str
        The command line, for provenance.
    timeout : float, optional
        Seconds a replicate's generate and fits may take; one that takes longer is recorded as failed for
        every estimator ("timed out after N s") and the run goes on (not with ``backend="dask"``).
    in_process : bool
        Run the tasks in this process, one at a time, instead of in worker processes (for debugging: a
        crash then ends the run, and only hangs in Python code are stopped by ``timeout``).
    """

    reps: int | None = None
    seed: int | None = None
    jobs: int | None = None
    chunk_size: int | None = None
    out: Path | None = None
    quiet: bool = False
    force: bool = False
    retries: int = 1
    max_failure_rate: float | None = None
    backend: str = "loky"
    scheduler: str | None = None
    shard: tuple[int, int] | None = None
    merge: bool = False
    command: str = ""
    timeout: float | None = None
    in_process: bool = False
    #: Compute nothing: assemble the replicates there are (others ``not_run``), as the power search does.
    partial: bool = False
    #: Write ``estimates.nc``, ``summary.nc`` and a complete ``study.json`` (False: compute the missing
    #: chunks and return ``(estimates, None)`` without writing outputs; the power search's looks).
    write: bool = True

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be 0 or more, got {self.retries}")
        if self.timeout is not None:
            if not (self.timeout > 0 and np.isfinite(self.timeout)):
                raise ValueError(f"timeout must be a positive number of seconds, got {self.timeout}")
            if self.backend == "dask":
                raise ValueError(DASK_TIMEOUT)
        if self.in_process and (self.backend != "loky" or (self.jobs or 1) > 1):
            raise ValueError("--in-process runs one task at a time in this process: not with --jobs above 1 "
                             "or --backend dask")


def default_chunk_size(n_cells: int, reps: int, jobs: int) -> int:
    """Replicates per task: at least ~4 tasks per worker, at most :data:`MAX_CHUNK` (so that a killed run
    loses little and a task of slow fits stays short), and deterministic: the same study, replicates and
    jobs always cut the same chunks (a chunk size from timing one replicate varied from run to run)."""
    per_worker = -(-n_cells * reps // (4 * jobs))
    return max(1, min(MAX_CHUNK, reps, per_worker))


class FailureBudget:
    """Stops a cell once any estimator's share of failed or non-converged fits passes ``max_rate``."""

    MIN_REPS = 20

    def __init__(self, n_cells: int, n_methods: int, max_rate: float | None) -> None:
        self.max_rate = max_rate
        self.done = np.zeros(n_cells, np.int64)
        self.bad = np.zeros((n_cells, n_methods), np.int64)
        self.stopped: set[int] = set()

    def add(self, result: ChunkResult) -> None:
        """Count a finished chunk."""
        i = result.cell_index
        self.done[i] += result.n
        self.bad[i] += np.isin(result.status, _BAD).sum(axis=0)
        if self.max_rate is not None and self.done[i] >= self.MIN_REPS:
            if (self.bad[i] / self.done[i]).max() > self.max_rate:
                self.stopped.add(i)

    def skip(self, task: Task) -> bool:
        """True for a task of a cell that has been stopped."""
        return task.cell_index in self.stopped


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


def nominal_level(study: Study) -> float:
    """The confidence level of the estimators' intervals (their ``level``; 0.95 where they have none).

    Coverage is computed from each fit's own interval; this is the nominal value tables and figures
    compare it with. Estimators with different levels are refused: one nominal line would be wrong for some.
    """
    levels = {float(getattr(e, "level", 0.95)) for e in study.estimators.values()}
    if len(levels) > 1:
        raise ValueError(f"the estimators' confidence levels differ ({', '.join(map(str, sorted(levels)))}); "
                         "give them all the same level")
    return levels.pop()


def _git_commit(where: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create output directory {str(out)!r}: {exc.strerror}") from None
    if not os.access(out, os.W_OK):
        raise ValueError(f"output directory {str(out)!r} is not writable")


#: ``study.json["format"]``: marks a directory as a simstudy run's output directory.
RUN_FORMAT = "simstudy-run/2"
#: Files a run directory may hold besides its outputs before a run marks it (locks, temporary files).
_HOUSEKEEPING = (".lock", ".lock-shard-")


def _check_out(out: Path) -> None:
    """``--out`` must be new, empty, or a simstudy run directory: never a folder of the user's own files."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a file, not a directory")
    study = out / "study.json"
    if study.is_file():
        meta = _read_study_json(out)
        if meta.get("format") == RUN_FORMAT or {"name", "run"} <= set(meta):  # format 1 had no marker
            return
    others = sorted(p.name for p in out.iterdir() if not p.name.startswith(_HOUSEKEEPING) and not _is_temp(p))
    if others:
        shown = ", ".join(others[:4]) + (", ..." if len(others) > 4 else "")
        raise ValueError(f"--out {str(out)!r} holds files that are not a simstudy run's ({shown}); "
                         "choose a new or empty directory")


def _read_study_json(out: Path) -> dict[str, Any]:
    meta = read_json(out / "study.json")
    if not isinstance(meta, dict):
        raise ValueError(f"{str(out / 'study.json')!r} does not hold a JSON object (is it a simstudy run's?)")
    return meta


def _is_temp(path: Path) -> bool:
    """A temporary file of :func:`simstudy.engine.store.atomic_path` (``.<name>.<random>.tmp``)."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


def sweep_temp(out: Path) -> int:
    """Remove temporary files left by a run that was killed mid-write; returns how many."""
    n = 0
    for folder in (out, out / "chunks"):
        if folder.is_dir():
            for path in folder.iterdir():
                if _is_temp(path) and path.is_file():
                    path.unlink(missing_ok=True)
                    n += 1
    return n


def _check_same_study(out: Path, name: str) -> None:
    if (out / "study.json").is_file():
        previous = _read_study_json(out).get("name")
        if previous != name:
            raise ValueError(f"{str(out)!r} holds results of study {previous!r}, not {name!r}; choose another --out")


def _write_output(ds: xr.Dataset | Callable[[Path], Any], out: Path, name: str) -> Any:
    """Write one output file (a Dataset, or a function that writes the file at the path it is given and
    returns what it returns); a failure (a full disk, say) becomes one line saying the checkpoints are safe."""
    try:
        return ds(out / name) if callable(ds) else write_netcdf(ds, out / name)
    except (OSError, RuntimeError) as exc:
        free = shutil.disk_usage(out).free
        reason = "the disk is full" if free < 64 * 2**20 or getattr(exc, "errno", None) == 28 else \
            f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise ValueError(f"could not write {out / name} ({reason}); every finished chunk is safe in {out / 'chunks'}: "
                         f"free some space, then `simstudy resume {out}` writes the outputs") from None


#: Bytes per replicate, estimator and parameter in the assembled estimates (five float64 values, a flag),
#: and per replicate and estimator (status, warnings, seconds, a message of ~100 characters).
_BYTES_PER_VALUE, _BYTES_PER_FIT = 41, 420


def check_memory(n_cells: int, reps: int, n_estimators: int, n_params: int) -> None:
    """Refuse up front a run whose assembled results would not fit in this machine's memory."""
    need = n_cells * reps * n_estimators * (max(n_params, 1) * _BYTES_PER_VALUE + _BYTES_PER_FIT)
    try:
        have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):  # pragma: no cover - not Linux
        return
    if need > 0.8 * have:
        raise ValueError(f"{n_cells} cells x {reps} replicates x {n_estimators} estimators x {n_params} parameters "
                         f"need about {need / 2**30:.1f} GiB to assemble, and this machine has {have / 2**30:.1f} "
                         "GiB; use fewer replicates or split the study")


def check_complete(out: Path, *, estimates: bool = True) -> dict[str, Any]:
    """The run's ``study.json`` if ``out`` holds a finished, consistent run; else ``ValueError`` saying
    what is wrong and which command completes it.

    A run is consistent when ``study.json`` says it is complete and ``estimates.nc`` and ``summary.nc``
    carry its run id: a run killed while extending, or between writing its output files, is caught.
    With ``estimates=False`` a missing ``estimates.nc`` is allowed (a report from the summary alone).
    """
    if not (out / "study.json").is_file():
        raise ValueError(f"{str(out)!r} is not a run's output directory (no study.json)")
    meta = _read_study_json(out)
    run = meta.get("run", {}) if isinstance(meta.get("run"), dict) else {}
    if not run.get("complete"):
        if (out / "summary.nc").is_file():
            raise ValueError(f"{str(out)!r}: a run to {run.get('reps')} replicates per cell was interrupted, so "
                             f"summary.nc holds an earlier, smaller run; `simstudy resume {out}` finishes it")
        raise ValueError(f"{str(out)!r}: the run has not finished; `simstudy resume {out}` finishes it")
    run_id = run.get("run_id")
    for name in ("estimates.nc", "summary.nc"):
        if name == "estimates.nc" and not estimates and not (out / name).is_file():
            continue
        if not (out / name).is_file():
            raise ValueError(f"{str(out)!r} has no {name}; `simstudy resume {out}` rebuilds it from the checkpoints")
        if run_id is not None and _file_run_id(out / name) != run_id:
            raise ValueError(f"{str(out)!r}: {name} does not belong to the run recorded in study.json (the run "
                             f"was killed while writing its outputs); `simstudy resume {out}` rebuilds them")
    return meta


def _file_run_id(path: Path) -> str | None:
    import netCDF4

    try:
        with netCDF4.Dataset(path) as nc:
            run = json.loads(nc.getncattr("run")) if "run" in nc.ncattrs() else {}
    except (OSError, ValueError):
        return None
    return run.get("run_id") if isinstance(run, dict) else None


def run_study(study: Study, config: RunConfig = RunConfig(), *, study_file: Path | None = None
              ) -> tuple[xr.Dataset, xr.Dataset] | None:
    """Run (or finish, or extend) a study; write ``study.json``, ``estimates.nc`` and ``summary.nc``.

    Returns
    -------
    (estimates, summary) : tuple of xarray.Dataset, or None for one shard of a sharded run
    """
    reps = check_reps(config.reps if config.reps is not None else study.reps)
    seed = check_seed(config.seed if config.seed is not None else study.seed)
    jobs = config.jobs if config.jobs is not None else (os.cpu_count() or 1)
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if config.scheduler and config.backend != "dask":
        raise ValueError("--scheduler goes with --backend dask")
    fork_usable()  # a bad SIMSTUDY_FORK is refused before anything is done
    cells = study.validate()
    nominal_level(study)
    truths = [study.truths(c) for c in cells]
    _, params = preflight(study, cells[0], seed, timeout=config.timeout, isolate=not config.in_process)
    check_memory(len(cells), reps, len(study.estimators), len({p for ps in params.values() for p in ps}))
    out = config.out if config.out is not None else Path("results") / study.name
    _check_out(out)
    _check_writable(out)
    lock = f".lock-shard-{config.shard[0]}-of-{config.shard[1]}" if config.shard else ".lock"
    with RunLock(out, lock):
        _check_same_study(out, study.name)
        if not config.shard:  # shards share the directory: another shard may be writing right now
            sweep_temp(out)
        # shards share the directory (another shard's chunks are not this one's to delete), merge only reads
        plan = Plan.make(study, out, cells, truths, reps, seed, force=config.force, timeout=config.timeout,
                         retry_timed_out=not (config.shard or config.merge))
        if config.chunk_size:
            chunk = config.chunk_size
        elif config.shard or config.merge:  # every shard must cut the same blocks
            chunk = min(reps, SHARD_CHUNK)
        else:
            usable = min(jobs, usable_cores()) if config.backend == "loky" else jobs
            chunk = default_chunk_size(len(cells), reps, usable)
        info = provenance(study, config, study_file, seed, reps)
        info |= {"jobs": jobs, "chunk_size": chunk, "backend": config.backend,
                 "started": datetime.now(timezone.utc).isoformat()}
        meta = {
            "format": RUN_FORMAT, "name": study.name, "design": study.design.to_dict(), "dgp": label(study.dgp),
            "estimators": {m: label(e) for m, e in study.estimators.items()},
            "description": dict(study.description), "show": list(study.show), "reference": study.reference,
            "unscored": list(study.unscored), "labels": dict(study.labels), "nulls": dict(study.nulls),
            "alpha": study.alpha,
            "run": {"reps": reps, "seed": seed, "chunk_size": chunk, "max_failure_rate": config.max_failure_rate,
                    "timeout": config.timeout, "study_file": str(study_file.resolve()) if study_file else None,
                    "complete": False,
                    "run_id": uuid.uuid4().hex},
        }

        def started() -> None:
            """Record the run as under way: only once its workers are up, so a refused run changes nothing.

            ``study.json`` (the run's marker) comes first: a shard starting beside this one at that moment must
            never see a ``study.py`` without it, which would look like a folder of the user's own files.
            """
            write_json(meta | {"provenance": info}, out / "study.json")
            if study_file is not None and study_file.resolve() != (out / "study.py").resolve():
                with atomic_path(out / "study.py") as tmp:
                    shutil.copyfile(study_file, tmp)

        if config.partial:
            stopped, elapsed, ran = [], 0.0, {}
        elif config.merge:
            missing = plan.missing(chunk)
            if missing:
                raise ValueError(f"cannot merge: {len(missing)} cell(s) are incomplete; " + "; ".join(missing[:3])
                                 + ("; ..." if len(missing) > 3 else ""))
            stopped, elapsed, ran = [], 0.0, {}
        else:
            stopped, elapsed, ran = _compute(study, plan, config, chunk, jobs, len(cells) * reps, started)
        if config.shard:
            return None
        if not config.write:
            estimates = estimates_dataset(study.design.factors, cells, truths, list(study.estimators), reps,
                                          plan.results(), params=plan.params(), nulls=study.nulls)
            return estimates, None

        def attrs() -> dict[str, Any]:
            """The outputs' attributes, once every cell is written: the run is complete."""
            if "finished" not in info:
                info.update({"finished": datetime.now(timezone.utc).isoformat(), "seconds": round(elapsed, 3),
                             "executed": ran, "stopped_early": [cells[i] for i in stopped]})
                meta["run"]["complete"] = True
            return meta | {"provenance": info}

        # cells are read from their checkpoints, written and summarized a group at a time (flat memory)
        summary = _write_output(lambda path: write_estimates(
            path, study.design.factors, cells, truths, list(study.estimators), reps, plan.results(),
            plan.params(), study.nulls, attrs=attrs, ref=study.reference, level=nominal_level(study),
            alpha=study.alpha), out, "estimates.nc")
        summary.attrs.update(attrs())
        _write_output(summary, out, "summary.nc")
        write_json(meta | {"provenance": info}, out / "study.json")
        # the estimates stay on disk, read as they are used (the summary is small)
        estimates = open_netcdf(out / "estimates.nc")
        estimates.attrs = meta | {"provenance": info}
    return estimates, summary


def _compute(study: Study, plan: Plan, config: RunConfig, chunk: int, jobs: int, total: int,
             started: Callable[[], None]) -> tuple[list[int], float, dict[str, Any]]:
    """Run the missing tasks, writing each chunk as it arrives; returns the cells stopped early, the
    seconds it took and where the tasks really ran (empty when every chunk was already there).
    ``started()`` is called once the workers are up, before the first task.

    With the loky backend no more workers are started than there are usable cores and tasks (an explicit
    ``jobs`` above that gets a one-line notice). Ctrl-C or SIGTERM saves the chunks that have arrived,
    then raises :class:`~simstudy.engine.progress.Interrupted` saying how many replicates are saved.
    """
    budget = FailureBudget(len(plan.cells), len(study.estimators), config.max_failure_rate)
    for result in plan.results():
        budget.add(result)
    tasks = plan.tasks(chunk, config.shard)
    progress = Progress(total if not config.shard else plan.done() + sum(t.stop - t.start for t in tasks),
                        quiet=config.quiet)
    progress.update(plan.done() if not config.shard else 0)
    t0 = time.perf_counter()
    ran: dict[str, Any] = {}
    if tasks and config.backend == "loky" and not config.in_process:
        jobs, why = cap_jobs(jobs, len(tasks))
        if why and config.jobs is not None:  # asked for explicitly: say so, even with --quiet
            print(f"simstudy: --jobs {config.jobs} capped to {jobs} ({why})", file=sys.stderr)

    def save(result: ChunkResult) -> None:
        key = plan.keys[result.cell_index]
        path = write_chunk(plan.out, key, plan.fingerprints[result.cell_index], result)
        plan.record(ChunkFile(path, key, result.start, result.start + result.n), result.cell_index)
        budget.add(result)
        progress.update(result.n)

    try:
        if tasks:
            with collecting(), workers(config.backend, jobs, config.scheduler, in_process=config.in_process) as pool, \
                    StopRequest() as stop:
                ran = pool.describe()
                fork = config.backend == "loky" and not config.in_process and fork_usable()
                if ran["backend"] == "loky":
                    ran["start"] = "fork" if fork else "loky"
                results = execute(study, tasks, pool.n, backend=config.backend, retries=config.retries,
                                  skip=budget.skip, client=pool.client, timeout=config.timeout,
                                  in_process=config.in_process, stop=stop, fork=fork)
                started()
                try:
                    for result in results:
                        save(result)
                except KeyboardInterrupt as exc:  # save what has arrived, then stop
                    try:
                        for result in arrived(results, exc):
                            save(result)
                    except KeyboardInterrupt:  # asked again: stop now
                        pass
                    hint = "rerunning the shard continues" if config.shard else \
                        f"`simstudy resume {plan.out}` continues"
                    raise Interrupted(getattr(exc, "signum", signal.SIGINT), plan.done(), hint) from None
                finally:
                    results.close()
    finally:
        progress.close()
    return sorted(budget.stopped), time.perf_counter() - t0, ran


def resume(out: Path, config: RunConfig = RunConfig()) -> tuple[xr.Dataset, xr.Dataset]:
    """Finish the run recorded in ``out/study.json`` with its own reps, seed, chunk size, failure rate and
    time limit (``config`` may change the reps, chunk size, failure rate and time limit)."""
    path = out / "study.json"
    if not path.is_file():
        raise ValueError(f"{str(out)!r} is not a run's output directory (no study.json)")
    run = _read_study_json(out).get("run", {})
    if not isinstance(run, dict) or not isinstance(run.get("reps", 1), int):
        raise ValueError(f"{str(path)!r} is damaged (its 'run' entry is not a simstudy run's)")
    limit = run.get("timeout")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float)) or not limit > 0):
        raise ValueError(f"{str(path)!r} is damaged (its time limit is {limit!r}, not a number of seconds)")
    study_file = Path(run["study_file"]) if run.get("study_file") else None
    if study_file is None or not study_file.is_file():
        study_file = out / "study.py"
    study = load_study(study_file)
    config = replace(
        config, out=out, reps=config.reps or run.get("reps"), seed=run.get("seed"),
        chunk_size=config.chunk_size or run.get("chunk_size"),
        max_failure_rate=config.max_failure_rate if config.max_failure_rate is not None
        else run.get("max_failure_rate"),
        timeout=config.timeout if config.timeout is not None or config.backend != "loky" else limit,
    )
    return run_study(study, config, study_file=study_file)
