"""Readable names on the figures (the study's ``labels``, defaults for measures and factors) and text:
sizes, wrapping, titles.

The functions that size or wrap text read the rcParams in force, so call them inside the plot function
(which runs inside the figure's style).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib as mpl
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import TextToPath

from simstudy.engine.store import json_attr
from simstudy.output.display import fmt
from simstudy.output.tables.captions import MEASURE_LABELS as TABLE_LABELS
from simstudy.stats.measures import MEASURES

#: Readable names of the measures, used on axes unless the study's ``labels`` name them otherwise: those of
#: the tables, but for the relative error, which says what it is the error of, and the SEs drawn together.
MEASURE_LABELS: dict[str, str] = {**{m: TABLE_LABELS[m] for m in MEASURES},
                                  "rel_error": "Relative error of model SE (%)", "se": "Standard error"}


def labels(ds: xr.Dataset) -> dict[str, str]:
    """The study's ``labels`` attribute: names of factors, estimators, parameters (and measures) to labels."""
    found = json_attr(ds, "labels", {}) or {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, Mapping) else {}


def label(ds: xr.Dataset, name: Any) -> str:
    """The label of an estimator, parameter or measure: the study's label, else a default, else the name."""
    name = str(name)
    found = labels(ds)
    if name in found:
        return found[name]
    return MEASURE_LABELS.get(name, name)


def factor_label(ds: xr.Dataset, factor: str) -> str:
    """The label of a design factor: the study's label, else its name with spaces (``n groups``)."""
    return labels(ds).get(factor, factor.replace("_", " "))


def level_text(ds: xr.Dataset, factor: str, value: Any) -> str:
    """``ICC = 0.2``: a factor's label and one of its levels."""
    return f"{factor_label(ds, factor)} = {fmt(value)}"


def cell_text(ds: xr.Dataset, cell: Mapping[str, Any]) -> str:
    """``n groups = 6, ICC = 0.2``: the label of a design cell."""
    return ", ".join(level_text(ds, f, v) for f, v in cell.items())


def estimator_labels(ds: xr.Dataset, estimators: Sequence[str]) -> list[str]:
    """The estimators' labels, in order."""
    return [label(ds, m) for m in estimators]


def what_label(ds: xr.Dataset, what: str, param: str) -> str:
    """``estimate of treat`` or ``SE of treat``, with the parameter's label."""
    return f"{'SE' if what == 'se' else 'estimate'} of {label(ds, param)}"


def points(size: Any) -> float:
    """A font size (number or name such as ``"small"``) in points, under the rcParams in force."""
    return float(FontProperties(size=size).get_size_in_points())


@functools.lru_cache(maxsize=4096)
def _width_pt(text: str, size: float, family: tuple[str, ...]) -> float:
    prop = FontProperties(size=size, family=list(family))
    return max(TextToPath().get_text_width_height_descent(line or " ", prop, ismath=False)[0]
               for line in text.split("\n"))


def text_width(text: str, size: Any) -> float:
    """Width in inches of ``text`` (its longest line) at font size ``size``, in the current font family."""
    family = mpl.rcParams["font.family"]
    return _width_pt(str(text), points(size), tuple(family if isinstance(family, list) else [family])) / 72.0


def wrap(text: str, width: float, size: Any) -> str:
    """``text`` broken at spaces into lines no wider than ``width`` inches (a word longer stays whole, and
    so does a factor's last word with its level, ``cluster = 5``)."""
    out = []
    for line in str(text).split("\n"):
        if text_width(line, size) <= width:
            out.append(line)
            continue
        current = ""
        for token in re.findall(r"[^ ]+(?: = [^ ]+)? *", line):  # "ICC = 0.2" stays on one line
            if current and text_width((current + token).rstrip(), size) > width:
                out.append(current.rstrip())
                current = token
            else:
                current += token
        out.append(current.rstrip())
    return "\n".join(out)


def set_title(fig: Figure, title: str | bool | None, auto: Callable[[], str]) -> None:
    """A title above the figure when asked for: ``True`` for a description of the figure, or the text."""
    if title is None or title is False:
        return
    text = auto() if title is True else str(title)
    size = mpl.rcParams["figure.titlesize"]
    fig.suptitle(wrap(text, fig.get_figwidth() - 0.15, size), fontsize=size)


def describe(text: str, fixed: Mapping[str, Any], ds: xr.Dataset, mcse: bool) -> str:
    """The automatic title: ``text``, the factors held at one level, and what the error bars are."""
    if fixed:
        text += f" ({cell_text(ds, fixed)})"
    if mcse:
        text += "; bars: \u00b11.96 MCSE"
    return text
