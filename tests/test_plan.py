"""Planning what is missing: gaps between checkpoints, changed studies, damaged files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from simstudy.checkpoint import ChunkFile, write_chunk
from simstudy.chunk import Task, run_chunk
from simstudy.plan import Plan
from simstudy.study import load_study
from tests_paths import TOY


def make(study, out, reps=30, force=False):
    cells = study.validate()
    return Plan.make(study, out, cells, [study.truth_for(c) for c in cells], reps, study.seed, force=force)


def test_tasks_fill_only_the_gaps():
    plan = Plan(Path("."), [{"a": 1}], ["k"], ["f"], reps=30, seed=0)
    plan.found[0] = [ChunkFile(Path("x"), "k", 5, 11), ChunkFile(Path("y"), "k", 20, 26)]
    spans = [(t.start, t.stop) for t in plan.tasks(4)]
    assert spans == [(1, 5), (11, 15), (15, 19), (19, 20), (26, 30), (30, 31)]
    assert plan.done() == 12


def test_changed_study_is_refused_then_forced(tmp_path):
    study = load_study(TOY)
    plan = make(study, tmp_path)
    result = run_chunk(study, Task(0, plan.cells[0], 1, 11, study.seed))
    write_chunk(tmp_path, plan.keys[0], plan.fingerprints[0], result)
    assert make(study, tmp_path).done() == 10
    changed = replace(study, seed=study.seed + 1)
    with pytest.raises(ValueError, match="different version of this study for 1 cell"):
        make(changed, tmp_path)
    assert make(changed, tmp_path, force=True).done() == 0
    assert not any((tmp_path / "chunks").iterdir())


def test_estimator_configuration_is_part_of_the_fingerprint(tmp_path):
    study = load_study(TOY)
    plan = make(study, tmp_path)
    other = replace(study, estimators={"mean": study.estimators["mean"]})
    assert make(other, tmp_path).fingerprints != plan.fingerprints
    assert make(replace(study, reps=99), tmp_path).fingerprints == plan.fingerprints
