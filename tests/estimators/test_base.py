"""FitSlots: single Fits and stacked blocks of a batch, read back as FitArrays or Fits."""

from __future__ import annotations

import numpy as np
import pytest

from simstudy.estimators.base import STATUSES, Fit, FitSlots


def fit(names, base, status="ok", n_warnings=0, message=""):
    v = base + np.arange(len(names), dtype=float)
    return Fit(tuple(names), v, v / 10, v - 1, v + 1, v * 0 + 7, status, n_warnings, message)


def block(slots, rows, names, base, status, messages):
    k, p = len(rows), len(names)
    v = base + np.arange(k * p, dtype=float).reshape(k, p)
    slots.put(rows, tuple(names), v, v / 10, v - 1, v + 1, v * 0 + 7, status, messages)


def test_blocks_and_single_fits_read_back_as_arrays_and_fits():
    slots = FitSlots(5)
    block(slots, [1, 3], ["a", "b"], 100.0, ["ok", "boundary"], ["", "at 0"])
    slots[0] = fit(["b", "c"], 1.0, n_warnings=2, message="w")
    slots[2] = Fit.failed("boom", ("a", "b"))
    slots[4] = fit([], 0.0, status="failed", message="no names")
    arr = slots.arrays()
    # parameters in order of first appearance by replicate: replicate 0 has (b, c), replicate 1 adds a
    assert arr.params == ("b", "c", "a")
    assert arr.names == [("b", "c"), ("a", "b"), ("a", "b"), ("a", "b"), ()]
    assert [STATUSES[s] for s in arr.status] == ["ok", "ok", "failed", "boundary", "failed"]
    assert arr.n_warnings.tolist() == [2, 0, 0, 0, 0]
    assert arr.message == ["w", "", "boom", "at 0", "no names"]
    assert arr.reported.tolist() == [[True, True, False], [True, False, True], [True, False, True],
                                     [True, False, True], [False, False, False]]
    assert arr.estimate[3, 0] == 103.0 and np.isnan(arr.estimate[3, 1]) and arr.estimate[3, 2] == 102.0
    assert arr.df[1, 0] == 7.0
    assert np.isnan(arr.estimate[2]).all() and np.isnan(arr.estimate[4]).all()
    for i in range(5):  # the arrays and the slots give the same Fit, value for value
        a, b = arr.fit(i), slots[i]
        assert (a.params, a.status, a.message) == (b.params, b.status, b.message)
        for attr in ("estimate", "se", "ci_lower", "ci_upper", "df"):
            assert np.array_equal(getattr(a, attr), getattr(b, attr), equal_nan=True)
    assert [f.params for f in slots.fits()] == arr.names


def test_a_later_write_replaces_an_earlier_one():
    slots = FitSlots(3)
    slots[0] = fit(["a"], 1.0)
    block(slots, [0, 1, 2], ["a"], 10.0, np.zeros(3, np.int8), ["", "", ""])  # replaces the single Fit
    slots[2] = Fit.failed("timed out", ("a",))  # replaces the block's row
    arr = slots.arrays()
    assert arr.estimate[:, 0].tolist()[:2] == [10.0, 11.0] and np.isnan(arr.estimate[2, 0])
    assert arr.message == ["", "", "timed out"] and slots[1].estimate.tolist() == [11.0]
    assert slots[2].status == "failed"


def test_an_unfilled_slot_is_an_error_not_a_default():
    slots = FitSlots(2)
    slots[1] = fit(["a"], 1.0)
    with pytest.raises(IndexError, match="slot 0"):
        slots.arrays()
    with pytest.raises(IndexError, match="slot 0"):
        slots[0]


def test_of_keeps_every_fit():
    fits = [fit(["a", "b"], 1.0), Fit.failed("x"), fit(["b"], 5.0, status="nonconverged", n_warnings=3)]
    arr = FitSlots.of(fits).arrays()
    assert arr.params == ("a", "b") and arr.names == [f.params for f in fits]
    assert arr.estimate[2].tolist()[1] == 5.0 and np.isnan(arr.estimate[2, 0])
    assert [STATUSES[s] for s in arr.status] == ["ok", "failed", "nonconverged"] and arr.n_warnings[2] == 3
