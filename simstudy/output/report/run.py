"""What the report reads of a finished run: its datasets, the fields of ``study.json`` (else the summary's
attributes), the parameters it shows, and file stems made from their names."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import xarray as xr

from simstudy.engine.store import json_attr, read_netcdf
from simstudy.output.tables.selection import design_factors


def read_dataset(path: Path, name: str) -> xr.Dataset:
    """The dataset at ``path``; ``ValueError`` with one line when it is missing or unreadable."""
    if not path.is_file():
        raise ValueError(f"{str(path.parent)!r} has no {name}; is it the output directory of a finished run?")
    try:
        return read_netcdf(path)
    except (OSError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"cannot read {str(path)!r}: {first}") from None


def study_field(study: dict[str, Any], summary: xr.Dataset, key: str, default: Any) -> Any:
    """A field of study.json, else the summary's attribute of that name (decoded from JSON)."""
    if key in study and study[key] is not None:
        return study[key]
    return json_attr(summary, key, default)


def varying(ds: xr.Dataset) -> list[str]:
    """The design factors with more than one level."""
    return [f for f in design_factors(ds) if ds.sizes[f] > 1]


def shown_params(summary: xr.Dataset, study: dict[str, Any]) -> list[str]:
    """The study's featured parameters (``show``), else every parameter."""
    show = study_field(study, summary, "show", []) or []
    show = [show] if isinstance(show, str) else list(show)
    have = [str(p) for p in summary.coords["param"].values]
    chosen = [p for p in show if p in have]
    return chosen or have


def stems(names: Sequence[str], prefix: str) -> list[str]:
    """File stems from parameter names (``var(group)`` -> ``measures_var_group``), made unique."""
    out: list[str] = []
    for name in names:
        stem = prefix + (re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower() or "param")
        base, k = stem, 2
        while stem in out:
            stem, k = f"{base}_{k}", k + 1
        out.append(stem)
    return out
