"""Checkpoint files round-trip exactly and damaged ones are detected."""

from __future__ import annotations

import numpy as np
import pytest

from simstudy.engine.checkpoint import CorruptChunk, key_hex, list_chunks, read_chunk, write_chunk
from simstudy.engine.chunk import Task, run_chunk
from simstudy.study import load_study
from support import TOY, tamper


@pytest.fixture(scope="module")
def result():
    study = load_study(TOY)
    return run_chunk(study, Task(0, {"n": 10, "mu": 1.0}, 5, 17, seed=3))


def test_round_trip_is_exact(tmp_path, result):
    path = write_chunk(tmp_path, "ab" * 16, "fp", result)
    back, meta = read_chunk(path)
    assert meta["fingerprint"] == "fp" and (meta["start"], meta["stop"]) == (5, 17)
    for v in result.values:
        np.testing.assert_array_equal(back.values[v], result.values[v])
    for attr in ("status", "n_warnings", "message", "fit_seconds", "generate_seconds"):
        np.testing.assert_array_equal(getattr(back, attr), getattr(result, attr))
    assert back.estimators == result.estimators and back.params == result.params
    assert [c.start for c in list_chunks(tmp_path)] == [5]


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_damage_is_detected(tmp_path, result, damage):
    path = write_chunk(tmp_path, "cd" * 16, "fp", result)
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) - 50]
    elif damage == "flip":
        tamper(path)
        raw = bytearray(path.read_bytes())
    else:
        raw = bytearray(b"not parquet at all")
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptChunk):
        read_chunk(path)


def test_key_hex():
    assert key_hex((1, 2, 3, 255)) == "000000010000000200000003000000ff"


def _rewrite_meta(path, change):
    """Edit a checkpoint's metadata and keep its old checksum: what a hand edit or a buggy tool does."""
    import json

    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[b"simstudy"])
    change(meta)
    pq.write_table(table.replace_schema_metadata({"simstudy": json.dumps(meta)}), path)


@pytest.mark.parametrize("change", [
    lambda m: m.update(start=m["start"] + 1, stop=m["stop"] + 1),  # shifted placement
    lambda m: m.update(params=[p.replace("mean", "z") for p in m["params"]]),  # renamed params
    lambda m: m.update(fingerprint="other"),
])
def test_metadata_is_under_the_checksum(tmp_path, result, change):
    path = write_chunk(tmp_path, "ab" * 16, "fp", result)
    _rewrite_meta(path, change)
    with pytest.raises(CorruptChunk, match="checksum mismatch"):
        read_chunk(path)


def test_a_chunk_copied_under_another_name_is_refused(tmp_path, result):
    # defect: copying the chunk of replicates 11-20 under the name for 1-10 was read as data (exit 0)
    path = write_chunk(tmp_path, "ab" * 16, "fp", result)
    wrong = path.with_name(path.name.replace("00000005-00000017", "00000001-00000013"))
    path.rename(wrong)
    with pytest.raises(CorruptChunk, match="its name and its metadata disagree"):
        read_chunk(wrong)
    other_cell = path.with_name(path.name.replace("ab" * 16, "cd" * 16))
    wrong.rename(other_cell)
    with pytest.raises(CorruptChunk, match="disagree on the cell or the replicates"):
        read_chunk(other_cell)
