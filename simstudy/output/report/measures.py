"""The report's tables of performance measures: per shown parameter, a main table of six measures that fits
the page without sideways scrolling, and a second table with the other measures."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from simstudy.engine.store import json_attr
from simstudy.output.report.run import stems
from simstudy.output.tables import PaperTable, paper_table

#: The measures of the report's main table per parameter, in order; a measure with no value is left out.
TABLE_MEASURES: tuple[str, ...] = ("bias", "emp_se", "model_se", "coverage", "rmse", "power")

#: The other measures, in a second table per parameter (folded away in the page; ``measures_<param>_more``).
MORE_MEASURES: tuple[str, ...] = ("rel_bias", "rel_error", "be_coverage", "rel_precision")

#: Decimals of the values and MCSEs in the report's tables.
TABLE_DIGITS = 3

#: The file stem suffix of the second table of a parameter.
MORE = "_more"


def measures_tables(summary: xr.Dataset, shown: Sequence[str], mcse: str) -> list[PaperTable]:
    """Per shown parameter, the main table and (if any of its measures has a value) the second one."""
    out: list[PaperTable] = []
    for p, stem in zip(shown, stems(shown, "measures_")):
        main = measures_table(summary, p, stem, mcse=mcse)
        more = measures_table(summary, p, stem + MORE, MORE_MEASURES, mcse=mcse)
        out += [t for t in (main, more) if t is not None]
    return out


def measures_table(summary: xr.Dataset, param: str, stem: str, measures: Sequence[str] = TABLE_MEASURES,
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
