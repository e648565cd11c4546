"""Writing the report of a finished run: :func:`write_report` reads the run, writes the tables and figures as
files for a manuscript, and the page that shows them."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from simstudy.engine.store import read_json
from simstudy.output.report.figures import FigureSpec, figure_specs, render
from simstudy.output.report.measures import measures_tables
from simstudy.output.report.page import page
from simstudy.output.report.run import read_dataset, shown_params
from simstudy.output.tables import failures_table, to_latex, to_markdown


def write_report(directory: Path, *, figures: bool = True) -> Path:
    """Write ``DIR/report.html`` (self-contained), ``DIR/figures/*.{pdf,svg,png}`` and ``DIR/tables/*``.

    Parameters
    ----------
    directory : Path
        A finished run's directory (``results/<study>``) holding ``summary.nc`` and ``study.json``;
        ``estimates.nc`` is used for the zip plot when it is there.
    figures : bool
        Draw the figures (needs matplotlib). Without them the report has text and tables only.

    Returns
    -------
    Path
        The path of ``report.html``.

    Raises
    ------
    ValueError
        With one line, when the directory or its files are missing or unreadable.

    Examples
    --------
    >>> write_report(Path("results/cluster_trial"))   # doctest: +SKIP
    PosixPath('results/cluster_trial/report.html')
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"{str(directory)!r} is not a directory (expected a finished run, e.g. results/<study>)")
    summary = read_dataset(directory / "summary.nc", "summary.nc")
    for dim in ("estimator", "param"):
        if dim not in summary.dims:
            raise ValueError(f"{str(directory / 'summary.nc')!r} is not a simstudy summary (no {dim!r} dimension)")
    if not (directory / "study.json").is_file():
        raise ValueError(f"{str(directory)!r} has no study.json; is it the output directory of a finished run?")
    study = read_json(directory / "study.json")
    if not isinstance(study, dict):
        raise ValueError(f"{str(directory / 'study.json')!r} does not hold a JSON object")
    from simstudy.engine.runner import check_complete

    # an interrupted or inconsistent run is refused, naming the command that completes it
    check_complete(directory, estimates=False)
    estimates = None
    if figures and (directory / "estimates.nc").is_file():
        estimates = read_dataset(directory / "estimates.nc", "estimates.nc")

    shown = shown_params(summary, study)
    tables = measures_tables(summary, shown, "inline")  # the page: value (MCSE)
    file_tables = measures_tables(summary, shown, "below")  # a manuscript's page: each MCSE under its value
    failures = failures_table(summary)
    tables_dir = directory / "tables"
    if failures is None:  # nothing to list: no (stale) failures table beside the report
        for suffix in (".md", ".tex"):
            (tables_dir / f"failures{suffix}").unlink(missing_ok=True)
    else:
        tables.append(failures)
        file_tables.append(failures)
    for table in file_tables:
        _write_text(tables_dir / f"{table.stem}.md", to_markdown(table))
        _write_text(tables_dir / f"{table.stem}.tex", to_latex(table))

    rendered: list[tuple[FigureSpec, str | None, str]] = []  # spec, base64 PNG or None, why not
    if figures:
        for spec in figure_specs(summary, estimates, shown):
            files, why = render(spec)
            for kind, data in files.items():
                _write_bytes(directory / "figures" / f"{spec.stem}.{kind}", data)
            png = files.get("png")
            rendered.append((spec, base64.b64encode(png).decode("ascii") if png else None, why))

    html = page(summary, study, shown, tables, rendered, figures, estimates is not None or not figures)
    out = directory / "report.html"
    _write_text(out, html)
    return out


def _write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary name beside ``path`` and rename, so no half-written file is left under ``path``.

    (Not :func:`simstudy.engine.store.atomic_path`: its ``mkstemp`` files are private (0600), and a report is
    made to be read by others, e.g. from a web server.)
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_text(path: Path, text: str) -> None:
    _write_bytes(path, text.encode("utf-8"))
