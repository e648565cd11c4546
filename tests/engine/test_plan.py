"""Planning what is missing: gaps between checkpoints, changed studies, damaged files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from simstudy.engine.checkpoint import ChunkFile, write_chunk
from simstudy.engine.chunk import Task, run_chunk
from simstudy.engine.plan import Plan
from simstudy.study import load_study
from support import TOY


def make(study, out, reps=30, force=False):
    cells = study.validate()
    return Plan.make(study, out, cells, [study.truth_for(c) for c in cells], reps, study.seed, force=force)


def test_tasks_fill_only_the_gaps():
    plan = Plan(Path("."), [{"a": 1}], ["k"], ["f"], reps=30, seed=0)
    plan.found[0] = [ChunkFile(Path("x"), "k", 5, 11), ChunkFile(Path("y"), "k", 20, 26)]
    spans = [(t.start, t.stop) for t in plan.tasks(4)]
    # blocks of 4: [1,5) [5,9) [9,13) [13,17) [17,21) [21,25) [25,29) [29,31), minus what is there
    assert spans == [(1, 5), (11, 13), (13, 17), (17, 20), (26, 29), (29, 31)]
    assert plan.done() == 12
    assert plan.missing(4) == ["a=1: replicates 1-4, 11-12, 13-16, 17-19, 26-28, 29-30"]


def test_shards_split_blocks_without_overlap():
    plan = Plan(Path("."), [{"a": 1}, {"a": 2}], ["k1", "k2"], ["f1", "f2"], reps=25, seed=0)
    every = {(t.cell_index, t.start, t.stop) for t in plan.tasks(10)}
    parts = [{(t.cell_index, t.start, t.stop) for t in plan.tasks(10, shard=(i, 3))} for i in range(3)]
    assert set().union(*parts) == every and sum(len(p) for p in parts) == len(every) == 6


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
