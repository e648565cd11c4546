"""The design grid: product, filter and checks of names and levels."""

from __future__ import annotations

import pytest

from simstudy.design import Design


def test_full_product_last_factor_fastest():
    cells = list(Design({"a": [1, 2], "b": ["x", "y", "z"]}).cells())
    assert len(cells) == 6
    assert cells[:2] == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}]


def test_filter_and_scalar_levels():
    d = Design({"a": [1, 2, 3], "b": 5}, where=lambda a, b: a != 2)
    assert [c["a"] for c in d.cells()] == [1, 3]
    assert d.factors["b"] == [5]


@pytest.mark.parametrize(
    ("factors", "message"),
    [
        ({"rep": [1]}, "reserved"),
        ({"1x": [1]}, "identifier"),
        ({"a": []}, "no levels"),
        ({"a": [1, 1]}, "repeated"),
        ({"a": [(0, 5)]}, "not a number, string or boolean"),
    ],
)
def test_bad_factors(factors, message):
    with pytest.raises(ValueError, match=message):
        Design(factors)
