"""plot_estimates and plot_bland_altman: two estimators' replicate-level estimates (or SEs) in one cell."""

from __future__ import annotations

import numpy as np
import pytest

from simstudy.output.plots import plot_bland_altman, plot_estimates

CELL = {"n_groups": 6, "group_size": 5, "icc": 0.2}


def by_gid(ax, gid):
    return [a for a in [*ax.lines, *ax.texts] if a.get_gid() == gid]


def replicates(estimates, what, estimator, param="treat"):
    one = estimates.sel({"param": param, "estimator": estimator}).isel(n_groups=0, group_size=0, icc=1,
                                                                       treatment_effect=0)
    return np.asarray(one[what].values, dtype=float)


def test_scatter_of_the_estimates_with_the_identity_line(estimates):
    fig = plot_estimates(estimates, estimators=["ols", "lmm"], param="treat", cell=CELL)
    (ax,) = fig.axes
    (points,) = by_gid(ax, "points")
    x, y = replicates(estimates, "estimate", "ols"), replicates(estimates, "estimate", "lmm")
    keep = np.isfinite(x) & np.isfinite(y)
    np.testing.assert_allclose(points.get_xdata(), x[keep])
    np.testing.assert_allclose(points.get_ydata(), y[keep])
    (identity,) = by_gid(ax, "identity")
    np.testing.assert_allclose(identity.get_xdata(), identity.get_ydata())
    assert ax.get_xlim() == ax.get_ylim()  # one scale for both
    assert min(identity.get_xdata()) <= x[keep].min() and max(identity.get_xdata()) >= y[keep].max()
    true = by_gid(ax, "true")
    assert len(true) == 2 and true[0].get_xdata()[0] == pytest.approx(0.3)
    (stats,) = by_gid(ax, "stats")
    assert f"n = {keep.sum()}" in stats.get_text()
    assert f"r = {np.corrcoef(x[keep], y[keep])[0, 1]:.3f}" in stats.get_text()
    assert ax.get_xlabel().replace("\n", " ") == "ols: estimate of treat"
    assert ax.get_ylabel().replace("\n", " ") == "lmm: estimate of treat"


def test_scatter_of_the_ses(estimates):
    fig = plot_estimates(estimates, estimators=["ols", "lmm_t"], param="treat", cell=CELL, what="se")
    (ax,) = fig.axes
    (points,) = by_gid(ax, "points")
    np.testing.assert_allclose(points.get_ydata(), replicates(estimates, "se", "lmm_t"))
    assert not by_gid(ax, "true")
    assert "SE of treat" in ax.get_xlabel()
    # OLS SEs ignore the clustering: below the mixed model's in most replicates
    assert np.mean(points.get_xdata() < points.get_ydata()) > 0.5


def test_bland_altman_mean_difference_and_limits_of_agreement(estimates):
    fig = plot_bland_altman(estimates, estimators=["ols", "lmm"], param="treat", cell=CELL)
    (ax,) = fig.axes
    a, b = replicates(estimates, "estimate", "ols"), replicates(estimates, "estimate", "lmm")
    (points,) = by_gid(ax, "points")
    np.testing.assert_allclose(points.get_xdata(), (a + b) / 2)
    np.testing.assert_allclose(points.get_ydata(), b - a)
    d = b - a
    (mean,) = by_gid(ax, "mean_difference")
    np.testing.assert_allclose(mean.get_ydata(), [d.mean()] * 2)
    (lower,), (upper,) = by_gid(ax, "loa_lower"), by_gid(ax, "loa_upper")
    np.testing.assert_allclose(lower.get_ydata()[0], d.mean() - 1.959964 * d.std(ddof=1), rtol=1e-6)
    np.testing.assert_allclose(upper.get_ydata()[0], d.mean() + 1.959964 * d.std(ddof=1), rtol=1e-6)
    notes = " ".join(t.get_text() for t in by_gid(ax, "value"))
    assert f"{d.mean():.3g}" in notes
    assert ax.get_ylabel() == "lmm \u2212 ols"
    lo, hi = ax.get_ylim()
    assert lo < lower.get_ydata()[0] and upper.get_ydata()[0] < hi


def test_bland_altman_of_identical_estimates_is_drawn(estimates):
    # OLS with classical and with cluster-robust SEs gives the same estimates: the differences are all 0
    fig = plot_bland_altman(estimates, param="treat", cell=CELL)
    ax = fig.axes[0]
    np.testing.assert_allclose(by_gid(ax, "points")[0].get_ydata(), 0.0, atol=1e-9)
    lo, hi = ax.get_ylim()
    assert hi - lo > 1e-3  # a readable band around 0, not an axis of 1e-13
    assert len(by_gid(ax, "value")) == 1


@pytest.mark.parametrize("plot", [plot_estimates, plot_bland_altman])
@pytest.mark.parametrize(("kwargs", "message"), [
    ({"param": "treat"}, "choose a cell"),
    ({"cell": CELL, "estimators": ["ols"]}, "two different estimators"),
    ({"cell": CELL, "estimators": ["ols", "ols"]}, "two different estimators"),
    ({"cell": CELL, "estimators": ["ols", "gee"]}, "unknown estimator 'gee'"),
    ({"cell": CELL, "what": "df"}, "what must be one of"),
    ({"cell": CELL, "param": "var(group)"}, "fewer than two replicates"),
])
def test_bad_options(estimates, plot, kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        plot(estimates, **kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("plot", [plot_estimates, plot_bland_altman])
def test_summary_is_refused(summary, plot):
    with pytest.raises(ValueError, match="estimates.nc"):
        plot(summary, cell=CELL)
