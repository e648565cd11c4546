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

from simstudy.output.report.figures import FIGURE_DPI, FIGURE_FORMATS, FigureSpec
from simstudy.output.report.measures import MORE_MEASURES, TABLE_DIGITS, TABLE_MEASURES
from simstudy.output.report.write import write_report
from simstudy.output.tables import tex_escape

__all__ = ["write_report", "TABLE_MEASURES", "MORE_MEASURES", "TABLE_DIGITS", "FIGURE_FORMATS", "FIGURE_DPI",
           "FigureSpec", "tex_escape"]
