"""Seeding: a replicate's stream depends on the seed, the cell's values and the replicate number only."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from simstudy.engine.rng import cell_key, replicate_rng


def draw(seed, cell, rep):
    return replicate_rng(seed, cell_key(cell), rep).random(4).tolist()


def test_same_inputs_same_stream():
    assert draw(1, {"n": 10, "icc": 0.1}, 3) == draw(1, {"icc": 0.1, "n": 10}, 3)


def test_equal_numbers_are_the_same_cell():
    assert cell_key({"n": 10}) == cell_key({"n": 10.0})


def test_streams_differ_by_seed_cell_and_rep():
    base = draw(1, {"n": 10}, 1)
    assert draw(2, {"n": 10}, 1) != base
    assert draw(1, {"n": 11}, 1) != base
    assert draw(1, {"n": 10}, 2) != base
    assert draw(1, {"n": 10, "m": "a"}, 1) != base


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "c"]), st.one_of(st.integers(-5, 5), st.text(max_size=3)),
                       min_size=1), st.integers(0, 2**31), st.integers(1, 10**6))
def test_key_ignores_other_cells(cell, seed, rep):
    # a cell's stream does not depend on which other cells exist or on their order
    before = draw(seed, cell, rep)
    _ = [draw(seed, {"z": i}, rep) for i in range(3)]
    assert draw(seed, dict(reversed(list(cell.items()))), rep) == before
