"""Bland-Altman plot: how far two estimators' replicate-level estimates (or SEs) agree, in one cell.

For one design cell and one parameter, each point is one replicate: across, the mean of the two
estimators' values; up, their difference (the second minus the first). A solid line marks the mean
difference and dashed lines the limits of agreement, mean +- 1.96 SD of the differences, between which
95% of the differences would fall if they were normal.

Bland JM, Altman DG (1986). Statistical methods for assessing agreement between two methods of clinical
measurement. The Lancet 327(8476):307-310.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from simstudy.output.plots.axes import round_ticks
from simstudy.output.plots.checks import paired
from simstudy.output.plots.draw import REFERENCE, Z95
from simstudy.output.plots.labels import cell_text, label, points, set_title, what_label
from simstudy.output.plots.layout import one_axes
from simstudy.output.plots.style import PALETTE, styled


@styled
def plot_bland_altman(
    ds: xr.Dataset,
    *,
    estimators: Sequence[str] | None = None,
    param: str | None = None,
    cell: Mapping[str, Any] | None = None,
    what: str = "estimate",
    title: str | bool | None = None,
    style: Any = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Bland-Altman plot of two estimators' replicate-level estimates (or SEs) in one design cell.

    Parameters
    ----------
    ds : xarray.Dataset
        The replicate-level estimates (``estimates.nc``).
    estimators : sequence of two str, optional
        The two estimators, ``[a, b]``; the difference is ``b - a``. Default the dataset's first two.
    param : str, optional
        The parameter; default the study's first featured parameter, else the first parameter.
    cell : mapping, optional
        A level for every factor that varies; required when the design has more than one cell.
    what : {"estimate", "se"}
        Compare the estimates or the model standard errors.
    title : str or bool, optional
        No title by default; ``True`` for a description (parameter and cell), or the text.
    style : dict, str or list, optional
        Matplotlib rcParams (or a ``.mplstyle`` file or style name) merged on top of
        :data:`simstudy.output.plots.STYLE`.
    figsize : (float, float), optional
        Figure size in inches (default: about 3.6 x 2.8, larger for long labels).

    Returns
    -------
    matplotlib.figure.Figure
        One axes: the points (gid ``points``, x the means, y the differences), the mean difference (gid
        ``mean_difference``), the limits of agreement (gids ``loa_lower`` and ``loa_upper``), a line at 0
        (gid ``zero``) and the three values written at the right (gid ``value``).

    Raises
    ------
    ValueError
        For a summary dataset, estimators that are not two different ones, an unknown parameter, a missing
        or unknown cell, or fewer than two replicates with values from both.

    Examples
    --------
    >>> fig = plot_bland_altman(estimates, estimators=["ols", "lmm"], param="treat",
    ...                         cell={"n_groups": 6, "group_size": 5, "icc": 0.2})   # doctest: +SKIP
    """
    a, b, param, where, x, y, _ = paired(ds, estimators, param, cell, what, "plot_bland_altman")
    mean = (x + y) / 2
    diff = y - x
    centre = float(diff.mean())
    sd = float(diff.std(ddof=1))
    lower, upper = centre - Z95 * sd, centre + Z95 * sd

    p = what_label(ds, what, param)
    fig, ax = one_axes(f"Mean of {label(ds, a)} and {label(ds, b)}: {p}",
                       f"{label(ds, b)} \u2212 {label(ds, a)}", figsize, (2.8, 2.0))
    ax.axhline(0.0, color="0.8", lw=0.6, zorder=0, gid="zero")
    ax.plot(mean, diff, ls="none", marker="o", ms=3.2, mew=0.4, mfc=PALETTE[0], mec="white", alpha=0.75,
            zorder=2, gid="points")
    ax.axhline(centre, color="0.15", lw=1.0, zorder=3, gid="mean_difference")
    for value, gid in ((lower, "loa_lower"), (upper, "loa_upper")):
        ax.axhline(value, color=REFERENCE, ls=(0, (3, 2)), lw=0.8, zorder=3, gid=gid)
    scale = max(float(np.max(np.abs(np.concatenate([x, y])))), 1e-12)
    spread = upper - lower
    if spread <= 1e-9 * scale:  # the two agree to rounding: show a band of +-5% of the values around 0
        spread = 0.1 * scale
    low = min(lower, float(diff.min()), 0.0) - 0.22 * spread
    high = max(upper, float(diff.max()), 0.0) + 0.22 * spread
    ax.set_ylim(low, high)
    ax.margins(x=0.05)
    ax.yaxis.get_major_formatter().set_useOffset(False)
    size = points(mpl.rcParams["font.size"]) * 0.85
    line = (high - low) * (size * 1.4 / 72) / max(ax.figure.get_figheight() - 1.2, 0.5)
    if upper - centre > 1.2 * line:
        notes = ((upper, f"+1.96 SD: {upper:.3g}", "bottom"), (centre, f"Mean: {centre:.3g}", "bottom"),
                 (lower, f"\u22121.96 SD: {lower:.3g}", "top"))
    else:  # the limits are too close to the mean to label each
        notes = ((upper, f"Mean {centre:.3g}, \u00b11.96 SD: [{lower:.3g}, {upper:.3g}]", "bottom"),)
    for value, text, va in notes:
        ax.annotate(text, xy=(1, value), xycoords=("axes fraction", "data"), xytext=(-2, 2 if va == "bottom"
                    else -2), textcoords="offset points", ha="right", va=va, fontsize=size,
                    bbox={"fc": "white", "ec": "none", "alpha": 0.8, "pad": 0.6}, gid="value")
    round_ticks(ax, 5)
    set_title(fig, title, lambda: f"Agreement of {'estimates' if what == 'estimate' else 'model SEs'} of "
                                  f"{label(ds, param)} at {cell_text(ds, where)}")
    return fig
