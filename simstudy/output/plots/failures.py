"""Failure rates: fits that failed, did not converge, or ended on the boundary, per cell and estimator."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
import xarray as xr
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from simstudy.output.plots.axes import fit_ticklabels
from simstudy.output.plots.checks import cell_table, choose, fixed_levels, require_summary, varying
from simstudy.output.plots.draw import contrast
from simstudy.output.plots.labels import cell_text, estimator_labels, label, points, set_title, text_width, wrap
from simstudy.output.plots.style import styled

#: What each count means, in the order the panels are drawn.
KINDS: dict[str, str] = {
    "n_fit_failed": "Fit failed",
    "n_nonconverged": "Not converged",
    "n_boundary": "On the boundary (a variance at 0)",
    "n_failed": "No valid estimate and SE",
}


@styled
def plot_failures(
    ds: xr.Dataset,
    *,
    kinds: Sequence[str] | None = None,
    param: str | None = None,
    estimators: Sequence[str] | None = None,
    select: Mapping[str, Any] | None = None,
    title: str | bool | None = None,
    style: Any = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Heat maps of failure rates, one panel per kind of failure: a row per design cell, a column per estimator.

    The rate is the count divided by the cell's replicates (``n_rep``); each square is annotated with the
    count. Failures are data: an estimator that fails more often in small designs shows it here, next to
    the measures computed from the fits that worked.

    Parameters
    ----------
    ds : xarray.Dataset
        A summary dataset (``summary.nc``).
    kinds : sequence of str, optional
        Counts to show, from ``n_fit_failed``, ``n_nonconverged``, ``n_boundary`` (per cell and method) and
        ``n_failed`` (replicates without a valid estimate and SE for ``param``). Default: the first three
        that the dataset has, else ``n_failed``.
    param : str, optional
        Parameter for ``n_failed``; default the first featured parameter, else the first.
    estimators : sequence of str, optional
        Estimators to show (default all).
    select : mapping, optional
        Factors to hold at one level.
    title : str or bool, optional
        No title by default; ``True`` for a description (with the number of fits), or the text.
    style : dict, str or list, optional
        Matplotlib rcParams (or a ``.mplstyle`` file or style name) merged on top of
        :data:`simstudy.output.plots.STYLE`.
    figsize : (float, float), optional
        Figure size in inches; default from the number of cells.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per kind, each with one image of shape (cells, estimators) holding the rates.

    Raises
    ------
    ValueError
        For an unknown kind, parameter, estimator or factor.

    Examples
    --------
    >>> fig = plot_failures(summary)   # doctest: +SKIP
    """
    require_summary(ds, "plot_failures")
    if kinds is None:
        kinds = [k for k in ("n_fit_failed", "n_nonconverged", "n_boundary") if k in ds] or ["n_failed"]
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    if not kinds:
        raise ValueError("kinds is empty; choose from: " + ", ".join(k for k in KINDS if k in ds))
    for k in kinds:
        if k not in KINDS or k not in ds:
            raise ValueError(f"unknown kind {k!r}; choose from: {', '.join(k for k in KINDS if k in ds)}")
    ds, param, estimators = choose(ds, select, param, estimators)
    order = varying(ds)
    sub, fixed = fixed_levels(ds, keep=order)
    cells = cell_table(sub, order)
    n_rep = sub["n_rep"].sel({"estimator": estimators}).max("param").transpose(*order, "estimator")
    reps = np.asarray(n_rep.values, dtype=float).reshape(len(cells), len(estimators))

    counts = {}
    for k in kinds:
        da = sub[k].sel({"estimator": estimators})
        da = da.sel({"param": param}) if "param" in da.dims else da
        counts[k] = np.asarray(da.transpose(*order, "estimator").values, dtype=float).reshape(reps.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = {k: np.where(reps > 0, v / reps, np.nan) for k, v in counts.items()}
    top = max([float(np.nanmax(r)) if np.any(np.isfinite(r)) else 0.0 for r in rates.values()] + [0.0])
    norm = Normalize(0.0, max(top, 0.05))

    names = estimator_labels(ds, estimators)
    labels = [cell_text(sub, cell) for cell in cells] if order else ["all"]
    tick = points(mpl.rcParams["ytick.labelsize"])
    label_w = max(text_width(t, tick) for t in labels)
    if figsize is None:
        width = label_w + 1.6 + len(kinds) * max(0.42 * len(estimators) + 0.25, 1.3)
        upright = min(max(text_width(t, tick) for t in names), 1.5)
        height = max(0.18 * len(cells), 0.6) + 1.0 + upright
        figsize = (min(width, 12.0), min(height, 20.0))
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(1, len(kinds), squeeze=False, sharey=True)[0]
    panel_w = max((fig.get_figwidth() - label_w - 1.6) / len(kinds), 0.8)
    cell_w = panel_w / len(estimators)
    for ax, k in zip(axes, kinds):
        image = ax.imshow(rates[k], cmap="Reds", norm=norm, aspect="auto", interpolation="nearest")
        image.set_gid(k)
        cmap = image.get_cmap()
        for (i, j), value in np.ndenumerate(counts[k]):
            if np.isfinite(value):
                ax.text(j, i, f"{int(value)}", ha="center", va="center", fontsize=6.5,
                        color=contrast(cmap(norm(rates[k][i, j]))))
        ax.set_xticks(range(len(estimators)))
        fit_ticklabels(ax, names, cell_w)
        ax.set_yticks(range(len(cells)), labels)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        text = KINDS[k] + (f" ({label(ds, param)})" if k == "n_failed" else "")
        ax.set_title(wrap(text, panel_w, mpl.rcParams["axes.titlesize"]))
    fig.colorbar(image, ax=list(axes), label="Share of replicates", shrink=0.8, pad=0.02)
    total = int(np.nansum(reps))
    what = f"Failures per cell and estimator (numbers: counts of {total} fits)"
    if fixed:
        what += f"; {cell_text(ds, fixed)}"
    set_title(fig, title, lambda: what)
    return fig
