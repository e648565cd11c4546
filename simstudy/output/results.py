"""A finished run as one object: its two datasets, decoded metadata, tidy tables, figures and a notebook view.

:func:`load` reads a run directory (``results/<study>``); :func:`simstudy.run` returns the same object.

Examples
--------
>>> res = load("results/cluster_trial")                                   # doctest: +SKIP
>>> res.summary.sel(estimator="lmm", param="treat")["coverage"]           # doctest: +SKIP
>>> res.table(["bias", "coverage"], params="treat")                       # doctest: +SKIP
>>> res.plot("performance", param="treat", measure="coverage")            # doctest: +SKIP
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from simstudy.engine.assemble import NOT_REPORTED
from simstudy.engine.store import json_attr, read_netcdf
from simstudy.output.display import COMPACT, format_compact
from simstudy.stats.measures import MEASURES

#: Figure kinds :meth:`Results.plot` draws, by name: (module, function, dataset it takes).
PLOTS: dict[str, tuple[str, str, str]] = {
    "performance": ("simstudy.output.plots.performance", "plot_performance", "summary"),
    "nested_loop": ("simstudy.output.plots.nested_loop", "plot_nested_loop", "summary"),
    "power": ("simstudy.output.plots.power", "plot_power", "summary"),
    "failures": ("simstudy.output.plots.failures", "plot_failures", "summary"),
    "zip": ("simstudy.output.plots.zip", "plot_zip", "estimates"),
    "forest": ("simstudy.output.plots.forest", "plot_forest", "summary"),
    "heatmap": ("simstudy.output.plots.heatmap", "plot_heatmap", "summary"),
    "estimates": ("simstudy.output.plots.estimates", "plot_estimates", "estimates"),
    "bland_altman": ("simstudy.output.plots.bland_altman", "plot_bland_altman", "estimates"),
}


class Results:
    """The results of one run: ``estimates`` and ``summary`` datasets and the run's metadata, decoded.

    Attributes
    ----------
    path : Path
        The run directory.
    summary : xarray.Dataset
        Performance measures with MCSE: dims one per varying design factor, ``estimator``, ``param``.
    study : dict
        ``study.json``: name, design, DGP, estimators, run settings and provenance.
    """

    def __init__(self, path: Path, summary: xr.Dataset, study: dict[str, Any],
                 estimates: xr.Dataset | None = None) -> None:
        self.path = Path(path)
        self.summary = summary
        self.study = study
        self._estimates = estimates

    # -- data ------------------------------------------------------------------------------------------
    @property
    def estimates(self) -> xr.Dataset:
        """Replicate-level estimates (``estimates.nc``), read on first use."""
        if self._estimates is None:
            self._estimates = read_netcdf(self.path / "estimates.nc")
        return self._estimates

    @property
    def name(self) -> str:
        """The study's name."""
        return str(self.study.get("name", self.path.name))

    @property
    def design(self) -> dict[str, list[Any]]:
        """Factor name to its levels."""
        return dict(self.study.get("design", {}))

    @property
    def estimators(self) -> dict[str, str]:
        """Estimator name to its description."""
        return dict(self.study.get("estimators", self.study.get("methods", {})))

    @property
    def params(self) -> list[str]:
        """Parameter names, in the summary's order."""
        return [str(p) for p in self.summary.coords["param"].values]

    @property
    def run_info(self) -> dict[str, Any]:
        """Replicates, seed, chunk size, reference estimator and whether the run is complete."""
        return dict(self.study.get("run", {}))

    @property
    def provenance(self) -> dict[str, Any]:
        """Versions, command, host, study file hash, times, where the tasks ran."""
        return dict(self.study.get("provenance", {}))

    def table(self, measures: str | Sequence[str] = ("bias", "coverage", "rmse"), *,
              params: str | Sequence[str] | None = None, estimators: str | Sequence[str] | None = None,
              mcse: bool = True, wide: bool = False, **where: Any) -> pd.DataFrame:
        """A tidy table of performance measures.

        Parameters
        ----------
        measures : str or sequence of str
            Measures (see :data:`simstudy.stats.measures.MEASURES`), and counts such as ``n_valid``.
        params, estimators : str or sequence of str, optional
            Which parameters and estimators (default: all that have values).
        mcse : bool
            Include the Monte Carlo SE of each measure.
        wide : bool
            One column per measure (and ``<measure>_mcse``) instead of one row per measure.
        **where
            Factor levels to keep, e.g. ``n_groups=20`` or ``icc=[0.05, 0.2]``.

        Returns
        -------
        pandas.DataFrame
            Long: columns for the varying factors, ``estimator``, ``param``, ``measure``, ``value`` and
            ``mcse``, plus ``note`` (why a value is missing, e.g. "not estimable: ..."). Wide: the measures
            as columns.
        """
        measures = [measures] if isinstance(measures, str) else list(measures)
        known = set(MEASURES) | {v for v in self.summary.data_vars if v.startswith("n_")}
        unknown = [m for m in measures if m not in known]
        if unknown:
            raise ValueError(f"unknown measure {unknown[0]!r}; choose from {', '.join(sorted(known))}")
        ds = self._select(params, estimators, where)
        factors = [d for d in ds["bias"].dims if d not in ("estimator", "param")]
        columns = ["note", *measures, *(f"{m}_mcse" for m in measures if m in MEASURES)]
        frame = ds[list(dict.fromkeys([*columns, "n_rep"]))].to_dataframe().reset_index()
        shown = (frame["n_rep"] > 0) & (frame["note"] != NOT_REPORTED)  # as the printed tables
        frame = frame[shown].drop(columns=[] if "n_rep" in measures else ["n_rep"]).reset_index(drop=True)
        keep = [f for f in factors if ds.sizes[f] > 1 or f in where]
        frame = frame.drop(columns=[f for f in factors if f not in keep])
        if wide:
            values = [c for m in measures for c in (m, f"{m}_mcse") if c in frame and (mcse or c == m)]
            return frame[[*keep, "estimator", "param", *values, "note"]]
        rows = []
        for m in measures:
            part = frame[[*keep, "estimator", "param", "note"]].copy()
            part.insert(len(keep) + 2, "measure", m)
            part.insert(len(keep) + 3, "value", frame[m].astype(float))
            if mcse:
                part.insert(len(keep) + 4, "mcse", frame[f"{m}_mcse"] if m in MEASURES else np.nan)
            rows.append(part)
        return pd.concat(rows, ignore_index=True)

    def paper_table(self, measures: str | Sequence[str] | None = None, *,
                    params: str | Sequence[str] | None = None, estimators: str | Sequence[str] | None = None,
                    digits: int | dict[str, int] = 3, mcse: bool | str = True, layout: str = "long",
                    counts: bool = False, labels: dict[str, str] | None = None, caption: str | None = None,
                    stem: str = "table", **where: Any) -> Any:
        """A table of performance measures for a paper, to render as LaTeX, Markdown or HTML.

        See :func:`simstudy.output.tables.paper_table` for the parameters; ``where`` are factor levels to
        keep, as in :meth:`table` (``group_size=20``), and ``labels`` add to the study's labels.

        Returns
        -------
        simstudy.output.tables.PaperTable
            ``.to_latex()``, ``.to_markdown()``, ``.to_html()``, ``.write(path)``; shown as HTML in a notebook.

        Examples
        --------
        >>> res.paper_table(["bias", "coverage"], params="treat").to_latex()          # doctest: +SKIP
        >>> res.paper_table("coverage", layout="by_estimator", group_size=20)         # doctest: +SKIP
        """
        from simstudy.output.tables import paper_table

        names = {**dict(self.study.get("labels") or {}), **dict(labels or {})}
        return paper_table(self.summary, measures, params=params, estimators=estimators, digits=digits, mcse=mcse,
                           layout=layout, where=where, counts=counts, labels=names, caption=caption, stem=stem)

    def _select(self, params: Any, estimators: Any, where: dict[str, Any]) -> xr.Dataset:
        ds = self.summary
        for dim, chosen in (("param", params), ("estimator", estimators)):
            if chosen is None:
                continue
            chosen = [chosen] if isinstance(chosen, str) else list(chosen)
            have = [str(v) for v in ds.coords[dim].values]
            missing = [c for c in chosen if c not in have]
            if missing:
                raise ValueError(f"unknown {dim} {missing[0]!r}; choose from {', '.join(have)}")
            ds = ds.sel({dim: chosen})
        for factor, level in where.items():
            if factor not in ds.dims or factor in ("estimator", "param"):
                raise ValueError(f"unknown factor {factor!r}; the design's factors are "
                                 f"{', '.join(d for d in ds['bias'].dims if d not in ('estimator', 'param'))}")
            levels = level if isinstance(level, (list, tuple)) else [level]
            ds = ds.sel({factor: levels})
        return ds

    # -- figures -----------------------------------------------------------------------------------------
    def plot(self, kind: str = "performance", **options: Any) -> Any:
        """A figure of this run (a :class:`matplotlib.figure.Figure`); ``kind`` is one of :data:`PLOTS`,
        ``options`` go to that plot function (see :mod:`simstudy.output.plots`)."""
        import importlib

        if kind not in PLOTS:
            raise ValueError(f"unknown plot kind {kind!r}; choose from {', '.join(PLOTS)}")
        module, func, data = PLOTS[kind]
        plot = getattr(importlib.import_module(module), func)
        return plot(self.estimates if data == "estimates" else self.summary, **options)

    # -- text and notebooks ------------------------------------------------------------------------------
    def show(self, measures: Sequence[str] = COMPACT, params: Sequence[str] | None = None) -> str:
        """The compact text table (as ``simstudy show``)."""
        shown = params if params is not None else json_attr(self.summary, "show", []) or None
        return format_compact(self.summary, measures=measures, params=shown)

    def __repr__(self) -> str:
        return (f"<simstudy.Results {self.name!r}: {self._cells()} cells x {self._reps()} replicates x "
                f"{self.summary.sizes.get('estimator', 0)} estimators, {len(self.params)} params; {self.path}>")

    def _repr_html_(self) -> str:
        e = html.escape
        shown = json_attr(self.summary, "show", []) or self.params[:1]
        table = self.table(["bias", "coverage", "rmse"], params=[p for p in shown if p in self.params], wide=True)
        head = (f"<p><b>simstudy results: {e(self.name)}</b> &mdash; {self._cells()} cells &times; "
                f"{self._reps()} replicates &times; {self.summary.sizes.get('estimator', 0)} estimators "
                f"({e(', '.join(self.estimators))}); <code>{e(str(self.path))}</code></p>")
        return head + table.to_html(index=False, float_format=lambda v: f"{v:.4f}", na_rep="-", border=0)

    def _cells(self) -> int:
        factors = [d for d in self.summary["bias"].dims if d not in ("estimator", "param")]
        return int(np.prod([self.summary.sizes[d] for d in factors])) if factors else 1

    def _reps(self) -> int:
        return int(self.run_info.get("reps", int(self.summary["n_rep"].max())))


def load(path: str | Path) -> Results:
    """Open a finished run's directory (``results/<study>``) as :class:`Results`.

    Raises ``ValueError`` with one line if it is not a finished, consistent run (an interrupted extension,
    outputs of two different runs), naming the command that completes it. ``estimates.nc`` is read on
    first use.
    """
    from simstudy.engine.runner import check_complete

    path = Path(path)
    if not (path / "summary.nc").is_file() or not (path / "study.json").is_file():
        raise ValueError(f"{str(path)!r} is not a finished simstudy run (no summary.nc and study.json)")
    study = check_complete(path)
    return Results(path, read_netcdf(path / "summary.nc"), study)
