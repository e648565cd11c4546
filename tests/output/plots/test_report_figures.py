"""The report's figures: written as PDF, SVG and PNG (300 dpi), the PNG embedded at the figure's size."""

from __future__ import annotations

import base64

from simstudy.output.plots import plot_performance
from simstudy.output.report import FIGURE_DPI, FIGURE_FORMATS, FigureSpec, _figures_section, _render


def test_render_gives_every_format_and_the_page_embeds_the_png(summary):
    spec = FigureSpec("coverage_treat", "Coverage of treat.",
                      lambda: plot_performance(summary, param="treat", select={"icc": 0.2, "group_size": 5}))
    files, why = _render(spec)
    assert why == "" and tuple(files) == FIGURE_FORMATS == ("pdf", "svg", "png")
    assert files["pdf"].startswith(b"%PDF") and b"<svg" in files["svg"][:500]
    png = files["png"]
    width_px = int.from_bytes(png[16:20], "big")
    fig = spec.draw()
    assert FIGURE_DPI == 300 and abs(width_px - fig.get_figwidth() * 300) <= 1
    html = "\n".join(_figures_section([(spec, base64.b64encode(png).decode("ascii"), "")], True))
    assert f'width="{round(width_px * 96 / 300)}"' in html  # shown at its size in inches, not 3x
    assert "coverage_treat.pdf" in html and "coverage_treat.svg" in html and "coverage_treat.png" in html


def test_a_figure_that_cannot_be_drawn_is_named_with_the_reason(summary):
    spec = FigureSpec("power_var", "Power.", lambda: plot_performance(summary, measure="power", param="var(group)"))
    files, why = _render(spec)
    assert files == {} and "nothing to draw" in why
    html = "\n".join(_figures_section([(spec, None, why)], True))
    assert "power_var left out" in html
