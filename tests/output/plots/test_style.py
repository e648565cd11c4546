"""The look of every figure: the style users can override, files for a paper, line styles that survive overlap
and greyscale; and every figure kind exported and drawn by Results."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_hex

from simstudy.output import plots
from simstudy.output.plots import (
    DASHES,
    MARKERS,
    PALETTE,
    STYLE,
    plot_nested_loop,
    plot_performance,
    plot_power,
    resolve_style,
    save_figure,
)
from simstudy.output.plots.performance import EMPIRICAL_SE, MODEL_SE
from simstudy.output.results import PLOTS, Results
from support import CLUSTER_TRIAL_METHODS as METHODS
from support import errorbar_lines

CELL = {"n_groups": 6, "group_size": 5, "icc": 0.2}


def first_tick(fig):
    return fig.axes[-1].xaxis.get_major_ticks()[-1].label1  # made lazily, a copy of the first tick


def tick_size(fig):
    return first_tick(fig).get_fontsize()


# --- the style ------------------------------------------------------------------------------------------


def test_figures_use_the_default_style_whatever_the_session_rcparams(summary):
    with matplotlib.rc_context({"font.size": 20, "xtick.labelsize": 20, "axes.spines.top": True}):
        fig = plot_performance(summary, param="treat")
        assert matplotlib.rcParams["font.size"] == 20  # the session's settings are left alone
    ax = fig.axes[0]
    assert tick_size(fig) == STYLE["xtick.labelsize"]
    assert not ax.spines["top"].get_visible() and not ax.spines["right"].get_visible()
    assert fig.simstudy_style["pdf.fonttype"] == 42


def test_style_keyword_is_merged_on_top(summary):
    fig = plot_performance(summary, param="treat", style={"xtick.labelsize": 11, "axes.spines.right": True})
    assert tick_size(fig) == 11
    assert fig.axes[0].spines["right"].get_visible()
    assert fig.simstudy_style["font.size"] == STYLE["font.size"]  # the rest as the default


def test_style_from_an_mplstyle_file_and_a_list(summary, tmp_path):
    path = tmp_path / "journal.mplstyle"
    path.write_text("xtick.labelsize: 9\nfont.family: serif\n")
    fig = plot_power(summary, param="treat", style=path)
    assert tick_size(fig) == 9
    assert first_tick(fig).get_fontfamily() == ["serif"]
    both = plot_power(summary, param="treat", style=[str(path), {"xtick.labelsize": 6}])
    assert tick_size(both) == 6


def test_changing_STYLE_changes_every_later_figure(summary, monkeypatch):
    monkeypatch.setitem(STYLE, "xtick.labelsize", 10.0)
    assert tick_size(plot_nested_loop(summary, param="treat")) == 10.0


@pytest.mark.parametrize(("style", "message"), [
    ({"font.sise": 8}, "unknown rcParam 'font.sise'"),
    ("no-such-style", "neither a .mplstyle file nor a matplotlib style"),
    (42, "style must be"),
])
def test_bad_style_is_one_clear_line(summary, style, message):
    with pytest.raises(ValueError, match=message) as info:
        plot_performance(summary, param="treat", style=style)
    assert "\n" not in str(info.value)
    assert resolve_style(None) == STYLE


def test_package_docstring_says_how_to_change_the_style():
    doc = plots.__doc__
    assert "STYLE" in doc and "style=" in doc and ".mplstyle" in doc and "save_figure" in doc


# --- files for a paper ----------------------------------------------------------------------------------


def test_save_figure_writes_vector_and_raster_files(summary, tmp_path):
    fig = plot_performance(summary, param="treat", select={"icc": 0.2, "group_size": 5})
    files = save_figure(fig, tmp_path / "out" / "coverage", dpi=200)
    assert [f.name for f in files] == ["coverage.pdf", "coverage.svg", "coverage.png"]
    pdf, svg, png = (f.read_bytes() for f in files)
    assert pdf.startswith(b"%PDF") and b"/FontFile2" in pdf  # TrueType fonts embedded (editable, accepted)
    assert b"<svg" in svg[:500]
    assert png.startswith(b"\x89PNG")
    from matplotlib.image import imread

    height, width = imread(files[2]).shape[:2]
    np.testing.assert_allclose([width, height], np.round(fig.get_size_inches() * 200), atol=1)
    # the same figure drawn again gives the same bytes (no dates inside): a rerun does not change the files
    fig = plot_performance(summary, param="treat", select={"icc": 0.2, "group_size": 5})
    again = save_figure(fig, tmp_path / "again", formats=("pdf", "svg", "png"), dpi=200)
    assert [f.read_bytes() for f in again] == [pdf, svg, png]


def test_save_figure_options(summary, tmp_path):
    fig = plot_power(summary, param="treat")
    (only,) = save_figure(fig, tmp_path / "power.png", formats="png", dpi=72)
    assert only.name == "power.png"
    with pytest.raises(ValueError, match="unknown figure format 'docx'"):
        save_figure(fig, tmp_path / "power", formats=("docx",))


# --- estimator styles -----------------------------------------------------------------------------------


def test_each_estimator_has_its_own_colour_marker_and_dash(summary, variants):
    six = variants.six_estimators(summary)
    fig = plot_performance(six, measure="bias", param="treat", select={"icc": 0.2, "group_size": 5})
    ax = fig.axes[0]
    lines = [bar.lines[0] for bar in ax.containers]
    assert len(lines) == 6
    colours = [to_hex(line.get_color()) for line in lines]
    markers = [line.get_marker() for line in lines]
    dashes = [str(line._unscaled_dash_pattern) for line in lines]  # (offset, on-off sequence)
    assert colours == [c.lower() for c in PALETTE[:6]]  # Okabe-Ito, colour-blind safe
    assert markers == list(MARKERS[:6])
    assert len(set(dashes)) == 6 and len(DASHES) >= 6
    legend = fig.legends[0]
    handles = legend.legend_handles[:6]
    assert [h.get_marker() for h in handles] == list(MARKERS[:6])  # the legend shows marker and dash too
    assert len({str(h._unscaled_dash_pattern) for h in handles}) == 6


def test_se_plot_keeps_the_model_se_visible_on_top_of_the_empirical_se(summary):
    # defect: the dashed model-SE line disappeared under the solid empirical-SE line where the two coincide
    fig = plot_performance(summary, measure="se", param="treat")
    ax = fig.axes[0]
    empirical = [line for line in ax.lines if line.get_gid() == "emp_se"]
    model = [line for line in ax.lines if line.get_gid() == "model_se"]
    assert len(empirical) == len(model) == len(METHODS)
    for emp, mod in zip(empirical, model):
        assert emp.get_color() == mod.get_color()  # the same estimator
        assert emp.get_linestyle() == "-" and mod.get_linestyle() == "--"
        assert mod.get_zorder() > emp.get_zorder()  # drawn on top
        assert emp.get_linewidth() > 2 * mod.get_linewidth()  # the broad pale line shows round the dashes
        assert emp.get_alpha() < 1 and mod.get_alpha() in (None, 1)
        assert mod.get_markerfacecolor() == "white" and emp.get_markerfacecolor() != "white"
        assert mod.get_markersize() < emp.get_markersize()
    assert EMPIRICAL_SE["zorder"] < MODEL_SE["zorder"]
    assert errorbar_lines(ax) == empirical


# --- the registry ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(PLOTS))
def test_every_kind_is_exported_and_drawn_by_results(kind, run_dir, summary, estimates):
    import importlib

    module, func, data = PLOTS[kind]
    function = getattr(importlib.import_module(module), func)
    assert getattr(plots, func) is function
    assert function.__doc__ and "Parameters" in function.__doc__ and "Returns" in function.__doc__
    options = {"cell": CELL} if data == "estimates" else {}
    if kind == "heatmap":
        options = {"select": {"group_size": 5}}
    res = Results(run_dir, summary, json.loads(json.dumps({"name": "plots"})), estimates)
    fig = res.plot(kind, **options)
    assert fig.axes and fig.get_suptitle() == ""
