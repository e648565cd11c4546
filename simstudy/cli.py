"""The ``simstudy`` command line: ``run``, ``resume``, ``merge``, ``show``, ``report``, ``summarize``, ``pilot``.

Bad input gets one clear line on stderr and exit code 2, never a traceback (set ``SIMSTUDY_DEBUG=1`` to
see one).
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from simstudy import lazy_modules
from simstudy.gc_policy import collecting
from simstudy.threads import one_thread_here

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _level(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie between 0 and 1, got {value}")
    return value


def parse_true(text: str) -> float | str | dict[str, float]:
    """``--true``: a number, ``param=value,param=value``, or a column name."""
    try:
        return float(text)
    except ValueError:
        pass
    if "=" in text:
        out = {}
        for part in text.split(","):
            key, sep, value = part.partition("=")
            try:
                out[key.strip()] = float(value)
            except ValueError:
                raise UsageError(f"--true: cannot read {part!r} as parameter=number") from None
        return out
    return text


# --- commands -----------------------------------------------------------------------------------------


def cmd_summarize(args: argparse.Namespace) -> int:
    from simstudy.engine.store import write_netcdf
    from simstudy.output.display import format_wide
    from simstudy.stats.table import read_table, summarize_table

    if (args.ci_lower is None) != (args.ci_upper is None):
        raise UsageError("--ci-lower and --ci-upper go together")
    table = read_table(args.table)
    summary = summarize_table(
        table,
        estimate=args.estimate,
        se=args.se,
        true=parse_true(args.true),
        estimator=args.estimator,
        param=args.param,
        by=args.by or (),
        ref=args.ref,
        rep=args.rep,
        df=args.df,
        ci=(args.ci_lower, args.ci_upper) if args.ci_lower else None,
        level=args.level,
    )
    summary.attrs["source"] = str(args.table)
    print(format_wide(summary))
    if args.out:
        write_netcdf(summary, Path(args.out))
        print(f"\nwrote {args.out}")
    return 0


def _config(args: argparse.Namespace) -> Any:
    from simstudy.engine.runner import RunConfig

    return RunConfig(
        reps=getattr(args, "reps", None), jobs=args.jobs, seed=getattr(args, "seed", None),
        chunk_size=args.chunk_size, quiet=args.quiet, out=Path(args.out) if getattr(args, "out", None) else None,
        force=args.force, retries=args.retries, max_failure_rate=args.max_failure_rate,
        backend=args.backend, scheduler=args.scheduler, shard=getattr(args, "shard", None),
        merge=getattr(args, "merge", False), command=" ".join(["simstudy", *sys.argv[1:]]),
        timeout=getattr(args, "timeout", None), in_process=getattr(args, "in_process", False),
    )


def _report_run(result: Any, config: Any, out: Path) -> None:
    """Print what a finished run shows: the table and a summary line (not with --quiet), and warnings about
    cells where an estimator failed on every replicate (always, on stderr)."""
    from simstudy.output.display import format_run, run_warnings

    if result is None:  # one shard of a sharded run
        if not config.quiet:
            print(f"shard {config.shard[0]}/{config.shard[1]} done; when every shard is done: simstudy merge {out}")
        return
    if not config.quiet:
        print(format_run(result[1], out))
    for line in run_warnings(result[1]):
        print(f"simstudy: warning: {line}", file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    from simstudy.engine.runner import run_study
    from simstudy.study import load_study

    study = load_study(args.study)
    config = _config(args)
    result = run_study(study, config, study_file=Path(args.study))
    _report_run(result, config, config.out if config.out is not None else Path("results") / study.name)
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from simstudy.engine.runner import resume

    config = _config(args)
    _report_run(resume(Path(args.dir), config), config, Path(args.dir))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from simstudy.output.report import write_report

    with collecting():  # figures are made of reference cycles
        path = write_report(Path(args.dir), figures=not args.no_figures)
    print(f"wrote {path}")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from simstudy.engine.runner import resume

    args.merge = True
    config = _config(args)
    _report_run(resume(Path(args.dir), config), config, Path(args.dir))
    return 0


def _shard(text: str) -> tuple[int, int]:
    from simstudy.engine.cluster import parse_shard

    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--shard ")) from None


def _range(text: str) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO:HI (whole numbers), got {text!r}") from None
    if not 1 <= lo <= hi:
        raise argparse.ArgumentTypeError(f"need 1 <= LO <= HI, got {text!r}")
    return lo, hi


def _setting(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected FACTOR=VALUE, got {text!r}")
    for convert in (int, float):
        try:
            return name, convert(value)
        except ValueError:
            pass
    return name, value


def cmd_power(args: argparse.Namespace) -> int:
    from simstudy.engine.power_search import PowerSearch, format_search, search_power
    from simstudy.study import load_study

    study = load_study(args.study)
    search = PowerSearch(factor=args.factor, target=args.target, estimator=args.estimator, param=args.param,
                         lo=args.range[0], hi=args.range[1], confidence=args.confidence, fixed=dict(args.set or []),
                         start=args.start_reps, max_reps=args.max_reps, failures_reject=args.failures_reject)
    log = None if args.quiet else (lambda line: print(f"simstudy: {line}", file=sys.stderr, flush=True))
    with collecting():  # many runs in one process
        result, out = search_power(study, search, _config(args), study_file=Path(args.study), log=log)
    print(format_search(result, search, out))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from simstudy.output.display import COMPACT, show_run

    print(show_run(Path(args.dir), measures=args.measure or COMPACT, params=args.param))
    return 0


_PILOT_STUDY_OPTIONS = ("treatment_level", "treatment_by", "effect_of", "effect", "clusters", "cluster_size",
                        "subcluster_size", "keep_pilot", "name", "seed", "force")


def cmd_pilot(args: argparse.Namespace) -> int:
    from simstudy.estimators.pilot_fit import fit_pilot
    from simstudy.output.study_file import write_study_file

    if len(args.groups) > 2:
        raise UsageError("--groups takes one grouping column, or two nested ones from the top down (outer inner)")
    if args.out is None:
        given = [o for o in _PILOT_STUDY_OPTIONS if getattr(args, o) not in (None, False)]
        if given:
            raise UsageError(f"--{given[0].replace('_', '-')} configures the study file: give --out studies/NAME.py")
    elif Path(args.out).exists() and not args.force:
        raise UsageError(f"{args.out} exists; pass --force to overwrite it")
    with collecting():
        pilot = fit_pilot(args.data, args.formula, args.groups, slope=args.slope, nested_ids=args.nested_ids,
                          reml=not args.ml)
    print(pilot.summary())
    if pilot.status == "boundary":
        print(f"simstudy: warning: {pilot.message}", file=sys.stderr)
    if args.out is None:
        print("\n(add --out studies/NAME.py to write a study file that simulates from this fit)")
        return 0
    out = write_study_file(
        pilot, args.out, data=args.data, name=args.name, force=args.force, treatment_level=args.treatment_level,
        treatment_by=args.treatment_by, effect_of=args.effect_of, effects=args.effect, clusters=args.clusters,
        cluster_sizes=args.cluster_size, subcluster_sizes=args.subcluster_size, resample=args.resample,
        random_effects=args.random_effects, keep_pilot=True if args.keep_pilot else None, reps=args.reps,
        seed=args.seed)
    print(f"\nwrote {out}; edit it if you like, then:\n  simstudy run {out}")
    term = (f"treat:{args.treatment_by}" if args.treatment_by else "treat") if args.treatment_level else args.effect_of
    if term:
        from simstudy.output.study_file import power_command
        from simstudy.study import load_study

        print("  " + power_command(out, load_study(out).design.factors, term))
    return 0


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress and no table")
    p.add_argument("--force", action="store_true",
                   help="recompute cells whose checkpoints came from a changed study")
    p.add_argument("--retries", type=_non_negative_int, default=1,
                   help="retries of a chunk whose worker died (default 1)")
    p.add_argument("--timeout", type=_seconds, default=None, metavar="SECONDS",
                   help="record a replicate whose generate and fits take longer as failed and go on; a rerun "
                        "with a longer limit recomputes those (default: no limit; not with --backend dask)")
    p.add_argument("--in-process", action="store_true",
                   help="run the tasks in this process, one at a time (debugging; a crash ends the run)")
    p.add_argument("--max-failure-rate", type=_level, default=None,
                   help="stop a cell once an estimator fails on more than this share of replicates")
    p.add_argument("--backend", choices=("loky", "dask"), default="loky",
                   help="where chunks run: loky processes here (default) or a Dask cluster")
    p.add_argument("--scheduler", help="with --backend dask: tcp://HOST:PORT, or local:N worker processes")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``simstudy`` command."""
    parser = _Parser(prog="simstudy", description="Monte Carlo simulation studies with MCSE.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run a study file")
    run.add_argument("study", help="a study file, e.g. studies/cluster_trial.py")
    run.add_argument("--reps", type=_positive_int, help="replicates per cell (default: the study's)")
    run.add_argument("--jobs", type=_positive_int, default=None, help="worker processes (default: all cores)")
    run.add_argument("--seed", type=int, help="master seed (default: the study's)")
    run.add_argument("--out", help="output directory (default: results/<study name>)")
    run.add_argument("--chunk-size", type=_positive_int, help="replicates per task (default: automatic)")
    run.add_argument("--shard", type=_shard, help="I/N: compute only shard I of N (array jobs); then merge")
    _run_options(run)
    run.set_defaults(func=cmd_run)

    res = sub.add_parser("resume", help="finish an interrupted run (computes only what is missing)")
    res.add_argument("dir", help="the run's output directory, e.g. results/cluster_trial")
    res.add_argument("--reps", type=_positive_int, help="extend to this many replicates per cell")
    res.add_argument("--jobs", type=_positive_int, default=None, help="worker processes (default: all cores)")
    res.add_argument("--chunk-size", type=_positive_int, help="replicates per task")
    _run_options(res)
    res.set_defaults(func=cmd_resume)

    merge = sub.add_parser("merge", help="assemble the results of a sharded run once every shard is done")
    merge.add_argument("dir", help="the run's output directory")
    merge.add_argument("--force", action="store_true",
                       help="drop checkpoints from a different version of the study (then lists what is missing)")
    merge.set_defaults(func=cmd_merge, reps=None, jobs=1, chunk_size=None, quiet=False, retries=1,
                       max_failure_rate=None, backend="loky", scheduler=None)

    pw = sub.add_parser("power", help="the smallest level of a factor whose power reaches a target")
    pw.add_argument("study", help="a study file, e.g. studies/power_cluster_trial.py")
    pw.add_argument("--factor", required=True, help="the integer design factor to search, e.g. n_groups")
    pw.add_argument("--target", type=_level, default=0.8, help="target power (default 0.8)")
    pw.add_argument("--estimator", required=True, help="the estimator whose test counts, e.g. lmm_t")
    pw.add_argument("--param", required=True, help="the parameter tested, e.g. treat")
    pw.add_argument("--range", type=_range, default=(2, 400), help="LO:HI searched (default 2:400)")
    pw.add_argument("--confidence", type=_level, default=0.95,
                    help="probability that every decision of the search is right (default 0.95)")
    pw.add_argument("--set", type=_setting, nargs="+", help="hold other factors: FACTOR=VALUE ...")
    pw.add_argument("--start-reps", type=_positive_int, default=100, help="replicates of a level's first look")
    pw.add_argument("--max-reps", type=_positive_int, default=12800, help="most replicates a level gets")
    pw.add_argument("--failures-reject", action="store_true",
                    help="count failed fits as non-rejections (simr's convention; default: leave them out)")
    pw.add_argument("--jobs", type=_positive_int, default=None, help="worker processes (default: all cores)")
    pw.add_argument("--out", help="output directory (default: results/<study>_power_<factor>)")
    pw.add_argument("--chunk-size", type=_positive_int, help="replicates per task (default 50)")
    _run_options(pw)
    pw.set_defaults(func=cmd_power)

    show = sub.add_parser("show", help="print the summary table of a finished run")
    show.add_argument("dir", help="a run's output directory, e.g. results/cluster_trial")
    show.add_argument("--measure", nargs="+", help="measures to print (default: bias coverage rmse), e.g. power")
    show.add_argument("--param", nargs="+", help="parameters to print (default: the study's featured ones)")
    show.set_defaults(func=cmd_show)

    rep = sub.add_parser("report", help="write DIR/report.html, DIR/figures/*.png and DIR/tables/*.{md,tex}")
    rep.add_argument("dir", help="a finished run's directory, e.g. results/cluster_trial")
    rep.add_argument("--no-figures", action="store_true", help="text and tables only")
    rep.set_defaults(func=cmd_report)

    summ = sub.add_parser("summarize", help="performance measures for a CSV or Parquet table of estimates")
    summ.add_argument("table", help="CSV or Parquet file, one row per replicate and estimator")
    summ.add_argument("--estimate", required=True, help="column of point estimates")
    summ.add_argument("--se", required=True, help="column of standard errors")
    summ.add_argument("--true", required=True,
                      help="true value: a number, a column name, or param=value,param=value")
    summ.add_argument("--estimator", "--method", dest="estimator",
                      help="column naming the estimator (the method compared)")
    summ.add_argument("--param", help="column naming the parameter (several estimands)")
    summ.add_argument("--by", nargs="+", help="columns of design factors")
    summ.add_argument("--ref", help="reference estimator for relative precision")
    summ.add_argument("--rep", help="column of replicate ids (pairs estimators)")
    summ.add_argument("--df", help="column of degrees of freedom (t intervals; inf: z; missing: no interval)")
    summ.add_argument("--ci-lower", help="column of lower interval limits")
    summ.add_argument("--ci-upper", help="column of upper interval limits")
    summ.add_argument("--level", type=_level, default=0.95, help="confidence level (default 0.95)")
    summ.add_argument("--out", help="write the summary Dataset to this netCDF file")
    summ.set_defaults(func=cmd_summarize)

    pil = sub.add_parser("pilot", help="fit a mixed model to pilot data; write a study that simulates from the fit")
    pil.add_argument("data", help="the pilot data: a CSV or Parquet file")
    pil.add_argument("--formula", required=True, help="fixed effects, e.g. 'Weight ~ Time'")
    pil.add_argument("--groups", required=True, nargs="+", metavar="COLUMN",
                     help="grouping column, or two nested ones from the top down (Litter Pig)")
    pil.add_argument("--nested-ids", choices=("unique", "within"), default="unique",
                     help="inner ids unique across outer groups (default) or numbered within them")
    pil.add_argument("--slope", help="a random slope for this column (one grouping column)")
    pil.add_argument("--ml", action="store_true", help="fit by ML (default REML)")
    pil.add_argument("--out", help="write a study file here, e.g. studies/NAME.py (default: only print the fit)")
    pil.add_argument("--treatment-level", metavar="LEVEL",
                     help="add a treatment randomised at this grouping column, or 'unit' (each row)")
    pil.add_argument("--treatment-by", metavar="COLUMN",
                     help="the treatment changes the slope of this numeric covariate (e.g. a growth rate)")
    pil.add_argument("--effect-of", metavar="TERM", help="no treatment: the pilot's fixed effect the grid varies")
    pil.add_argument("--effect", type=float, nargs="+",
                     help="levels of the effect (default with a treatment: 0 and 0.3 outcome SDs)")
    pil.add_argument("--clusters", type=_positive_int, nargs="+",
                     help="levels of n_clusters (default 1, 2, 3 and 4 times the pilot's)")
    pil.add_argument("--cluster-size", type=_positive_int, nargs="+",
                     help="levels of cluster_size (default: each resampled cluster keeps its own size)")
    pil.add_argument("--subcluster-size", type=_positive_int, nargs="+",
                     help="levels of subcluster_size, rows per inner group (nested pilots)")
    pil.add_argument("--resample", choices=("clusters", "units"), default="clusters",
                     help="covariates of new clusters: whole pilot clusters (default) or rows drawn from all")
    pil.add_argument("--random-effects", choices=("new", "pilot"), default="new",
                     help="new random effects (default) or the pilot's BLUPs for its own clusters")
    pil.add_argument("--keep-pilot", action="store_true",
                     help="the pilot's own clusters first in every data set (implied by --random-effects pilot)")
    pil.add_argument("--name", help="the study's name (default: the --out file's stem)")
    pil.add_argument("--reps", type=_positive_int, default=1000, help="replicates per cell (default 1000)")
    pil.add_argument("--seed", type=int, help="the study's seed (default: from the data's digest)")
    pil.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    pil.set_defaults(func=cmd_pilot)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``simstudy`` console script; returns the exit code."""
    parser = build_parser()
    restore = _on_sigterm()
    try:
        args = parser.parse_args(argv)
        func: Callable[[argparse.Namespace], int] = args.func
        return func(args)
    except BrokenPipeError:  # `simstudy show DIR | head`: the reader has gone, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (UsageError, ValueError, OSError) as exc:
        if os.environ.get("SIMSTUDY_DEBUG"):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"simstudy: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (see _on_sigterm); a run says what it saved
        signum = getattr(exc, "signum", signal.SIGINT)
        message = exc.message() if hasattr(exc, "message") else "simstudy: interrupted"
        print(message, file=sys.stderr)
        return 128 + signum
    except Exception as exc:  # a bug, not bad input: still one line, with a way to see more
        if os.environ.get("SIMSTUDY_DEBUG"):
            raise
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"simstudy: internal error: {type(exc).__name__}: {text} (SIMSTUDY_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 1
    finally:
        restore()


def _on_sigterm() -> Callable[[], None]:
    """Make SIGTERM raise ``Interrupted`` (a KeyboardInterrupt), so that it ends a command like Ctrl-C: a run
    saves what has arrived and the exit code is 143. Returns what puts the previous handler back (nothing
    to do off the main thread, where no handler can be set)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    from simstudy.engine.progress import raise_interrupted

    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, raise_interrupted)
    return lambda: signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def console() -> None:
    """The ``simstudy`` console script: :func:`main`, then exit with its code.

    Garbage collection is off while the command starts: its imports make some 500,000 objects that live as
    long as the process, and the collections that traverse them as they accumulate took 0.1 s of a
    10-replicate ``run``. A run turns collections on for its compute, after freezing (``gc.freeze``) what
    exists by then (:mod:`simstudy.gc_policy`); its forked workers collect their own objects.
    BLAS runs on one thread in this process, as in the workers (:mod:`simstudy.threads`); ``numpy.testing``
    and ``numpy.f2py``, which scipy's import loads and nothing here uses, load only if used
    (:mod:`simstudy.lazy_modules`: 25-30 ms). Objects alive at
    exit are frozen too, so that the interpreter's last collections do not traverse them:
    0.12 s less on a 10-replicate ``run``, 0.17 s on ``show`` (``benchmarks/bench_startup.py``,
    docs/performance.md). Files are closed where they are written, never by a collection. Not in
    :func:`main`, which a Python caller may call repeatedly.
    """
    gc.disable()
    one_thread_here()  # before numpy loads: see simstudy.threads
    lazy_modules.defer_before_scipy()  # see simstudy.lazy_modules
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    console()
