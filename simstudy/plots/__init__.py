"""Figures of a finished run, one figure kind per module.

Every function takes a dataset (``summary.nc``, or ``estimates.nc`` for the zip plot) and keyword-only
options, and returns a :class:`matplotlib.figure.Figure`. Figures are built without pyplot, so importing
this package does not choose a backend or open windows, and a figure is freed once it is no longer
referenced; save one with ``fig.savefig(path)``, or let Jupyter display it.

- :func:`plot_performance`: a measure against one factor, one line per method, MCSE error bars
- :func:`plot_nested_loop`: every cell of a many-factor grid on one axis (Ruecker & Schwarzer 2014)
- :func:`plot_zip`: coverage as a zip plot of the intervals (Morris, White & Crowther 2019)
- :func:`plot_power`: power curves against the number of groups, with the target power
- :func:`plot_failures`: failure, non-convergence and boundary rates per cell and method
"""

from simstudy.plots.failures import plot_failures
from simstudy.plots.nested_loop import plot_nested_loop
from simstudy.plots.performance import plot_performance
from simstudy.plots.power import plot_power
from simstudy.plots.zip import plot_zip

__all__ = ["plot_failures", "plot_nested_loop", "plot_performance", "plot_power", "plot_zip"]
