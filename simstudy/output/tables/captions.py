"""Readable names in a paper table (factors, estimators, parameters, measures) and its caption."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import xarray as xr

from simstudy.engine.store import json_attr
from simstudy.output.display import fmt

#: Readable names of the measures (and counts); a study's ``labels`` override them.
MEASURE_LABELS: dict[str, str] = {
    "bias": "Bias",
    "rel_bias": "Relative bias",
    "emp_se": "Empirical SE",
    "model_se": "Model SE",
    "rel_error": "Relative error (%)",
    "mse": "MSE",
    "rmse": "RMSE",
    "coverage": "Coverage",
    "be_coverage": "Bias-eliminated coverage",
    "power": "Power",
    "rel_precision": "Relative precision (%)",
    "n_rep": "Replicates",
    "n_valid": "Valid",
    "n_failed": "Failed",
    "n_fit_failed": "Fit failed",
    "n_nonconverged": "Not converged",
    "n_boundary": "Boundary",
}


def merged_labels(summary: xr.Dataset, labels: Mapping[str, str] | None) -> dict[str, str]:
    """The summary's ``labels`` attribute with ``labels`` on top."""
    stored = json_attr(summary, "labels", {}) or {}
    stored = stored if isinstance(stored, dict) else {}
    return {str(k): str(v) for k, v in {**stored, **dict(labels or {})}.items()}


def factor_label(factor: str, names: Mapping[str, str]) -> str:
    """A factor's label, else its name with spaces for underscores."""
    return names.get(factor, factor.replace("_", " "))


def param_label(param: str, names: Mapping[str, str]) -> str:
    """A parameter's label, else its name."""
    return names.get(param, param)


def measure_label(measure: str, names: Mapping[str, str]) -> str:
    """A measure's label: the study's, else :data:`MEASURE_LABELS`, else its name."""
    return names.get(measure, MEASURE_LABELS.get(measure, measure))


def held_text(fixed: Mapping[str, Any], names: Mapping[str, str]) -> str:
    """``group size = 5, ICC = 0.2``: the factors held at one level."""
    return ", ".join(f"{factor_label(f, names)} = {fmt(v)}" for f, v in fixed.items())


def _lower_first(text: str) -> str:
    """``Empirical SE`` -> ``empirical SE``; ``RMSE`` stays."""
    return text[0].lower() + text[1:] if len(text) > 1 and text[1].islower() else text


def _join(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def caption_text(ds: xr.Dataset, measures: list[str], names: dict[str, str], layout: str, mcse: str,
                 counts: bool, ps: list[str], fixed: dict[str, Any], caption: str | None) -> str:
    """The caption: ``caption`` (or a sentence on what the table holds), the factors held fixed, the
    nominal level of the intervals and what ``Valid/reps`` counts."""
    labels = [measure_label(m, names) for m in measures]
    subject = _join([param_label(p, names) for p in ps])
    if caption is None:
        if layout == "long":
            caption = f"Performance of the estimators for {subject}"
        else:
            caption = f"{_join([labels[0]] + [_lower_first(t) for t in labels[1:]])} for {subject}, by estimator"
        caption += {"inline": ": estimate (Monte Carlo SE).",
                    "below": ": estimate, and its Monte Carlo SE in parentheses below."}.get(mcse, ".")
    text = caption.rstrip()
    if text and text[-1] not in ".!?":
        text += "."
    if fixed:
        text += f" Held fixed: {held_text(fixed, names)}."
    if any(m in measures for m in ("coverage", "be_coverage", "power")):
        text += f" Intervals: nominal {100 * nominal_level(ds):g}%"
        if "power" in measures:
            text += f"; power is the share of intervals that exclude {fmt(ds.attrs.get('null', 0.0))}"
        text += "."
    if counts:
        text += " Valid/reps: replicates with an estimate and its SE, of those run."
    return text


def nominal_level(ds: xr.Dataset) -> float:
    """The confidence level of the intervals: the summary's ``level`` attribute, 0.95 if it has none (or not
    a number)."""
    try:
        return float(ds.attrs.get("level", 0.95))
    except (TypeError, ValueError):
        return 0.95
