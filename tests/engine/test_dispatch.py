"""Dispatching tasks: streaming, skipping stopped cells, failed chunks."""

from __future__ import annotations

import numpy as np
import pytest

from simstudy.engine.chunk import Task
from simstudy.engine.dispatch import execute, failed_chunk
from simstudy.study import load_study
from support import TOY


@pytest.mark.parametrize("jobs", [1, 2])
def test_all_tasks_return_and_skip_is_asked_at_dispatch(jobs):
    study = load_study(TOY)
    tasks = [Task(i, {"n": 10, "mu": 0.0}, s, s + 5, 1) for i in range(2) for s in (1, 6, 11)]
    results = list(execute(study, tasks, jobs, skip=lambda t: t.cell_index == 1 and t.start > 1))
    assert sorted((r.cell_index, r.start) for r in results) == [(0, 1), (0, 6), (0, 11), (1, 1)]


def test_failed_chunk_shape():
    c = failed_chunk(Task(0, {}, 3, 6, 0), ["a", "b"], "worker died")
    assert c.n == 3 and c.status.shape == (3, 2) and (c.status == 3).all()
    assert c.params == () and c.values["estimate"].shape == (3, 2, 0)
    assert np.all(c.message == "worker died")
