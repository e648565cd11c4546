"""Tables of performance measures for a paper: a table model built from a summary, and three renderers.

:func:`paper_table` picks measures, parameters, estimators, factor levels and digits from a run's
``summary.nc`` and returns a :class:`PaperTable`: header rows (with column groups), body rows (with panel
headings), column alignment, caption and footnotes. The same model renders as

- LaTeX with booktabs (:func:`to_latex`): ``\\toprule``/``\\midrule``/``\\bottomrule``, ``\\multicolumn`` and
  ``\\cmidrule`` for grouped headers, plain numbers (no ``siunitx``), optionally in a ``table`` float;
- Markdown (:func:`to_markdown`): a pipe table with a pandoc ``Table:`` caption;
- HTML (:func:`to_html`): a ``<table>`` with ``<thead>`` (``colspan`` for groups) and numeric cells of
  class ``num``.

Layouts
-------
``"long"`` (the default): one row per design cell and estimator, one column per measure. Its width grows
with the number of measures only, so six measures with ``value (MCSE)`` entries fit a page (or a report)
without sideways scrolling; more cells only make it longer, and a page break is where a paper's table may
grow. Rows of one cell are set off by a little space, and repeated factor levels are left blank.

``"by_estimator"``: one row per design cell, the estimators as column groups (a two-level header) of the
chosen measures. It puts the estimators of one cell side by side, which is the comparison a paper makes,
but its width is estimators x measures: meant for one measure (the measure spans the estimators in the
header) or two (each estimator spans its measures). :func:`failures_table` lists the cells and
estimators with failed, non-converged or boundary fits.

Examples
--------
>>> table = paper_table(summary, ["bias", "coverage"], params="treat")          # doctest: +SKIP
>>> print(table.to_latex())                                                    # doctest: +SKIP
>>> paper_table(summary, "coverage", layout="by_estimator", where={"group_size": 20})   # doctest: +SKIP
"""

from simstudy.output.tables.build import FAILURE_COUNTS, LAYOUTS, failures_table, paper_table, simple_table
from simstudy.output.tables.captions import MEASURE_LABELS
from simstudy.output.tables.cells import DASH, NOT_ESTIMABLE
from simstudy.output.tables.html import to_html
from simstudy.output.tables.latex import tex_escape, to_latex
from simstudy.output.tables.markdown import to_markdown
from simstudy.output.tables.model import Cell, PaperTable, Row
from simstudy.output.tables.selection import PAPER_MEASURES

__all__ = [
    "Cell", "Row", "PaperTable", "paper_table", "failures_table", "simple_table", "to_latex", "to_markdown",
    "to_html", "tex_escape", "MEASURE_LABELS", "PAPER_MEASURES", "FAILURE_COUNTS", "LAYOUTS", "DASH",
    "NOT_ESTIMABLE",
]
