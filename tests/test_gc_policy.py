"""Garbage collection around the command line's start-up: on for the work, frozen start-up objects."""

from __future__ import annotations

import gc
import os

import pytest

from simstudy.gc_policy import collecting


@pytest.fixture
def restore_gc():
    yield
    gc.unfreeze()
    gc.enable()


def test_collection_is_on_inside_and_off_again_after(restore_gc):
    gc.disable()
    gc.unfreeze()
    start_up = [[i] for i in range(1000)]  # objects made while collection is off
    with collecting():
        assert gc.isenabled()
        assert gc.get_freeze_count() >= len(start_up)  # frozen: not traversed by the collections in here
        cycle: list = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1  # garbage made inside is collected
    assert not gc.isenabled()


def test_a_caller_with_collection_on_is_left_alone(restore_gc):
    gc.enable()
    gc.unfreeze()
    with collecting():
        assert gc.isenabled() and gc.get_freeze_count() == 0
    assert gc.isenabled() and gc.get_freeze_count() == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork")
def test_forked_workers_collect_even_when_the_parent_does_not(restore_gc):
    from simstudy.engine.dispatch import _forked_init
    from simstudy.engine.forkpool import ForkPool

    gc.disable()
    pool = ForkPool(1, initializer=_forked_init, initargs=(os.getpid(),))
    try:
        future = pool.submit(gc.isenabled)
        pool.wait([future], 30)
        assert future.result() is True
    finally:
        pool.shutdown()
