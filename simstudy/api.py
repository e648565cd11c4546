"""Running and opening studies from Python: :func:`run` and :func:`load` (re-exported as ``simstudy.run``
and ``simstudy.load``).

Examples
--------
>>> import simstudy                                                           # doctest: +SKIP
>>> res = simstudy.run("studies/cluster_trial.py", reps=200, jobs=2)          # doctest: +SKIP
>>> res.table("coverage", params="treat", n_groups=6)                         # doctest: +SKIP
>>> res = simstudy.load("results/cluster_trial")                              # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simstudy.output.results import Results, load
from simstudy.study import Study, load_study

__all__ = ["Results", "load", "run"]


def run(study: Study | str | Path, *, reps: int | None = None, jobs: int | None = None, seed: int | None = None,
        out: str | Path | None = None, quiet: bool = False, **options: Any) -> Results:
    """Run (or finish, or extend) a study and return its :class:`Results`.

    Parameters
    ----------
    study : Study, or the path of a study file
        What to run.
    reps, jobs, seed : int, optional
        Replicates per cell, worker processes (default: all cores) and master seed (default: the study's).
    out : str or Path, optional
        Output directory (default ``results/<study name>``); rerunning onto it computes only what is
        missing.
    quiet : bool
        No progress bar (in a notebook the bar is a widget).
    **options
        Any other field of :class:`simstudy.engine.runner.RunConfig` (``chunk_size``, ``force``, ``backend``,
        ``scheduler``, ``max_failure_rate``, ...).

    Returns
    -------
    Results
        The run's datasets and metadata; in a notebook it displays as a table.
    """
    from simstudy.engine.runner import RunConfig, run_study

    study_file = None
    if not isinstance(study, Study):
        study_file = Path(study)
        study = load_study(study_file)
    config = RunConfig(reps=reps, jobs=jobs, seed=seed, out=Path(out) if out is not None else None, quiet=quiet,
                       **options)
    if run_study(study, config, study_file=study_file) is None:
        raise ValueError("a sharded run has no results until `simstudy merge DIR` has assembled them")
    return load(config.out if config.out is not None else Path("results") / study.name)
