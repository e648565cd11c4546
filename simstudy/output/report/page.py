"""The report's HTML page: one self-contained document with the ADEMP description, the figures (PNG as data
URIs), the tables, the failures and the provenance of the run."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
import xarray as xr

from simstudy import __version__
from simstudy.engine.assemble import NOT_REPORTED
from simstudy.output.display import cell_label, fmt
from simstudy.output.report.figures import FIGURE_FORMATS, FigureSpec, png_width
from simstudy.output.report.measures import MORE, TABLE_DIGITS
from simstudy.output.report.run import study_field
from simstudy.output.tables import FAILURE_COUNTS, PaperTable, simple_table, to_html
from simstudy.output.tables.captions import nominal_level
from simstudy.output.tables.selection import design_factors

ADEMP: dict[str, str] = {
    "aims": "Aims",
    "data": "Data-generating mechanisms",
    "estimands": "Estimands",
    "methods": "Methods",
    "performance": "Performance measures",
}


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


def page(summary: xr.Dataset, study: dict[str, Any], shown: Sequence[str], tables: list[PaperTable],
         rendered: list[tuple[FigureSpec, str | None, str]], figures: bool, have_estimates: bool) -> str:
    """The whole HTML document."""
    e = html.escape
    name = str(study_field(study, summary, "name", "simulation study"))
    provenance = study_field(study, summary, "provenance", {}) or {}
    run = study_field(study, summary, "run", {}) or {}
    factors = design_factors(summary)
    n_cells = int(np.prod([summary.sizes[f] for f in factors])) if factors else 1
    reps = provenance.get("reps", run.get("reps", int(summary["n_rep"].max())))
    seed = provenance.get("seed", run.get("seed", "?"))
    methods = ", ".join(str(m) for m in summary.coords["estimator"].values)
    sections = [("ademp", "Study (ADEMP)", _ademp_section(summary, study))]
    if figures:
        sections.append(("figures", "Figures", figures_section(rendered, have_estimates)))
    sections += [
        ("tables", "Performance measures",
         _tables_section(summary, [t for t in tables if t.stem != "failures"], shown)),
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
        f"\u00d7 {summary.sizes['estimator']} methods ({e(methods)}); seed {e(fmt(seed))}; "
        f"intervals at level {e(fmt(nominal_level(summary)))}.</p>",
        "<nav><ul>" + "".join(f'<li><a href="#{i}">{e(t)}</a></li>' for i, t, _ in sections) + "</ul></nav>",
    ]
    for ident, title, body in sections:
        parts += [f'<section id="{ident}">', f"<h2>{e(title)}</h2>", *body, "</section>"]
    parts += [f"<footer>Report written by simstudy {e(__version__)} at {e(now)} from {sources}; rebuild it "
              "with <code>simstudy report DIR</code>.</footer>", "</main>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"


def _ademp_section(summary: xr.Dataset, study: dict[str, Any]) -> list[str]:
    e = html.escape
    description = study_field(study, summary, "description", {}) or {}
    description = description if isinstance(description, dict) else {"aims": str(description)}
    parts = ['<dl class="ademp">']
    for key in list(ADEMP) + [k for k in description if k not in ADEMP]:
        text = description.get(key)
        parts.append(f"<dt>{e(ADEMP.get(key, str(key).capitalize()))}</dt>")
        parts.append(f"<dd>{e(str(text))}</dd>" if text else "<dd><em>not described in the study</em></dd>")
    parts.append("</dl>")
    design = study_field(study, summary, "design", {}) or {}
    design = design if isinstance(design, dict) else {}
    rows = [[f, ", ".join(fmt(v) for v in design.get(f, summary.coords[f].values.tolist()))]
            for f in design_factors(summary)]
    design_table = simple_table("design", "Design factors: the grid is every combination of their levels",
                                ["factor", "levels"], rows, [False, False])
    parts += ["<h3>Design</h3>", table_html(design_table)]
    dgp = study_field(study, summary, "dgp", "")
    if dgp:
        parts.append(f"<p>Data-generating process: <code>{e(str(dgp))}</code></p>")
    methods = study_field(study, summary, "estimators", {}) or study_field(study, summary, "methods", {}) or {}
    if isinstance(methods, dict) and methods:
        rows = [[str(m), str(v)] for m, v in methods.items()]
        parts += ["<h3>Methods</h3>", table_html(simple_table("methods", "Estimators as configured",
                                                              ["name", "estimator"], rows, [False, False]))]
    return parts


def figures_section(rendered: list[tuple[FigureSpec, str | None, str]], have_estimates: bool) -> list[str]:
    e = html.escape
    parts = [] if have_estimates else ['<p class="note">estimates.nc is missing, so the zip plots are left out.</p>']
    for spec, data, why in rendered:
        if data is None:
            parts.append(f'<p class="note">Figure {e(spec.stem)} left out: {e(why)}</p>')
            continue
        width = png_width(data)
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
        if t.stem.endswith(MORE):
            names = ", ".join(c.text for c in t.header[-1] if c.numeric)
            parts += ["<details>", f"<summary>More measures: {e(names)}</summary>", table_html(t, css="measures"),
                      "</details>"]
        else:
            parts.append(table_html(t, css="measures"))
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
            parts.append(table_html(table, css="measures"))
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
    parts = [table_html(simple_table("provenance", "Where the results came from", ["item", "value"], rows,
                                     [False, False]))]
    versions = provenance.get("versions") or {}
    if isinstance(versions, dict) and versions:
        rows = [[str(k), str(v)] for k, v in versions.items()]
        parts.append(table_html(simple_table("versions", "Versions", ["package", "version"], rows, [False, False])))
    return parts


def _notes(summary: xr.Dataset, shown: Sequence[str]) -> list[str]:
    """Why measures are missing (the summary's ``note``) for the tabulated parameters ``shown``, with counts.

    Rows of a method that does not estimate a parameter are not counted, as in the tables.
    """
    if "note" not in summary:
        return []
    sub = summary.sel({"param": list(shown)})
    estimated = (sub["n_rep"] > 0) & (sub["note"] != NOT_REPORTED)
    counts: dict[str, int] = {}
    for note, keep in zip(np.asarray(sub["note"].values).ravel(), np.asarray(estimated.values).ravel()):
        if keep and str(note):
            counts[str(note)] = counts.get(str(note), 0) + 1
    return [f"{text} ({n} row{'s' if n != 1 else ''})" for text, n in sorted(counts.items())]


def _failure_sentence(summary: xr.Dataset) -> str:
    fits = int(summary["n_rep"].max("param").sum())
    parts = [f"{int(summary[key].sum())} {label.lower()}" for key, label in FAILURE_COUNTS.items()
             if key in summary]
    if not parts:
        return f"{fits} fits; this summary has no failure counts."
    return f"Of {fits} fits (replicates \u00d7 methods over all cells): " + ", ".join(parts) + "."


def table_html(table: PaperTable, css: str = "") -> str:
    """An HTML ``table`` (id ``table-<stem>``) with caption, ``thead``, ``tbody`` and footnotes, in a ``div``
    that scrolls on a narrow screen; numeric cells carry class ``num``."""
    return '<div class="scroll">\n' + to_html(table, table_id=f"table-{table.stem}", css=css) + "\n</div>"
