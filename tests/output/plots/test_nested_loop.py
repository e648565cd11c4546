"""plot_nested_loop: every cell on one axis, step lines per method, factor legs below."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer

from simstudy.output.plots import plot_nested_loop
from support import CLUSTER_TRIAL_METHODS as METHODS

FACTORS = ["n_groups", "group_size", "icc"]


def method_lines(ax):
    return [line for line in ax.lines if line.get_label() in METHODS]


def legs(ax):
    return {line.get_gid()[4:]: line for line in ax.lines if str(line.get_gid()).startswith("leg:")}


def test_steps_per_method_over_all_cells(summary):
    fig = plot_nested_loop(summary, measure="coverage", param="treat")
    top, bottom = fig.axes
    lines = method_lines(top)
    assert [line.get_label() for line in lines] == METHODS
    values = summary["coverage"].sel({"param": "treat"}).isel(treatment_effect=0).transpose(*FACTORS, "estimator")
    for k, line in enumerate(lines):
        assert line.get_drawstyle() == "steps-post"
        x, y = line.get_xdata(), line.get_ydata()
        assert len(x) == 8 + 1  # 2 x 2 x 2 cells, plus the right edge of the last step
        np.testing.assert_allclose(y[:-1], values.values[..., k].ravel())
    bars = [c for c in top.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == len(METHODS) and all(b.has_yerr for b in bars)
    (nominal,) = [line for line in top.lines if line.get_gid() == "nominal"]
    np.testing.assert_allclose(nominal.get_ydata(), [0.95, 0.95])
    assert top.get_ylabel() == "Coverage"


def test_legs_show_the_nesting(summary):
    fig = plot_nested_loop(summary, param="treat")
    bottom = fig.axes[1]
    found = legs(bottom)
    assert sorted(found) == sorted(FACTORS)
    # the innermost factor changes every cell, the outermost once
    changes = {f: int(np.count_nonzero(np.diff(line.get_ydata()[:-1]))) for f, line in found.items()}
    assert changes == {"n_groups": 1, "group_size": 3, "icc": 7}
    label = bottom.get_xlabel()
    assert "n groups > group size > icc" in label
    ticks = " ".join(t.get_text() for t in bottom.get_yticklabels())
    assert "n groups: 6, 20" in ticks and "icc: 0.05, 0.2" in ticks


def test_order_puts_a_factor_outermost(summary):
    order = ["icc", "n_groups", "group_size"]
    fig = plot_nested_loop(summary, measure="bias", param="treat", order=order)
    top, bottom = fig.axes
    values = summary["bias"].sel({"param": "treat", "estimator": "lmm"}).isel(treatment_effect=0).transpose(*order)
    (lmm,) = [line for line in method_lines(top) if line.get_label() == "lmm"]
    np.testing.assert_allclose(lmm.get_ydata()[:-1], values.values.ravel())
    changes = {f: int(np.count_nonzero(np.diff(line.get_ydata()[:-1]))) for f, line in legs(bottom).items()}
    assert changes["icc"] == 1 and changes["group_size"] == 7
    separators = [line for line in top.lines if line.get_gid() == "separator"]
    assert len(separators) == 1  # between the two levels of icc
    (zero,) = [line for line in top.lines if line.get_gid() == "reference"]
    np.testing.assert_allclose(zero.get_ydata(), [0, 0])


def test_select_drops_a_factor(summary):
    fig = plot_nested_loop(summary, param="treat", select={"icc": 0.2})
    assert sorted(legs(fig.axes[1])) == ["group_size", "n_groups"]
    assert len(method_lines(fig.axes[0])[0].get_xdata()) == 4 + 1
    assert fig.get_suptitle() == ""
    titled = plot_nested_loop(summary, param="treat", select={"icc": 0.2}, title=True)
    assert "icc = 0.2" in titled.get_suptitle()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"measure": "accuracy"}, "unknown measure 'accuracy'"),
        ({"order": ["icc", "n_groups"]}, "leaves out"),
        ({"order": ["icc", "n_groups", "cluster"]}, "unknown factor 'cluster'"),
        ({"param": "z"}, "unknown param 'z'"),
    ],
)
def test_bad_options(summary, kwargs, message):
    with pytest.raises(ValueError, match=message):
        plot_nested_loop(summary, **kwargs)


def test_needs_a_varying_factor(summary):
    with pytest.raises(ValueError, match="at least one factor"):
        plot_nested_loop(summary, select={"n_groups": 6, "group_size": 5, "icc": 0.05})
