"""The report's figures: which are drawn for a run, and their files in every format (PNG at 300 dpi)."""

from __future__ import annotations

import base64
from pathlib import Path

from matplotlib.figure import Figure

from simstudy.engine.store import read_netcdf
from simstudy.output.report.figures import FIGURE_DPI, FIGURE_FORMATS, FigureSpec, figure_specs, png_width, render


def test_the_figures_of_a_run(tables_run: Path, figures):
    summary = read_netcdf(tables_run / "summary.nc")
    estimates = read_netcdf(tables_run / "estimates.nc")
    specs = figure_specs(summary, estimates, ["treat"])
    assert {s.stem for s in specs} == figures
    assert {s.stem for s in figure_specs(summary, None, ["treat"])} == figures - {"zip_treat"}
    zip_caption = next(s.caption for s in specs if s.stem == "zip_treat")
    assert "(the cell with the lowest coverage of any estimator)" in zip_caption
    assert all(s.caption.endswith(".") for s in specs)


def test_render_gives_every_format_at_the_figures_size():
    spec = FigureSpec("coverage_treat", "Coverage of treat.", lambda: Figure(figsize=(3.0, 2.0)))
    files, why = render(spec)
    assert why == "" and tuple(files) == FIGURE_FORMATS == ("pdf", "svg", "png")
    assert files["pdf"].startswith(b"%PDF") and b"<svg" in files["svg"][:500]
    png = files["png"]
    assert FIGURE_DPI == 300 and int.from_bytes(png[16:20], "big") == 3 * 300
    assert png_width(base64.b64encode(png).decode("ascii")) == 3 * 96  # CSS pixels: its size in inches


def test_a_figure_that_cannot_be_drawn_gives_the_first_line_of_the_reason():
    def draw():
        raise ValueError("coverage of 'var(group)' is missing; nothing to draw\nmore detail")

    files, why = render(FigureSpec("power_var", "Power.", draw))
    assert files == {} and why == "coverage of 'var(group)' is missing; nothing to draw"
