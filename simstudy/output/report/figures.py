"""The report's figures: which ones it draws for each shown parameter (with their captions), and their files
(PDF, SVG and PNG at :data:`FIGURE_DPI` dpi)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from simstudy.output.report.run import stems, varying
from simstudy.output.tables import FAILURE_COUNTS
from simstudy.output.tables.captions import nominal_level
from simstudy.output.tables.selection import design_factors

#: The files written per figure, ``DIR/figures/<stem>.<format>``; the page embeds the PNG.
FIGURE_FORMATS: tuple[str, ...] = ("pdf", "svg", "png")

#: Resolution of the PNG files (and so of the figures in the page, shown at their size in inches).
FIGURE_DPI = 300


@dataclass(frozen=True)
class FigureSpec:
    """A figure of the report: file stem, caption, and a function that draws it."""

    stem: str
    caption: str
    draw: Callable[[], Any]



def figure_specs(summary: xr.Dataset, estimates: xr.Dataset | None, shown: Sequence[str]) -> list[FigureSpec]:
    """Which figures the report draws for each shown parameter, and how."""
    from simstudy.output.plots import plot_failures, plot_nested_loop, plot_performance, plot_power, plot_zip
    from simstudy.output.plots.labels import cell_text, factor_label, label

    specs: list[FigureSpec] = []
    moving = varying(summary)
    x = "n_groups" if "n_groups" in moving else (moving[0] if moving else None)
    extra = [f for f in moving if f != x][2:]  # more than two facet factors: hold the rest at one level
    hold = {f: summary.coords[f].values[0] for f in extra}
    held = f" Held at one level: {cell_text(summary, hold)} (the nested loop plot shows every cell)." if hold else ""
    numeric = [f for f in moving if np.issubdtype(summary.coords[f].dtype, np.number)]
    power_x = "n_groups" if "n_groups" in numeric else (numeric[0] if numeric else None)
    power_extra = [f for f in moving if f != power_x][2:]
    power_hold = {f: summary.coords[f].values[0] for f in power_extra}

    def finite(param: str, measure: str) -> bool:
        return measure in summary and bool(np.any(np.isfinite(summary[measure].sel({"param": param}).values)))

    xl = factor_label(summary, x) if x is not None else ""
    for p, slug in zip(shown, stems(shown, "")):
        pl = label(summary, p)
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
                    f"nested {' > '.join(factor_label(summary, f) for f in moving)} (outermost first, legs "
                    "below).",
                    lambda p=p: plot_nested_loop(summary, measure="coverage", param=p)))
        if estimates is not None and finite(p, "coverage") and "rep" in estimates.dims:
            cell = _worst_cell(summary, p)
            specs.append(FigureSpec(
                f"zip_{slug}",
                f"Zip plot of the intervals for {pl} at {cell_text(summary, cell) or 'the only cell'} (the "
                "cell with the lowest coverage of any estimator): intervals ranked by |z|, light blue if they "
                "cover the true value, vermilion if not; orange band: coverage \u00b11.96 MCSE.",
                lambda p=p, cell=cell: plot_zip(estimates, cell=cell, param=p, level=nominal_level(summary))))
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
                f"{factor_label(summary, power_x)}; dashed: target power 0.8."
                + (f" Held at one level: {cell_text(summary, power_hold)}." if power_hold else ""),
                lambda p=p: plot_power(summary, x=power_x, param=p, select=power_hold)))
    if any(k in summary for k in FAILURE_COUNTS):
        specs.append(FigureSpec(
            "failures", "Failed, non-converged and boundary fits per cell and estimator (share of replicates; "
            "numbers are counts).", lambda: plot_failures(summary)))
    return specs


def _worst_cell(summary: xr.Dataset, param: str) -> dict[str, Any]:
    """The cell whose lowest coverage over methods is lowest (the first such cell)."""
    moving = varying(summary)
    fixed = {f: 0 for f in design_factors(summary) if summary.sizes[f] == 1}
    cov = summary["coverage"].sel({"param": param}).isel(fixed)
    worst = cov.min("estimator", skipna=True).transpose(*moving)
    values = np.asarray(worst.values, dtype=float)
    if not moving:
        return {}
    flat = np.where(np.isfinite(values), values, np.inf).ravel()
    index = np.unravel_index(int(np.argmin(flat)), values.shape)
    return {f: summary.coords[f].values[i].item() for f, i in zip(moving, index)}


def render(spec: FigureSpec) -> tuple[dict[str, bytes], str]:
    """The figure's file contents by format (:data:`FIGURE_FORMATS`), or none and the reason it could not
    be drawn."""
    from simstudy.output.plots import figure_bytes

    try:
        fig = spec.draw()
    except ValueError as exc:
        return {}, str(exc).splitlines()[0]
    return {fmt: figure_bytes(fig, fmt, dpi=FIGURE_DPI) for fmt in FIGURE_FORMATS}, ""


def png_width(data: str) -> int | None:
    """Width in CSS pixels at which a base64 PNG of :data:`FIGURE_DPI` dpi shows at its size in inches."""
    head = base64.b64decode(data[:44])
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return round(int.from_bytes(head[16:20], "big") * 96 / FIGURE_DPI)
