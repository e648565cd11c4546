"""Scatter of two estimators' replicate-level estimates (or SEs) against each other (rsimsum's ``est``).

For one design cell and one parameter, each point is one replicate: the estimate of the first estimator
across, the second up. Points on the dashed identity line agree; a cloud tilted off it, shifted from it or
fanning out shows how the estimators differ in that cell. With ``what="se"`` the points are the model SEs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from simstudy.output.plots.checks import paired
from simstudy.output.plots.draw import REFERENCE
from simstudy.output.plots.labels import cell_text, label, set_title, what_label
from simstudy.output.plots.layout import one_axes
from simstudy.output.plots.style import PALETTE, styled


@styled
def plot_estimates(
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
    """Scatter the replicate-level estimates (or SEs) of two estimators in one design cell, with y = x.

    Parameters
    ----------
    ds : xarray.Dataset
        The replicate-level estimates (``estimates.nc``).
    estimators : sequence of two str, optional
        The estimator across (x) and the one up (y); default the dataset's first two.
    param : str, optional
        The parameter; default the study's first featured parameter, else the first parameter.
    cell : mapping, optional
        A level for every factor that varies, e.g. ``{"n_groups": 6, "icc": 0.2}``; required when the
        design has more than one cell.
    what : {"estimate", "se"}
        Compare the estimates or the model standard errors.
    title : str or bool, optional
        No title by default; ``True`` for a description (parameter and cell), or the text.
    style : dict, str or list, optional
        Matplotlib rcParams (or a ``.mplstyle`` file or style name) merged on top of
        :data:`simstudy.output.plots.STYLE`.
    figsize : (float, float), optional
        Figure size in inches (default: about 3.2 x 3.2, larger for long labels; the axes are square, x
        and y on one scale).

    Returns
    -------
    matplotlib.figure.Figure
        One axes: the points (gid ``points``; one per replicate with a finite value from both), the
        identity line (gid ``identity``), dotted lines at the true value (gid ``true``, estimates only) and
        a note of the number of replicates and the correlation (gid ``stats``).

    Raises
    ------
    ValueError
        For a summary dataset, estimators that are not two different ones, an unknown parameter, a missing
        or unknown cell, or fewer than two replicates with values from both.

    Examples
    --------
    >>> fig = plot_estimates(estimates, estimators=["ols", "lmm"], param="treat",
    ...                      cell={"n_groups": 6, "group_size": 5, "icc": 0.2})   # doctest: +SKIP
    """
    a, b, param, where, x, y, true = paired(ds, estimators, param, cell, what, "plot_estimates")
    fig, ax = one_axes(f"{label(ds, a)}: {what_label(ds, what, param)}",
                       f"{label(ds, b)}: {what_label(ds, what, param)}", figsize, (2.4, 2.4))
    lo = float(min(x.min(), y.min()))
    hi = float(max(x.max(), y.max()))
    if what == "estimate" and np.isfinite(true):
        lo, hi = min(lo, true), max(hi, true)
    pad = 0.05 * (hi - lo or abs(hi) or 1.0)
    lim = (lo - pad, hi + pad)
    ax.plot(lim, lim, color=REFERENCE, ls=(0, (3, 2)), lw=0.8, zorder=1, gid="identity", label="y = x")
    if what == "estimate" and np.isfinite(true):
        ax.axvline(true, color="0.6", ls=(0, (1, 1.5)), lw=0.8, zorder=0, gid="true")
        ax.axhline(true, color="0.6", ls=(0, (1, 1.5)), lw=0.8, zorder=0, gid="true")
    ax.plot(x, y, ls="none", marker="o", ms=3.2, mew=0.4, mfc=PALETTE[0], mec="white", alpha=0.75,
            zorder=2, gid="points")
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.set_aspect("equal", adjustable="box")
    r = float(np.corrcoef(x, y)[0, 1]) if np.std(x) > 0 and np.std(y) > 0 else np.nan
    ax.annotate(f"n = {x.size}\nr = {r:.3f}", xy=(0.04, 0.96), xycoords="axes fraction", ha="left", va="top",
                gid="stats")
    for axis in (ax.xaxis, ax.yaxis):  # the same ticks on both axes of the square
        axis.set_major_locator(MaxNLocator(nbins=4))
    set_title(fig, title, lambda: f"{'Estimates' if what == 'estimate' else 'Model SEs'} of "
                                  f"{label(ds, param)} at {cell_text(ds, where)}")
    return fig
