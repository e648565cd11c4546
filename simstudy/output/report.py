"""The report of a finished run: one self-contained HTML file, plus figures and tables for a manuscript.

:func:`write_report` reads only ``summary.nc``, ``study.json`` and (for the zip plot, if present)
``estimates.nc``, so a report can be rebuilt from those files on another machine. It writes

- ``DIR/report.html``: the ADEMP description, the figures (PNG, embedded as data URIs), the tables of
  performance measures with their MCSE, the failure counts and the provenance of the run;
- ``DIR/figures/*.pdf``, ``*.svg`` and ``*.png``: the same figures as files for a paper (vector PDF and SVG,
  PNG at :data:`FIGURE_DPI` dpi);
- ``DIR/tables/*.md`` and ``DIR/tables/*.tex``: the tables as Markdown (pipe tables) and LaTeX (booktabs).

The tables are built by :mod:`simstudy.output.tables`: per featured parameter, a main table of six measures
(bias, empirical SE, model SE, coverage, RMSE, power) that fits the page without sideways scrolling, and a
second table with the other measures (folded away in the page, files ``measures_<param>_more``); and a table of
the cells and estimators with failed, non-converged or boundary fits (a sentence instead when there are none).
The page shows ``value (MCSE)``; the files put each MCSE in the row under its value, so that they fit a page.
"""

from __future__ import annotations

import base64
import html
import itertools
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from simstudy import __version__
from simstudy.engine.assemble import NOT_REPORTED
from simstudy.engine.store import json_attr, read_json, read_netcdf
from simstudy.output import tables as _tables
from simstudy.output.display import cell_label, fmt
from simstudy.output.tables import PaperTable, failures_table, paper_table, simple_table

#: Escapes LaTeX's special characters in the report's tables (see :mod:`simstudy.output.tables`).
tex_escape = _tables.tex_escape

#: The measures of the report's main table per parameter, in order; a measure with no value is left out.
TABLE_MEASURES: tuple[str, ...] = ("bias", "emp_se", "model_se", "coverage", "rmse", "power")

#: The other measures, in a second table per parameter (folded away in the page; ``measures_<param>_more``).
MORE_MEASURES: tuple[str, ...] = ("rel_bias", "rel_error", "be_coverage", "rel_precision")

#: Decimals of the values and MCSEs in the report's tables.
TABLE_DIGITS = 3

#: The file stem suffix of the second table of a parameter.
_MORE = "_more"

#: Counts of fits that went wrong, per cell and method, with their column headings.
FAILURE_COUNTS: dict[str, str] = {"n_fit_failed": "fit failed", "n_nonconverged": "not converged",
                                  "n_boundary": "boundary"}

ADEMP: dict[str, str] = {
    "aims": "Aims",
    "data": "Data-generating mechanisms",
    "estimands": "Estimands",
    "methods": "Methods",
    "performance": "Performance measures",
}

_NOT_FACTORS = ("estimator", "param", "rep")


@dataclass(frozen=True)
class Table:
    """A plain table (one header row) ready to render: file stem, caption, header, rows of text; ``numeric``
    columns align right. The measures and failures tables are :class:`~simstudy.output.tables.PaperTable`."""

    stem: str
    caption: str
    header: list[str]
    rows: list[list[str]]
    numeric: list[bool]

    def model(self) -> PaperTable:
        """The same table as a :class:`~simstudy.output.tables.PaperTable` (what the renderers take)."""
        return simple_table(self.stem, self.caption, self.header, self.rows, self.numeric)


@dataclass(frozen=True)
class FigureSpec:
    """A figure of the report: file stem, caption, and a function that draws it."""

    stem: str
    caption: str
    draw: Callable[[], Any]


#: The files written per figure, ``DIR/figures/<stem>.<format>``; the page embeds the PNG.
FIGURE_FORMATS: tuple[str, ...] = ("pdf", "svg", "png")

#: Resolution of the PNG files (and so of the figures in the page, shown at their size in inches).
FIGURE_DPI = 300


# --- entry point --------------------------------------------------------------------------------------


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
    summary = _read_dataset(directory / "summary.nc", "summary.nc")
    for dim in ("estimator", "param"):
        if dim not in summary.dims:
            raise ValueError(f"{str(directory / 'summary.nc')!r} is not a simstudy summary (no {dim!r} dimension)")
    if not (directory / "study.json").is_file():
        raise ValueError(f"{str(directory)!r} has no study.json; is it the output directory of a finished run?")
    study = read_json(directory / "study.json")
    if not isinstance(study, dict):
        raise ValueError(f"{str(directory / 'study.json')!r} does not hold a JSON object")
    from simstudy.engine.runner import check_complete

    check_complete(directory, estimates=False)  # an interrupted or inconsistent run is refused, naming the command that completes it
    estimates = None
    if figures and (directory / "estimates.nc").is_file():
        estimates = _read_dataset(directory / "estimates.nc", "estimates.nc")

    shown = _shown_params(summary, study)
    tables = _measures_tables(summary, shown, "inline")  # the page: value (MCSE)
    file_tables = _measures_tables(summary, shown, "below")  # a manuscript's page: each MCSE under its value
    failures = _failures_table(summary)
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
        for spec in _figure_specs(summary, estimates, shown):
            files, why = _render(spec)
            for fmt, data in files.items():
                _write_bytes(directory / "figures" / f"{spec.stem}.{fmt}", data)
            png = files.get("png")
            rendered.append((spec, base64.b64encode(png).decode("ascii") if png else None, why))

    page = _page(summary, study, tables, rendered, figures, estimates is not None or not figures)
    out = directory / "report.html"
    _write_text(out, page)
    return out


# --- reading ------------------------------------------------------------------------------------------


def _read_dataset(path: Path, name: str) -> xr.Dataset:
    if not path.is_file():
        raise ValueError(f"{str(path.parent)!r} has no {name}; is it the output directory of a finished run?")
    try:
        return read_netcdf(path)
    except (OSError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"cannot read {str(path)!r}: {first}") from None


def _attr(study: dict[str, Any], summary: xr.Dataset, key: str, default: Any) -> Any:
    """A field of study.json, else the summary's attribute of that name (decoded from JSON)."""
    if key in study and study[key] is not None:
        return study[key]
    return json_attr(summary, key, default)


def _factors(ds: xr.Dataset) -> list[str]:
    return [str(d) for d in ds["n_rep"].dims if d not in _NOT_FACTORS]


def _varying(ds: xr.Dataset) -> list[str]:
    return [f for f in _factors(ds) if ds.sizes[f] > 1]


def _params(ds: xr.Dataset) -> list[str]:
    return [str(p) for p in ds.coords["param"].values]


def _methods(ds: xr.Dataset) -> list[str]:
    return [str(m) for m in ds.coords["estimator"].values]


def _shown_params(summary: xr.Dataset, study: dict[str, Any]) -> list[str]:
    """The study's featured parameters (``show``), else every parameter."""
    show = _attr(study, summary, "show", []) or []
    show = [show] if isinstance(show, str) else list(show)
    have = _params(summary)
    chosen = [p for p in show if p in have]
    return chosen or have


def _stems(names: Sequence[str], prefix: str) -> list[str]:
    """File stems from parameter names (``var(group)`` -> ``measures_var_group``), made unique."""
    out: list[str] = []
    for name in names:
        stem = prefix + (re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower() or "param")
        base, k = stem, 2
        while stem in out:
            stem, k = f"{base}_{k}", k + 1
        out.append(stem)
    return out


def _fixed(ds: xr.Dataset) -> dict[str, Any]:
    return {f: ds.coords[f].values[0] for f in _factors(ds) if ds.sizes[f] == 1}


def _cells(ds: xr.Dataset, factors: Sequence[str]) -> list[dict[str, Any]]:
    return [dict(zip(factors, combo)) for combo in itertools.product(*(ds.coords[f].values for f in factors))]


def _pick(ds: xr.Dataset, cell: dict[str, Any]) -> xr.Dataset:
    """Select one level of each factor by position (no float comparison)."""
    index = {}
    for f, v in cell.items():
        values = list(ds.coords[f].values)
        index[f] = next(i for i, w in enumerate(values) if w == v)
    return ds.isel(index)


# --- tables -------------------------------------------------------------------------------------------


def _measures_tables(summary: xr.Dataset, shown: Sequence[str], mcse: str) -> list[PaperTable]:
    """Per shown parameter, the main table and (if any of its measures has a value) the second one."""
    out: list[PaperTable] = []
    for p, stem in zip(shown, _stems(shown, "measures_")):
        main = _measures_table(summary, p, stem, mcse=mcse)
        more = _measures_table(summary, p, stem + _MORE, MORE_MEASURES, mcse=mcse)
        out += [t for t in (main, more) if t is not None]
    return out


def _measures_table(summary: xr.Dataset, param: str, stem: str, measures: Sequence[str] = TABLE_MEASURES,
                    mcse: str = "inline") -> PaperTable | None:
    """Rows: cell x estimator; columns: the factors that vary, the estimator, ``value (MCSE)`` per measure
    (``mcse="below"``: the MCSEs in a row under the values, for the files).

    The main table (``measures=TABLE_MEASURES``) also has ``Valid/reps``, and is made even when no measure
    has a value (its rows then say "not estimable"); another set of measures gives ``None`` when none of
    them has a value for ``param``.
    """
    sub = summary.sel({"param": param})
    chosen = [m for m in measures if m in sub and bool(np.any(np.isfinite(sub[m].values)))]
    main = tuple(measures) == TABLE_MEASURES
    if not chosen:
        if not main:
            return None
        chosen = [m for m in measures if m in sub]
    name = (json_attr(summary, "labels", {}) or {}).get(param, param)
    caption = None if main else f"Further performance measures for {name}: " + (
        "estimate (Monte Carlo SE)" if mcse == "inline" else "estimate, and its Monte Carlo SE in parentheses below")
    return paper_table(summary, chosen, params=[param], digits=TABLE_DIGITS, layout="long", counts=main,
                       mcse=mcse, caption=caption, stem=stem)


def _failures_table(summary: xr.Dataset) -> PaperTable | None:
    """The cells and estimators with any failed, non-converged or boundary fit; ``None`` if there are none."""
    return failures_table(summary, stem="failures")


def _model(table: Table | PaperTable) -> PaperTable:
    return table.model() if isinstance(table, Table) else table


def to_markdown(table: Table | PaperTable) -> str:
    """A pipe table (GitHub, pandoc) with the caption as a pandoc ``Table:`` line, then the footnotes."""
    return _tables.to_markdown(_model(table))


def to_latex(table: Table | PaperTable) -> str:
    """A ``table`` float with a booktabs ``tabular`` (needs ``\\usepackage{booktabs}``)."""
    return _tables.to_latex(_model(table))


def to_html(table: Table | PaperTable, css: str = "") -> str:
    """An HTML ``table`` (id ``table-<stem>``) with caption, ``thead``, ``tbody`` and footnotes, in a ``div``
    that scrolls on a narrow screen; numeric cells carry class ``num``."""
    model = _model(table)
    return '<div class="scroll">\n' + _tables.to_html(model, table_id=f"table-{model.stem}", css=css) + "\n</div>"


# --- figures ------------------------------------------------------------------------------------------


def _figure_specs(summary: xr.Dataset, estimates: xr.Dataset | None, shown: Sequence[str]) -> list[FigureSpec]:
    """Which figures the report draws for each shown parameter, and how."""
    from simstudy.output.plots import _common as pc
    from simstudy.output.plots import plot_failures, plot_nested_loop, plot_performance, plot_power, plot_zip

    specs: list[FigureSpec] = []
    moving = _varying(summary)
    x = "n_groups" if "n_groups" in moving else (moving[0] if moving else None)
    extra = [f for f in moving if f != x][2:]  # more than two facet factors: hold the rest at one level
    hold = {f: summary.coords[f].values[0] for f in extra}
    held = f" Held at one level: {pc.cell_text(summary, hold)} (the nested loop plot shows every cell)." if hold else ""
    numeric = [f for f in moving if np.issubdtype(summary.coords[f].dtype, np.number)]
    power_x = "n_groups" if "n_groups" in numeric else (numeric[0] if numeric else None)
    power_extra = [f for f in moving if f != power_x][2:]
    power_hold = {f: summary.coords[f].values[0] for f in power_extra}

    def finite(param: str, measure: str) -> bool:
        return measure in summary and bool(np.any(np.isfinite(summary[measure].sel({"param": param}).values)))

    xl = pc.factor_label(summary, x) if x is not None else ""
    for p, slug in zip(shown, _stems(shown, "")):
        pl = pc.label(summary, p)
        if x is not None:
            if finite(p, "coverage"):
                specs.append(FigureSpec(
                    f"coverage_{slug}",
                    f"Coverage of {pl} against {xl}, one line per estimator, error bars \u00b11.96 MCSE. Dashed: "
                    f"the nominal level; grey band: the spread Monte Carlo error alone would give around it."
                    + held,
                    lambda p=p: plot_performance(summary, measure="coverage", x=x, param=p, select=hold)))
            if len(moving) >= 2 and finite(p, "coverage"):
                specs.append(FigureSpec(
                    f"nested_loop_coverage_{slug}",
                    f"Nested loop plot of the coverage of {pl}: every cell on one axis, the factors "
                    f"nested {' > '.join(pc.factor_label(summary, f) for f in moving)} (outermost first, legs "
                    "below).",
                    lambda p=p: plot_nested_loop(summary, measure="coverage", param=p)))
        if estimates is not None and finite(p, "coverage") and "rep" in estimates.dims:
            cell = _worst_cell(summary, p)
            specs.append(FigureSpec(
                f"zip_{slug}",
                f"Zip plot of the intervals for {pl} at {pc.cell_text(summary, cell) or 'the only cell'} (the "
                "cell with the lowest coverage of any estimator): intervals ranked by |z|, light blue if they "
                "cover the true value, vermilion if not; orange band: coverage \u00b11.96 MCSE.",
                lambda p=p, cell=cell: plot_zip(estimates, cell=cell, param=p, level=_level(summary))))
        if x is not None and finite(p, "bias"):
            specs.append(FigureSpec(
                f"bias_{slug}", f"Bias of {pl} against {xl}, error bars \u00b11.96 MCSE." + held,
                lambda p=p: plot_performance(summary, measure="bias", x=x, param=p, select=hold)))
        if x is not None and finite(p, "model_se"):
            specs.append(FigureSpec(
                f"se_{slug}",
                f"Empirical SE (broad pale lines, filled markers) and mean model SE (dashed lines, open "
                f"markers) of {pl} against {xl}: where the dashed line lies below the pale one, the "
                "estimator's SEs are too small." + held,
                lambda p=p: plot_performance(summary, measure="se", x=x, param=p, select=hold)))
        if power_x is not None and finite(p, "power"):
            specs.append(FigureSpec(
                f"power_{slug}",
                f"Power for {pl} (share of intervals excluding the null) against "
                f"{pc.factor_label(summary, power_x)}; dashed: target power 0.8."
                + (f" Held at one level: {pc.cell_text(summary, power_hold)}." if power_hold else ""),
                lambda p=p: plot_power(summary, x=power_x, param=p, select=power_hold)))
    if any(k in summary for k in FAILURE_COUNTS):
        specs.append(FigureSpec(
            "failures", "Failed, non-converged and boundary fits per cell and estimator (share of replicates; "
            "numbers are counts).", lambda: plot_failures(summary)))
    return specs


def _level(summary: xr.Dataset) -> float:
    try:
        return float(summary.attrs.get("level", 0.95))
    except (TypeError, ValueError):
        return 0.95


def _worst_cell(summary: xr.Dataset, param: str) -> dict[str, Any]:
    """The cell whose lowest coverage over methods is lowest (the first such cell)."""
    moving = _varying(summary)
    cov = summary["coverage"].sel({"param": param}).isel({f: 0 for f in _fixed(summary)})
    worst = cov.min("estimator", skipna=True).transpose(*moving)
    values = np.asarray(worst.values, dtype=float)
    if not moving:
        return {}
    flat = np.where(np.isfinite(values), values, np.inf).ravel()
    index = np.unravel_index(int(np.argmin(flat)), values.shape)
    return {f: summary.coords[f].values[i].item() for f, i in zip(moving, index)}


def _render(spec: FigureSpec) -> tuple[dict[str, bytes], str]:
    """The figure's file contents by format (:data:`FIGURE_FORMATS`), or none and the reason it could not
    be drawn."""
    from simstudy.output.plots import figure_bytes

    try:
        fig = spec.draw()
    except ValueError as exc:
        return {}, str(exc).splitlines()[0]
    return {fmt: figure_bytes(fig, fmt, dpi=FIGURE_DPI) for fmt in FIGURE_FORMATS}, ""


def _png_width(data: str) -> int | None:
    """Width in CSS pixels at which a base64 PNG of :data:`FIGURE_DPI` dpi shows at its size in inches."""
    head = base64.b64decode(data[:44])
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return round(int.from_bytes(head[16:20], "big") * 96 / FIGURE_DPI)


# --- writing ------------------------------------------------------------------------------------------


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


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 0;
       background: #fff; line-height: 1.45; }
main { max-width: 1180px; margin: 0 auto; padding: 1.5rem 2rem 3rem; }
h1 { font-size: 1.7rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.3rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; margin-top: 2.2rem; }
h3 { font-size: 1.05rem; margin-top: 1.4rem; }
p.lead { color: #555; margin-top: 0; }
nav ul { padding-left: 1.2rem; columns: 2; }
dl.ademp dt { font-weight: 600; margin-top: 0.6rem; }
dl.ademp dd { margin-left: 1.2rem; }
figure { margin: 1.5rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9rem; color: #444; margin-top: 0.3rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.82rem; margin: 0.8rem 0 1.2rem; }
caption { caption-side: top; text-align: left; font-size: 0.9rem; color: #444; padding-bottom: 0.3rem; }
th, td { padding: 0.2rem 0.55rem; border-bottom: 1px solid #e4e4e4; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
table.measures th, table.measures td { overflow-wrap: normal; }
table.measures td { white-space: nowrap; }
th { background: #f5f5f5; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
th.group { text-align: center; border-bottom: 1px solid #bbb; }
td.center, td.span { text-align: center; }
tr.gap td { border-top: 1px solid #bbb; }
tr.section th { text-align: left; font-style: italic; background: #fafafa; padding-top: 0.6rem; }
table.measures tfoot td { white-space: normal; font-size: 0.78rem; color: #555; border-bottom: none; }
details { margin: -0.6rem 0 1.2rem; }
details summary { cursor: pointer; color: #444; font-size: 0.9rem; }
p.note { color: #8a4b00; }
footer { margin-top: 3rem; font-size: 0.8rem; color: #777; }
"""


def _page(summary: xr.Dataset, study: dict[str, Any], tables: list[Table],
          rendered: list[tuple[FigureSpec, str | None, str]], figures: bool, have_estimates: bool) -> str:
    """The whole HTML document."""
    e = html.escape
    name = str(_attr(study, summary, "name", "simulation study"))
    provenance = _attr(study, summary, "provenance", {}) or {}
    run = _attr(study, summary, "run", {}) or {}
    factors = _factors(summary)
    n_cells = int(np.prod([summary.sizes[f] for f in factors])) if factors else 1
    reps = provenance.get("reps", run.get("reps", int(summary["n_rep"].max())))
    seed = provenance.get("seed", run.get("seed", "?"))
    sections = [("ademp", "Study (ADEMP)", _ademp_section(summary, study))]
    if figures:
        sections.append(("figures", "Figures", _figures_section(rendered, have_estimates)))
    sections += [
        ("tables", "Performance measures",
         _tables_section(summary, [t for t in tables if t.stem != "failures"], _shown_params(summary, study))),
        ("failures", "Failures", _failures_section(summary, next((t for t in tables if t.stem == "failures"), None),
                                                   provenance)),
        ("provenance", "Provenance", _provenance_section(provenance, run)),
    ]
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    sources = "summary.nc and study.json" + (" and estimates.nc" if figures and have_estimates else "")
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(name)}: simulation study report</title>", f"<style>{_CSS}</style>", "</head>",
        "<body>", "<main>", f"<h1>{e(name)}</h1>",
        f'<p class="lead">Simulation study report: {n_cells} design cell(s) \u00d7 {e(fmt(reps))} replicates '
        f"\u00d7 {summary.sizes['estimator']} methods ({e(', '.join(_methods(summary)))}); seed {e(fmt(seed))}; "
        f"intervals at level {e(fmt(_level(summary)))}.</p>",
        "<nav><ul>" + "".join(f'<li><a href="#{i}">{e(t)}</a></li>' for i, t, _ in sections) + "</ul></nav>",
    ]
    for ident, title, body in sections:
        parts += [f'<section id="{ident}">', f"<h2>{e(title)}</h2>", *body, "</section>"]
    parts += [f"<footer>Report written by simstudy {e(__version__)} at {e(now)} from {sources}; rebuild it "
              "with <code>simstudy report DIR</code>.</footer>", "</main>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"


def _ademp_section(summary: xr.Dataset, study: dict[str, Any]) -> list[str]:
    e = html.escape
    description = _attr(study, summary, "description", {}) or {}
    description = description if isinstance(description, dict) else {"aims": str(description)}
    parts = ['<dl class="ademp">']
    for key in list(ADEMP) + [k for k in description if k not in ADEMP]:
        text = description.get(key)
        parts.append(f"<dt>{e(ADEMP.get(key, str(key).capitalize()))}</dt>")
        parts.append(f"<dd>{e(str(text))}</dd>" if text else "<dd><em>not described in the study</em></dd>")
    parts.append("</dl>")
    design = _attr(study, summary, "design", {}) or {}
    design = design if isinstance(design, dict) else {}
    rows = [[f, ", ".join(fmt(v) for v in design.get(f, summary.coords[f].values.tolist()))]
            for f in _factors(summary)]
    parts += ["<h3>Design</h3>", to_html(Table("design", "Design factors: the grid is every combination of "
                                                 "their levels", ["factor", "levels"], rows, [False, False]))]
    dgp = _attr(study, summary, "dgp", "")
    if dgp:
        parts.append(f"<p>Data-generating process: <code>{e(str(dgp))}</code></p>")
    methods = _attr(study, summary, "estimators", {}) or _attr(study, summary, "methods", {}) or {}
    if isinstance(methods, dict) and methods:
        rows = [[str(m), str(v)] for m, v in methods.items()]
        parts += ["<h3>Methods</h3>", to_html(Table("methods", "Estimators as configured", ["name", "estimator"],
                                                    rows, [False, False]))]
    return parts


def _figures_section(rendered: list[tuple[FigureSpec, str | None, str]], have_estimates: bool) -> list[str]:
    e = html.escape
    parts = [] if have_estimates else ['<p class="note">estimates.nc is missing, so the zip plots are left out.</p>']
    for spec, data, why in rendered:
        if data is None:
            parts.append(f'<p class="note">Figure {e(spec.stem)} left out: {e(why)}</p>')
            continue
        width = _png_width(data)
        size = f' width="{width}"' if width else ""
        files = ", ".join(f"{spec.stem}.{fmt}" for fmt in FIGURE_FORMATS)
        parts += [f'<figure id="fig-{e(spec.stem)}">',
                  f'<img src="data:image/png;base64,{data}"{size} alt="{e(spec.caption)}">',
                  f"<figcaption>{e(spec.caption)} (figures/: {e(files)})</figcaption>", "</figure>"]
    return parts


def _tables_section(summary: xr.Dataset, tables: list[PaperTable], shown: Sequence[str]) -> list[str]:
    e = html.escape
    parts = [f"<p>Each entry is the estimate with its Monte Carlo standard error in parentheses, to {TABLE_DIGITS} "
             "decimals. Coverage, bias-eliminated coverage and power are proportions, relative bias a fraction, "
             "relative error and relative precision percent. Under each parameter's table, <em>More measures</em> "
             "opens a table of the others. The same tables are in tables/*.md (pandoc) and tables/*.tex "
             "(booktabs), there with each Monte Carlo SE in the row under its value so that they fit a page; "
             "<code>Results.paper_table</code> makes others, e.g. with the estimators side by side.</p>"]
    for t in tables:
        if t.stem.endswith(_MORE):
            names = ", ".join(c.text for c in t.header[-1] if c.numeric)
            parts += ["<details>", f"<summary>More measures: {e(names)}</summary>", to_html(t, css="measures"),
                      "</details>"]
        else:
            parts.append(to_html(t, css="measures"))
    notes = _notes(summary, shown)
    if notes:
        parts += ["<h3>Notes</h3>", "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>"]
    return parts


def _failures_section(summary: xr.Dataset, table: PaperTable | None, provenance: dict[str, Any]) -> list[str]:
    e = html.escape
    if table is None and any(k in summary for k in FAILURE_COUNTS):
        fits = int(summary["n_rep"].max("param").sum())
        parts = [f"<p>None of the {fits} fits (replicates \u00d7 estimators over all cells) failed, failed to "
                 "converge or ended on the boundary.</p>"]
    else:
        parts = [f"<p>{e(_failure_sentence(summary))}</p>"]
        if table is not None:
            parts.append(to_html(table, css="measures"))
    stopped = provenance.get("stopped_early") or []
    if stopped:
        parts.append('<p class="note">Cells stopped early (failure rate above the limit): '
                     + e("; ".join(cell_label(c) if isinstance(c, dict) else str(c) for c in stopped)) + "</p>")
    return parts


_PROVENANCE_ORDER = ("study", "seed", "reps", "started", "finished", "seconds", "command", "study_file",
                     "study_file_sha256", "git_commit", "host", "jobs", "chunk_size", "backend")


def _provenance_section(provenance: dict[str, Any], run: dict[str, Any]) -> list[str]:
    keys = [k for k in _PROVENANCE_ORDER if k in provenance]
    keys += sorted(k for k in provenance if k not in _PROVENANCE_ORDER and k not in ("versions", "stopped_early"))
    rows = [[k, provenance[k] if isinstance(provenance[k], str) else json.dumps(provenance[k], default=str)]
            for k in keys]
    if isinstance(run, dict) and "complete" in run:
        rows.append(["complete", str(run["complete"])])
    parts = [to_html(Table("provenance", "Where the results came from", ["item", "value"], rows, [False, False]))]
    versions = provenance.get("versions") or {}
    if isinstance(versions, dict) and versions:
        rows = [[str(k), str(v)] for k, v in versions.items()]
        parts.append(to_html(Table("versions", "Versions", ["package", "version"], rows, [False, False])))
    return parts


def _notes(summary: xr.Dataset, params: Sequence[str]) -> list[str]:
    """Why measures are missing (the summary's ``note``) for the tabulated parameters, with counts.

    Rows of a method that does not estimate a parameter are not counted, as in the tables.
    """
    if "note" not in summary:
        return []
    shown = [p for p in params if p in _params(summary)]
    sub = summary.sel({"param": shown})
    estimated = (sub["n_rep"] > 0) & (sub["note"] != NOT_REPORTED)
    counts: dict[str, int] = {}
    for note, keep in zip(np.asarray(sub["note"].values).ravel(), np.asarray(estimated.values).ravel()):
        if keep and str(note):
            counts[str(note)] = counts.get(str(note), 0) + 1
    return [f"{text} ({n} row{'s' if n != 1 else ''})" for text, n in sorted(counts.items())]


def _failure_sentence(summary: xr.Dataset) -> str:
    fits = int(summary["n_rep"].max("param").sum())
    parts = [f"{int(summary[key].sum())} {label}" for key, label in FAILURE_COUNTS.items() if key in summary]
    if not parts:
        return f"{fits} fits; this summary has no failure counts."
    return f"Of {fits} fits (replicates \u00d7 methods over all cells): " + ", ".join(parts) + "."
