"""What a run still has to compute, given the checkpoints already in its output directory.

Chunks are matched to cells by the cell's key (its factor values), so added levels and added replicates
reuse everything already computed. A chunk whose cell fingerprint differs from the study's (the DGP,
estimators, seed or truth changed) is refused unless ``force``, which deletes it. A chunk that is
truncated or fails its checksum is deleted and recomputed. With ``retry_timed_out``, a chunk holding
replicates that ran out of a shorter time limit than this run's is recomputed, with a notice: a timed-out
replicate's result depends on the limit, the others' do not. A run without a limit keeps such chunks (it
would hang where they hung).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from simstudy.design import cell_label
from simstudy.engine.checkpoint import ChunkFile, CorruptChunk, key_hex, list_chunks, read_chunk
from simstudy.engine.chunk import ChunkResult, Task, timed_out_after
from simstudy.engine.fingerprint import cell_fingerprint, study_parts
from simstudy.engine.rng import cell_key


@dataclass
class Plan:
    """The cells of a run, their keys and fingerprints, and the valid checkpoints found on disk."""

    out: Path
    cells: list[dict[str, Any]]
    keys: list[str]
    fingerprints: list[str]
    reps: int
    seed: int
    found: dict[int, list[ChunkFile]] = field(default_factory=dict)
    discarded: list[str] = field(default_factory=list)

    @classmethod
    def make(cls, study: Any, out: Path, cells: list[dict[str, Any]], truths: Sequence[dict[str, dict[str, float]]],
             reps: int, seed: int, *, force: bool = False, timeout: float | None = None,
             retry_timed_out: bool = False) -> "Plan":
        """Scan ``out`` for checkpoints of these cells; raise ``ValueError`` if any belong to another study.
        With ``retry_timed_out``, chunks whose replicates timed out after less than ``timeout`` seconds are
        deleted, to be recomputed."""
        parts = study_parts(study)
        keys = [key_hex(cell_key(c)) for c in cells]
        fps = [cell_fingerprint(parts, c, t, seed) for c, t in zip(cells, truths)]
        plan = cls(out, cells, keys, fps, reps, seed)
        index = {k: i for i, k in enumerate(keys)}
        changed: dict[int, list[ChunkFile]] = {}
        retried: list[tuple[ChunkFile, float]] = []
        for cf in list_chunks(out):
            i = index.get(cf.key)
            if i is None or cf.start > reps:
                continue  # a level or replicates this run does not ask for: kept, not used
            try:
                result, meta = read_chunk(cf.path)
            except CorruptChunk as exc:
                cf.path.unlink(missing_ok=True)
                plan.discarded.append(str(exc))
                continue
            if meta["fingerprint"] != fps[i]:
                changed.setdefault(i, []).append(cf)
                continue
            limit = _timed_out(result) if retry_timed_out and timeout is not None else None
            if limit is not None and limit < timeout:
                retried.append((cf, limit))
                continue
            plan.found.setdefault(i, []).append(cf)
        if changed and not force:
            raise ValueError(
                f"{str(out)!r} holds results of a different version of this study for {len(changed)} cell(s) "
                "(its DGP, estimators, their code, seed or true values changed); --force recomputes them "
                "(with merge: --force drops them, and merge then lists what is missing)"
            )
        for files in changed.values():
            for cf in files:
                cf.path.unlink(missing_ok=True)
        for message in plan.discarded:
            print(f"simstudy: recomputing a damaged checkpoint ({message})", file=sys.stderr)
        if retried:
            for cf, _ in retried:
                cf.path.unlink(missing_ok=True)
            limits = ", ".join(f"{v:g}" for v in sorted({v for _, v in retried}))
            print(f"simstudy: recomputing {len(retried)} chunk(s) ({sum(cf.stop - cf.start for cf, _ in retried)} "
                  f"replicates) that held replicates timed out after {limits} s, now with --timeout {timeout:g}",
                  file=sys.stderr)
        return plan

    def done(self) -> int:
        """Replicates already computed (within ``reps``)."""
        return sum(min(cf.stop, self.reps + 1) - cf.start for files in self.found.values() for cf in files)

    def tasks(self, chunk_size: int, shard: tuple[int, int] | None = None) -> list[Task]:
        """Tasks for every replicate not yet computed.

        Each cell's replicates are cut into blocks of ``chunk_size``; a task covers what is missing of one
        block. With ``shard=(i, n)`` only every n-th block (counting over all cells in grid order) from the
        i-th on is planned, so n shards with the same ``chunk_size`` share the work without overlap.
        """
        tasks = []
        block = 0
        for i, cell in enumerate(self.cells):
            have = sorted((cf.start, cf.stop) for cf in self.found.get(i, []))
            for start in range(1, self.reps + 1, chunk_size):
                stop = min(start + chunk_size, self.reps + 1)
                mine = shard is None or block % shard[1] == shard[0]
                block += 1
                if mine:
                    tasks += [Task(i, cell, a, b, self.seed) for a, b in _gaps(start, stop, have)]
        return tasks

    def missing(self, chunk_size: int) -> list[str]:
        """Readable descriptions of the replicates not yet computed, one per cell with any missing."""
        out = []
        for i, cell in enumerate(self.cells):
            spans = [(t.start, t.stop - 1) for t in self.tasks(chunk_size) if t.cell_index == i]
            if spans:
                ranges = ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in spans)
                out.append(f"{cell_label(cell)}: replicates {ranges}")
        return out

    def record(self, cf: ChunkFile, i: int) -> None:
        """Note a chunk written during this run."""
        self.found.setdefault(i, []).append(cf)

    def results(self) -> Iterator[ChunkResult]:
        """Read every chunk of this run back, cells in grid order, rows clipped to ``reps``."""
        for i in range(len(self.cells)):
            for cf in sorted(self.found.get(i, []), key=lambda c: c.start):
                result, _ = read_chunk(cf.path)
                result.cell_index = i
                keep = min(result.n, self.reps + 1 - result.start)
                if keep < result.n:
                    result = _head(result, keep)
                yield result

    def params(self) -> list[str]:
        """Every parameter any chunk reports, in order of first appearance (cells in grid order)."""
        params: dict[str, None] = {}
        for i in range(len(self.cells)):
            for cf in sorted(self.found.get(i, []), key=lambda c: c.start):
                meta = json.loads(pq.read_schema(cf.path).metadata[b"simstudy"])
                params.update(dict.fromkeys(meta["params"]))
        return list(params)


def _timed_out(result: ChunkResult) -> float | None:
    """The longest time limit any replicate of ``result`` ran out of, or None if none did."""
    limits = [timed_out_after(str(m)) for m in np.unique(np.asarray(result.message, dtype=str))]
    return max((v for v in limits if v is not None), default=None)


def _gaps(start: int, stop: int, have: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of ``[start, stop)`` not covered by the sorted intervals ``have``."""
    out, position = [], start
    for a, b in have:
        if b <= position or a >= stop:
            continue
        if a > position:
            out.append((position, a))
        position = max(position, b)
    if position < stop:
        out.append((position, stop))
    return out


def _head(result: ChunkResult, n: int) -> ChunkResult:
    return ChunkResult(
        cell_index=result.cell_index, start=result.start, estimators=result.estimators, params=result.params,
        values={k: v[:n] for k, v in result.values.items()}, status=result.status[:n],
        n_warnings=result.n_warnings[:n], message=result.message[:n], fit_seconds=result.fit_seconds[:n],
        generate_seconds=result.generate_seconds[:n],
        reported=None if result.reported is None else result.reported[:n],
    )
