"""The look of the figures: the default matplotlib style, each estimator's colour, marker and dash, and saving.

Every plot function draws inside ``matplotlib.rc_context(...)`` built from :data:`STYLE` with the function's
``style=`` merged on top, so a figure looks the same whatever the session's rcParams are, and a user changes
it in one of two ways:

- for one figure: ``plot_performance(summary, style={"font.size": 10})``; ``style`` may also be the path of
  a ``.mplstyle`` file, the name of a matplotlib style (``"seaborn-v0_8-paper"``), or a list of those,
  applied in order;
- for every figure of the session: ``simstudy.output.plots.STYLE.update({"font.family": "serif"})``.

:func:`save_figure` writes PDF, SVG and PNG files of a figure with the style it was drawn with (fonts are
embedded as TrueType in PDF; dates are left out, so that a figure drawn again gives the same bytes).
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import matplotlib
import matplotlib.style
import xarray as xr
from cycler import cycler
from matplotlib import rc_params_from_file
from matplotlib.figure import Figure

#: Okabe & Ito's colour-blind safe palette (black left out: it is kept for references), in the order the
#: estimators get them; yellow comes last, being the hardest to see on white.
PALETTE: tuple[str, ...] = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
                            "#F0E442")

#: One marker per estimator, in order (filled shapes that stay apart in greyscale).
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "p")

#: One dash pattern per estimator, in order (matplotlib ``(offset, (on, off, ...))`` in units of the line
#: width): solid, dashed, dotted, dash-dot, short dashes, dash-dot-dot, long dashes.
DASHES: tuple[Any, ...] = ("-", (0, (4, 1.6)), (0, (1.1, 1.4)), (0, (5, 1.5, 1.1, 1.5)), (0, (2.2, 1.4)),
                           (0, (5, 1.3, 1.1, 1.3, 1.1, 1.3)), (0, (8, 2.2)))

#: The default style of every figure (matplotlib rcParams). Sizes suit a journal page: a panel is about
#: 2.3 x 1.9 inches, text 7-8 pt, lines 1.2 pt. Change it in place to restyle every later figure.
STYLE: dict[str, Any] = {
    "font.size": 8.0,
    "axes.titlesize": 8.0,
    "axes.labelsize": 8.0,
    "xtick.labelsize": 7.0,
    "ytick.labelsize": 7.0,
    "legend.fontsize": 7.0,
    "legend.title_fontsize": 7.0,
    "figure.titlesize": 9.0,
    "figure.labelsize": 8.0,
    "axes.titlepad": 4.0,
    "axes.labelpad": 3.0,
    "axes.linewidth": 0.6,
    "axes.edgecolor": "0.25",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": cycler(color=list(PALETTE)),
    "axes.axisbelow": True,
    "axes.grid": False,
    "grid.color": "0.9",
    "grid.linewidth": 0.5,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.minor.width": 0.4,
    "ytick.minor.width": 0.4,
    "xtick.major.size": 3.0,
    "ytick.major.size": 3.0,
    "xtick.minor.size": 1.8,
    "ytick.minor.size": 1.8,
    "lines.linewidth": 1.2,
    "lines.markersize": 4.0,
    "errorbar.capsize": 2.0,
    "legend.frameon": False,
    "legend.handlelength": 2.6,
    "legend.borderaxespad": 0.3,
    "image.cmap": "viridis",
    "figure.dpi": 100.0,
    "figure.facecolor": "white",
    "figure.constrained_layout.h_pad": 0.04,
    "figure.constrained_layout.w_pad": 0.04,
    "savefig.dpi": 300.0,
    "savefig.facecolor": "white",
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.hashsalt": "simstudy",
}

#: Formats :func:`save_figure` writes by default.
FORMATS: tuple[str, ...] = ("pdf", "svg", "png")

#: What ``savefig`` is told per format so that the files do not change from one run to the next.
_METADATA: dict[str, dict[str, Any]] = {"pdf": {"CreationDate": None}, "svg": {"Date": None}}

F = TypeVar("F", bound=Callable[..., Figure])


def resolve_style(style: Any = None) -> dict[str, Any]:
    """:data:`STYLE` with ``style`` merged on top (``None``, a mapping of rcParams, a ``.mplstyle`` path, a
    matplotlib style name, or a list of those). ``ValueError`` with one line for what cannot be used."""
    merged = dict(STYLE)
    for one in _as_list(style):
        if isinstance(one, Mapping):
            merged.update(one)
        elif isinstance(one, (str, os.PathLike)):
            path = Path(one).expanduser()
            if path.is_file():
                merged.update(dict(rc_params_from_file(str(path), use_default_template=False)))
            elif str(one) in matplotlib.style.library:
                merged.update(dict(matplotlib.style.library[str(one)]))
            else:
                raise ValueError(f"style {str(one)!r} is neither a .mplstyle file nor a matplotlib style; "
                                 f"styles: {', '.join(sorted(matplotlib.style.library))}")
        else:
            raise ValueError(f"style must be a dict of rcParams, a .mplstyle path or a style name, "
                             f"got {type(one).__name__}")
    unknown = [k for k in merged if k not in matplotlib.rcParams]
    if unknown:
        raise ValueError(f"unknown rcParam {unknown[0]!r} in style (see matplotlib.rcParams for the names)")
    return merged


def _as_list(style: Any) -> list[Any]:
    if style is None:
        return []
    if isinstance(style, (Mapping, str, os.PathLike)):
        return [style]
    if isinstance(style, Iterable):
        return list(style)
    return [style]


def estimator_style(ds: xr.Dataset, estimator: str) -> dict[str, Any]:
    """Colour, marker and dash pattern of an estimator, fixed by its position among the dataset's estimators.

    Colour-blind safe colours (Okabe-Ito); the marker and dash tell estimators apart in greyscale too.
    """
    names = [str(m) for m in ds.coords["estimator"].values]
    k = names.index(estimator) if estimator in names else 0
    return {"color": PALETTE[k % len(PALETTE)], "marker": MARKERS[k % len(MARKERS)],
            "ls": DASHES[k % len(DASHES)]}


def styled(func: F) -> F:
    """Run a plot function inside ``rc_context(resolve_style(style))``; its ``style=`` keyword picks the style.

    The figure remembers the style (attribute ``simstudy_style``) so that :func:`save_figure` saves it with
    the same settings. Tick labels are made while the style is in force (matplotlib makes them lazily).
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        rc = resolve_style(kwargs.get("style"))
        with matplotlib.rc_context(rc):
            fig = func(*args, **kwargs)
            for ax in fig.axes:
                for axis in (ax.xaxis, ax.yaxis):
                    axis.majorTicks[0], axis.minorTicks[0]  # noqa: B018 - the first tick is the template
        fig.simstudy_style = rc
        return fig

    return wrapper  # type: ignore[return-value]


def figure_bytes(fig: Figure, fmt: str, *, dpi: float = 300) -> bytes:
    """The figure as the bytes of a ``fmt`` file (``"pdf"``, ``"svg"``, ``"png"``, ...) at ``dpi``."""
    rc = getattr(fig, "simstudy_style", None) or STYLE
    buf = io.BytesIO()
    with matplotlib.rc_context(rc):
        fig.savefig(buf, format=fmt, dpi=dpi, metadata=_METADATA.get(fmt))
    return buf.getvalue()


def save_figure(fig: Figure, path_stem: str | os.PathLike[str], *, formats: Sequence[str] = FORMATS,
                dpi: float = 300) -> list[Path]:
    """Write ``fig`` as ``<path_stem>.pdf``, ``.svg`` and ``.png`` (or the given ``formats``).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        A figure from one of the plot functions (or any figure).
    path_stem : str or Path
        File name without the extension, e.g. ``"figures/coverage_treat"`` (an extension such as ``.png`` is
        dropped); its directory is created.
    formats : sequence of str
        File formats, each a matplotlib format name; vector formats (PDF, SVG) scale to any size.
    dpi : float
        Resolution of the raster formats (PNG); 300 suits print, 150 a web page.

    Returns
    -------
    list of Path
        The files written, in the order of ``formats``.

    Examples
    --------
    >>> fig = plot_performance(summary, measure="coverage")       # doctest: +SKIP
    >>> save_figure(fig, "figures/coverage")                      # doctest: +SKIP
    [PosixPath('figures/coverage.pdf'), PosixPath('figures/coverage.svg'), PosixPath('figures/coverage.png')]
    """
    if isinstance(formats, str):
        formats = [formats]
    if not formats:
        raise ValueError("formats is empty; choose from e.g. pdf, svg, png")
    supported = fig.canvas.get_supported_filetypes()
    for fmt in formats:
        if fmt not in supported:
            raise ValueError(f"unknown figure format {fmt!r}; choose from {', '.join(sorted(supported))}")
    stem = Path(path_stem)
    if stem.suffix.lstrip(".").lower() in supported:  # "coverage.png" names the stem "coverage"
        stem = stem.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        path.write_bytes(figure_bytes(fig, fmt, dpi=dpi))
        written.append(path)
    return written
