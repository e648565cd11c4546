"""One small real run of the cluster-trial study, shared by the plot tests (made once per session), variants of
it (more estimators, more levels, long labels), and the layout check every figure kind must pass."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path

import matplotlib
import pytest
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

matplotlib.use("Agg")

from simstudy.design import Design  # noqa: E402
from simstudy.engine.runner import RunConfig, run_study  # noqa: E402
from simstudy.engine.store import read_netcdf  # noqa: E402
from simstudy.study import load_study  # noqa: E402
from support import STUDIES

STUDY = STUDIES / "cluster_trial.py"

#: Three factors that vary (2 x 2 x 2 cells), one held fixed: enough for facets and the nested loop.
DESIGN = {"n_groups": [6, 20], "group_size": [5, 10], "icc": [0.05, 0.2], "treatment_effect": [0.3]}
REPS = 40
METHODS = ["ols", "ols_cluster", "lmm", "lmm_t"]


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run directory: 8 cells x 40 replicates x 4 methods (about 2 s)."""
    study = replace(load_study(STUDY), design=Design(DESIGN))
    out = tmp_path_factory.mktemp("plots") / "run"
    run_study(study, RunConfig(reps=REPS, jobs=1, quiet=True, out=out))
    return out


@pytest.fixture(scope="session")
def summary(run_dir: Path) -> xr.Dataset:
    """The run's summary.nc, read back from disk as a user would."""
    return read_netcdf(run_dir / "summary.nc")


@pytest.fixture(scope="session")
def estimates(run_dir: Path) -> xr.Dataset:
    """The run's estimates.nc, read back from disk."""
    return read_netcdf(run_dir / "estimates.nc")


# --- variants of the shared run, for layout checks ------------------------------------------------------

#: Long readable names, as a study might give them in ``Study(labels=...)``.
LONG_LABELS = {
    "n_groups": "Number of clusters randomised per trial",
    "group_size": "Patients recruited per cluster",
    "icc": "Intra-cluster correlation coefficient",
    "treat": "Treatment effect (difference in means)",
    "ols": "Ordinary least squares, model-based SE",
    "ols_cluster": "OLS with cluster-robust CR1 SE and t(G-1)",
    "lmm": "Linear mixed model, REML, Wald z",
    "lmm_t": "Linear mixed model, REML, between-within t",
    "gee": "Generalised estimating equations, exchangeable",
    "bayes": "Bayesian hierarchical model, weakly informative priors",
}


def with_labels(ds: xr.Dataset, labels: dict[str, str]) -> xr.Dataset:
    """``ds`` with the study's ``labels`` attribute set (as a finished run stores it: a JSON string)."""
    out = ds.copy()
    out.attrs = {**ds.attrs, "labels": json.dumps(labels)}
    return out


def six_estimators(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with two more estimators (copies of ols and lmm named gee and bayes): six in all."""
    extra = ds.isel(estimator=[0, 2]).assign_coords(estimator=["gee", "bayes"])
    return xr.concat([ds, extra], dim="estimator", data_vars="all", coords="different", compat="equals",
                     join="outer", combine_attrs="override")


def widen(ds: xr.Dataset, factor: str, levels: list) -> xr.Dataset:
    """``ds`` with ``factor`` at ``levels`` (the existing levels' results reused in turn)."""
    parts = [ds.isel({factor: [k % ds.sizes[factor]]}).assign_coords({factor: [v]}) for k, v in enumerate(levels)]
    return xr.concat(parts, dim=factor, data_vars="all", coords="different", compat="equals", join="outer",
                     combine_attrs="override")


# --- the layout check -----------------------------------------------------------------------------------


def drawn_texts(fig: Figure) -> list[tuple[str, Text]]:
    """Every visible, non-empty text a drawn figure shows, with a name saying what it is: figure texts
    (title, shared axis labels), legend texts and titles, and per axes the titles, axis labels, offset
    texts, tick labels of the ticks in view, texts and annotations."""
    found: list[tuple[str, Text]] = []

    def add(what: str, text: Text | None) -> None:
        if text is not None and text.get_visible() and text.get_text().strip():
            found.append((what, text))

    for t in fig.texts:
        add("figure text", t)
    legends = list(fig.legends)
    for k, ax in enumerate(fig.axes):
        if not ax.get_visible():
            continue
        titles = {id(t) for t in (ax.title, ax._left_title, ax._right_title)}
        for child in ax.get_children():
            if isinstance(child, Text):
                kind = "title" if id(child) in titles else child.get_gid() or "text"
                add(f"axes {k} {kind}", child)
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            add(f"axes {k} {name} label", axis.label)
            add(f"axes {k} {name} offset", axis.get_offset_text())
            lo, hi = sorted(axis.get_view_interval())
            slack = 1e-9 * max(abs(lo), abs(hi), 1.0)
            for minor in (False, True):
                locs = axis.get_minorticklocs() if minor else axis.get_majorticklocs()
                ticks = axis.get_minor_ticks(len(locs)) if minor else axis.get_major_ticks(len(locs))
                for loc, tick in zip(locs, ticks):
                    if lo - slack <= loc <= hi + slack and tick.get_visible():
                        for lab in (tick.label1, tick.label2):
                            if lab.get_visible():
                                add(f"axes {k} {name} tick {'minor' if minor else 'major'}", lab)
        if ax.get_legend() is not None:
            legends.append(ax.get_legend())
    for leg in legends:
        for t in leg.get_texts():
            add("legend", t)
        add("legend title", leg.get_title())
    return found


def layout_problems(fig: Figure, tolerance: float = 1.0) -> list[str]:
    """Draw ``fig`` on Agg and list every text that sticks out of the figure (by more than ``tolerance``
    pixels), and every two texts that overlap: tick labels, titles, facet labels, axis labels and legend
    texts, each with all the others. Texts written on the data, inside their axes (heat map values, notes),
    are only checked against the figure's edges."""
    FigureCanvasAgg(fig)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    problems = [f"warning: {w.message}" for w in caught if "layout" in str(w.message).lower()]
    box = fig.bbox
    boxes = []
    for what, text in drawn_texts(fig):
        b = text.get_window_extent(renderer)
        if (b.x0 < box.x0 - tolerance or b.y0 < box.y0 - tolerance or b.x1 > box.x1 + tolerance
                or b.y1 > box.y1 + tolerance):
            problems.append(f"{what} {text.get_text()!r} is clipped: {b.bounds} outside {box.bounds}")
        ax = text.axes
        on_data = (text in ax.texts and ax.bbox.x0 - tolerance <= b.x0 and b.x1 <= ax.bbox.x1 + tolerance
                   and ax.bbox.y0 - tolerance <= b.y0 and b.y1 <= ax.bbox.y1 + tolerance) if ax else False
        boxes.append((what, text, b, on_data))
    for i, (w1, t1, b1, inside1) in enumerate(boxes):
        for w2, t2, b2, inside2 in boxes[i + 1:]:
            if inside1 or inside2:  # texts written on the data (heat map values, notes) may sit on each other's
                continue            # axes' labels only if they overlap those, which the in-axes check allows
            dx = min(b1.x1, b2.x1) - max(b1.x0, b2.x0)
            dy = min(b1.y1, b2.y1) - max(b1.y0, b2.y0)
            if dx > tolerance and dy > tolerance:
                problems.append(f"{w1} {t1.get_text()!r} overlaps {w2} {t2.get_text()!r}")
    return problems


@pytest.fixture(scope="session")
def check_layout():
    """``check_layout(fig)``: fail with every clipped or overlapping text of the drawn figure."""

    def check(fig: Figure) -> Figure:
        problems = layout_problems(fig)
        assert not problems, "\n".join(problems[:12])
        return fig

    return check


@pytest.fixture(scope="session")
def variants():
    """The dataset variants (``with_labels``, ``six_estimators``, ``widen``, ``LONG_LABELS``) for the tests."""
    from types import SimpleNamespace

    return SimpleNamespace(with_labels=with_labels, six_estimators=six_estimators, widen=widen,
                           LONG_LABELS=LONG_LABELS, drawn_texts=drawn_texts, layout_problems=layout_problems)
