"""The lockstep tools of the batched engines (simstudy.estimators.reml_batch)."""

from __future__ import annotations

import numpy as np
import pytest

from simstudy.estimators import reml_batch as rb


def test_spd_parts_match_numpy_and_flag_non_positive_definite():
    rng = np.random.default_rng(0)
    B = rng.normal(size=(6, 5, 5))
    A = B @ np.swapaxes(B, 1, 2) + 0.1 * np.eye(5)
    A[4, 1, 1] = -1.0  # not positive definite
    A[4, 1, :] = A[4, :, 1] = np.r_[0.0, -1.0, 0.0, 0.0, 0.0][None]
    p = 4
    out = rb.spd_parts(A, p, need_inv=True)
    for i in range(4):
        M, b, c = A[i, :p, :p], A[i, :p, p], A[i, p, p]
        np.testing.assert_allclose(out["logdetM"][i], np.linalg.slogdet(M)[1], rtol=1e-12)
        np.testing.assert_allclose(out["beta"][i], np.linalg.solve(M, b), rtol=1e-10)
        np.testing.assert_allclose(out["q"][i], c - b @ np.linalg.solve(M, b), rtol=1e-10)
        np.testing.assert_allclose(out["Minv"][i], np.linalg.inv(M), rtol=1e-10, atol=1e-12)
    assert np.isnan(out["logdetM"][4]) and np.isnan(out["beta"][4]).all() and np.isnan(out["Minv"][4]).all()
    single = rb.spd_parts(A[2:3], p, need_inv=True)
    for key in out:
        assert np.array_equal(single[key][0], out[key][2])


def _rosenbrock(idx, x, a):
    """Criterion, gradient and Hessian of ``(a - x0)^2 + 100 (x1 - x0^2)^2`` for problems with parameters ``a``."""
    x0, x1 = x[:, 0], x[:, 1]
    ai = a[idx]
    f = (ai - x0) ** 2 + 100 * (x1 - x0**2) ** 2
    g = np.stack([-2 * (ai - x0) - 400 * x0 * (x1 - x0**2), 200 * (x1 - x0**2)], axis=1)
    H = np.empty((x.shape[0], 2, 2))
    H[:, 0, 0] = 2 - 400 * (x1 - 3 * x0**2)
    H[:, 0, 1] = H[:, 1, 0] = -400 * x0
    H[:, 1, 1] = 200
    return f, g, H


def test_newton_lockstep_equals_single_runs():
    """Problems in lockstep: each converges (Rosenbrock minima (a, a^2)) and ends exactly where it ends alone,
    with the same iteration count, whatever the other problems."""
    a = np.array([1.0, -0.5, 2.0, 0.3, 1.0])
    x0 = np.array([[-1.2, 1.0], [0.0, 0.0], [3.0, 1.0], [0.3, 0.09], [1.0, 1.0]])

    def derivs(idx, x):
        return _rosenbrock(idx, x, a)

    def crit(idx, x):
        return _rosenbrock(idx, x, a)[0]

    x, its = rb.newton(derivs, crit, x0, np.arange(2), 100)
    np.testing.assert_allclose(x, np.stack([a, a**2], axis=1), rtol=1e-6, atol=1e-8)
    for i in range(5):
        xi, iti = rb.newton(lambda idx, x: _rosenbrock(idx + i, x, a), lambda idx, x: _rosenbrock(idx + i, x, a)[0],
                            x0[i : i + 1], np.arange(2), 100)
        assert np.array_equal(xi[0], x[i]) and iti[0] == its[i]


@pytest.mark.parametrize("free", [np.array([0]), np.array([1])])
def test_newton_keeps_the_other_coordinates(free):
    a = np.array([1.0])
    def derivs(idx, x):
        f, g, H = _rosenbrock(idx, x, a)
        return f, g[:, free], H[:, free][:, :, free]

    x, _ = rb.newton(derivs, lambda idx, x: _rosenbrock(idx, x, a)[0], np.array([[0.5, 0.5]]), free, 50)
    other = 1 - free[0]
    assert x[0, other] == 0.5


def test_pick_best_prefers_zeros_within_rounding():
    owner = np.array([0, 0, 0, 1, 1, 2])
    f = np.array([10.0, 10.0 + 1e-13, 9.0, 5.0, 5.0 + 1e-14, np.inf])
    zeros = np.array([0, 2, 0, 0, 1, 0])
    assert rb.pick_best(owner, f, zeros).tolist() == [2, 4, 5]
    assert rb.pick_best(np.array([3, 3]), np.array([1.0, 1.0]), np.array([1, 1])).tolist() == [0]
