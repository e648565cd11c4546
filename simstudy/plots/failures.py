"""Failure rates: fits that failed, did not converge, or ended on the boundary, per cell and method."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from simstudy.plots import _common as c

#: What each count means, in the order the panels are drawn.
KINDS: dict[str, str] = {
    "n_fit_failed": "fit failed",
    "n_nonconverged": "not converged",
    "n_boundary": "on the boundary (a variance at 0)",
    "n_failed": "no valid estimate and SE",
}


def plot_failures(
    ds: xr.Dataset,
    *,
    kinds: Sequence[str] | None = None,
    param: str | None = None,
    methods: Sequence[str] | None = None,
    select: Mapping[str, Any] | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Heat maps of failure rates, one panel per kind of failure: a row per design cell, a column per method.

    The rate is the count divided by the cell's replicates (``n_rep``); each square is annotated with the
    count. Failures are data: a method that fails more often in small designs shows it here, next to
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
    methods : sequence of str, optional
        Methods to show (default all).
    select : mapping, optional
        Factors to hold at one level.
    figsize : (float, float), optional
        Figure size in inches; default from the number of cells.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per kind, each with one image of shape (cells, methods) holding the rates.

    Raises
    ------
    ValueError
        For an unknown kind, parameter, method or factor.

    Examples
    --------
    >>> fig = plot_failures(summary)   # doctest: +SKIP
    """
    c.require_summary(ds, "plot_failures")
    if kinds is None:
        kinds = [k for k in ("n_fit_failed", "n_nonconverged", "n_boundary") if k in ds] or ["n_failed"]
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    if not kinds:
        raise ValueError("kinds is empty; choose from: " + ", ".join(k for k in KINDS if k in ds))
    for k in kinds:
        if k not in KINDS or k not in ds:
            raise ValueError(f"unknown kind {k!r}; choose from: {', '.join(k for k in KINDS if k in ds)}")
    ds = c.select(ds, select)
    param = c.resolve_param(ds, param)
    methods = c.resolve_methods(ds, methods)
    order = c.varying(ds)
    sub, fixed = c.fixed_levels(ds, keep=order)
    cells = [dict(zip(order, combo)) for combo in itertools.product(*(sub.coords[f].values for f in order))]
    n_rep = sub["n_rep"].sel({"method": methods}).max("param").transpose(*order, "method")
    reps = np.asarray(n_rep.values, dtype=float).reshape(len(cells), len(methods))

    counts = {}
    for k in kinds:
        da = sub[k].sel({"method": methods})
        da = da.sel({"param": param}) if "param" in da.dims else da
        counts[k] = np.asarray(da.transpose(*order, "method").values, dtype=float).reshape(reps.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = {k: np.where(reps > 0, v / reps, np.nan) for k, v in counts.items()}
    top = max([float(np.nanmax(r)) if np.any(np.isfinite(r)) else 0.0 for r in rates.values()] + [0.0])
    norm = Normalize(0.0, max(top, 0.05))

    if figsize is None:
        figsize = (min(1.0 + len(kinds) * (0.75 * len(methods) + 0.6) + (2.2 if order else 0.6), 18.0),
                   min(1.6 + 0.3 * len(cells), 20.0))
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(1, len(kinds), squeeze=False, sharey=True)[0]
    labels = [c.cell_label(cell) for cell in cells] if order else ["all"]
    for ax, k in zip(axes, kinds):
        image = ax.imshow(rates[k], cmap="Reds", norm=norm, aspect="auto", interpolation="nearest")
        image.set_gid(k)
        for (i, j), value in np.ndenumerate(counts[k]):
            if np.isfinite(value):
                dark = norm(rates[k][i, j]) > 0.6
                ax.text(j, i, f"{int(value)}", ha="center", va="center", fontsize=7,
                        color="white" if dark else "0.15")
        ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(cells)), labels, fontsize=8)
        ax.set_title(KINDS[k] + (f" ({param})" if k == "n_failed" else ""), fontsize=9)
        ax.set_xlabel("method")
    axes[0].set_ylabel("cell (" + ", ".join(order) + ")" if order else "cell")
    fig.colorbar(image, ax=list(axes), label="share of replicates", shrink=0.8, pad=0.02)
    total = int(np.nansum(reps))
    title = f"failures per cell and method (numbers: counts of {total} fits)"
    if fixed:
        title += f"; {c.cell_label(fixed)}"
    fig.suptitle(title, fontsize=10)
    return fig
