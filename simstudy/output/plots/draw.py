"""Drawing helpers: the targets of the measures with their Monte Carlo band, one line per estimator
with MCSE error bars, and colours and legend handles."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.axes import Axes

from simstudy.output.plots.labels import label
from simstudy.output.plots.style import estimator_style

#: Two-sided multiplier of the MCSE for the error bars (a 95% Monte Carlo interval).
Z95 = 1.959963984540054

#: Measures whose target is 0: a grey reference line is drawn there.
ZERO_TARGET: frozenset[str] = frozenset({"bias", "rel_bias", "rel_error", "rel_precision"})

#: Measures compared with the nominal level of the intervals.
LEVEL_TARGET: frozenset[str] = frozenset({"coverage", "be_coverage"})

#: Colour of reference lines (targets, identity lines, limits of agreement).
REFERENCE = "0.35"


def target(measure: str, nominal: float) -> float | None:
    """What ``measure`` should be: 0 for bias and relative errors, the nominal level for coverage."""
    if measure in ZERO_TARGET:
        return 0.0
    if measure in LEVEL_TARGET:
        return nominal
    return None


def mc_halfwidth(nominal: float, n_rep: np.ndarray) -> np.ndarray:
    """Half-width of the 95% Monte Carlo band around a nominal coverage: ``1.96 sqrt(l (1 - l) / n)``."""
    n = np.asarray(n_rep, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, Z95 * np.sqrt(nominal * (1 - nominal) / n), np.nan)


def draw_reference(ax: Axes, ds: xr.Dataset, measure: str, edges: np.ndarray, n_rep: np.ndarray,
                   nominal: float) -> None:
    """The target of ``measure``: the nominal level with its Monte Carlo band, or a line at 0.

    ``edges`` are the left and right ends of each x position's stretch of the band (``len(n_rep) + 1``);
    the band follows the replicates of each cell, so it widens where a cell was stopped early.
    """
    if measure in LEVEL_TARGET:
        half = mc_halfwidth(nominal, n_rep)
        if np.any(np.isfinite(half)):
            lo = np.append(nominal - half, nominal - half[-1])
            hi = np.append(nominal + half, nominal + half[-1])
            band = ax.fill_between(edges, lo, hi, step="post", color="0.5", alpha=0.18, lw=0,
                                   label="Monte Carlo band", zorder=0)
            band.set_gid("mc_band")
        ax.axhline(nominal, color=REFERENCE, ls=(0, (3, 2)), lw=0.8, label=f"Nominal {nominal:g}", zorder=1
                   ).set_gid("nominal")
    elif measure in ZERO_TARGET:
        ax.axhline(0.0, color=REFERENCE, ls=(0, (3, 2)), lw=0.8, label="Zero", zorder=1).set_gid("reference")


def cell_reps(panel: xr.Dataset, estimators: Sequence[str], dims: Sequence[str]) -> np.ndarray:
    """Replicates per cell (the most of any estimator) of ``panel``, along ``dims`` flattened in order."""
    n = panel["n_rep"].sel({"estimator": list(estimators)})
    n = n.max([d for d in n.dims if d not in dims])
    return np.asarray(n.transpose(*dims).values, dtype=float).ravel()


def draw_estimators(ax: Axes, ds: xr.Dataset, panel: xr.Dataset, measure: str, x: str,
                    shifted: Sequence[np.ndarray], estimators: Sequence[str], *, mcse: bool,
                    bounds: tuple[str, str] | None = None, **line: Any) -> int:
    """One line per estimator of ``measure`` against factor ``x``, with +-1.96 MCSE error bars (or, with
    ``bounds``, bars from the two variables named, e.g. power's exact interval).

    ``panel`` holds one value per level of ``x`` and estimator; ``shifted[k]`` are the x coordinates of the
    levels for the k-th estimator (dodged so that error bars do not overlap). Each estimator has its own
    colour, marker and dash. Estimators with no finite value in this panel are left out. Returns the number
    of lines drawn.
    """
    drawn = 0
    for k, m in enumerate(estimators):
        one = panel.sel({"estimator": m})
        y = np.asarray(one[measure].transpose(x).values, dtype=float)
        if not np.any(np.isfinite(y)):
            continue
        err = Z95 * np.asarray(one[f"{measure}_mcse"].transpose(x).values, dtype=float) if mcse else None
        if mcse and bounds is not None:
            lo, hi = (np.asarray(one[b].transpose(x).values, dtype=float) for b in bounds)
            err = np.vstack([np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)])
        opts = {**estimator_style(ds, m), "elinewidth": 0.8, "capsize": 1.8, "label": label(ds, m), "zorder": 2} | line
        gid = opts.pop("gid", None)
        bar = ax.errorbar(shifted[k], y, yerr=err, **opts)
        bar.lines[0].set_gid(gid)
        drawn += 1
    return drawn


def contrast(rgba: Sequence[float]) -> str:
    """Black or white, whichever reads better on a colour (by its relative luminance)."""
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgba[:3])
    return "black" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.18 else "white"


def proxy(color: Any = "0.3", **line: Any) -> Any:
    """A legend handle: a line with a marker (``Line2D`` options)."""
    from matplotlib.lines import Line2D

    return Line2D([], [], color=color, **line)
