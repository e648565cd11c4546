"""Print-ready figures of a finished run, one figure kind per module.

Every function takes a dataset (``summary.nc``, or ``estimates.nc`` for the replicate-level plots) and
keyword-only options, and returns a :class:`matplotlib.figure.Figure`. Figures are built without pyplot, so
importing this package does not choose a backend or open windows, and a figure is freed once it is no
longer referenced. Let Jupyter display a figure, or write it for a paper with :func:`save_figure`::

    fig = plot_performance(summary, measure="coverage", param="treat")
    save_figure(fig, "figures/coverage")          # coverage.pdf, coverage.svg, coverage.png (300 dpi)

Summary measures:

- :func:`plot_performance`: a measure against one factor, one line per estimator, MCSE error bars
- :func:`plot_nested_loop`: every cell of a many-factor grid on one axis (Ruecker & Schwarzer 2014)
- :func:`plot_power`: power curves against the number of groups, with the target power
- :func:`plot_forest`: a measure with its MCSE interval, one row per cell (forest or lolly plot)
- :func:`plot_heatmap`: a measure over two factors, one panel per estimator
- :func:`plot_failures`: failure, non-convergence and boundary rates per cell and estimator

Replicate-level estimates, one cell:

- :func:`plot_zip`: coverage as a zip plot of the intervals (Morris, White & Crowther 2019)
- :func:`plot_estimates`: two estimators' estimates (or SEs) against each other, with y = x
- :func:`plot_bland_altman`: the difference of two estimators' estimates against their mean

What the figures look like
--------------------------
Figures carry no title (the caption belongs to the paper; pass ``title=True`` for a description, or
``title="..."``). Names come from the study's ``labels`` (``Study(labels={"icc": "ICC", "lmm_t": "LMM, t"})``,
kept in the run's attributes): factors without a label show their name with spaces (``n groups``), panels
are titled like ``ICC = 0.2``, measures read ``Coverage``, ``Bias``, ``Empirical SE`` (see
``labels.MEASURE_LABELS``; a label for the measure's name replaces it). Numeric factors are drawn to scale,
on a log axis when their levels are geometric; ticks sit at the levels only when their labels fit. Each
estimator has a colour from the colour-blind safe Okabe-Ito palette, a marker and a dash pattern
(:data:`PALETTE`, :data:`MARKERS`, :data:`DASHES`), so lines stay apart where they overlap and in greyscale.

Changing the style
------------------
Every figure is drawn inside ``matplotlib.rc_context`` built from :data:`STYLE` (rcParams: 7-8 pt text,
thin axes, no top and right spines, TrueType fonts in PDF, 300 dpi). Each plot function takes ``style=``,
merged on top for that figure: a dict of rcParams, the path of a ``.mplstyle`` file, a matplotlib style
name, or a list of those::

    plot_power(summary, style={"font.size": 10, "font.family": "serif"})
    plot_power(summary, style="journal.mplstyle")

To change every figure of a session, change :data:`STYLE` itself, e.g.
``simstudy.output.plots.STYLE["font.family"] = "serif"``. :func:`save_figure` saves with the figure's
style, so the files look like the figure. The size of a figure is its ``figsize=`` option (inches).
"""

from simstudy.output.plots.bland_altman import plot_bland_altman
from simstudy.output.plots.estimates import plot_estimates
from simstudy.output.plots.failures import plot_failures
from simstudy.output.plots.forest import plot_forest
from simstudy.output.plots.heatmap import plot_heatmap
from simstudy.output.plots.nested_loop import plot_nested_loop
from simstudy.output.plots.performance import plot_performance
from simstudy.output.plots.power import plot_power
from simstudy.output.plots.style import DASHES, MARKERS, PALETTE, STYLE, figure_bytes, resolve_style, save_figure
from simstudy.output.plots.zip import plot_zip

__all__ = [
    "DASHES",
    "MARKERS",
    "PALETTE",
    "STYLE",
    "figure_bytes",
    "plot_bland_altman",
    "plot_estimates",
    "plot_failures",
    "plot_forest",
    "plot_heatmap",
    "plot_nested_loop",
    "plot_performance",
    "plot_power",
    "plot_zip",
    "resolve_style",
    "save_figure",
]
