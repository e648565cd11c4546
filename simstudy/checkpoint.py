"""Checkpoints: one Parquet file per finished chunk, written atomically, with a checksum of its contents.

A chunk file holds one row per (replicate, method): the fit-level columns and, for every parameter ``p``,
the columns ``estimate|p``, ``se|p``, ``ci_lower|p``, ``ci_upper|p``, ``df|p`` and ``reported|p`` (the fit
listed the parameter: NaN then means "not estimable", not "not an output of this method"). Its key-value metadata
carries the cell, the replicate range, the cell's fingerprint and a SHA-256 of the column data, so a
truncated or corrupted file is detected and recomputed instead of being read as data.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from simstudy.chunk import VALUES, ChunkResult
from simstudy.store import atomic_path

CHUNK_DIR = "chunks"
_NAME = re.compile(r"^(?P<key>[0-9a-f]{32})_(?P<start>\d+)-(?P<stop>\d+)\.parquet$")


class CorruptChunk(Exception):
    """A checkpoint file that cannot be read or whose checksum does not match."""


@dataclass(frozen=True)
class ChunkFile:
    """A checkpoint on disk: which cell (by key) and which replicates it holds."""

    path: Path
    key: str
    start: int
    stop: int


def chunk_path(directory: Path, key: str, start: int, stop: int) -> Path:
    """Where the chunk of replicates ``start .. stop - 1`` of the cell with hex key ``key`` is kept."""
    return directory / CHUNK_DIR / f"{key}_{start:08d}-{stop:08d}.parquet"


def _checksum(cols: dict[str, np.ndarray]) -> str:
    """SHA-256 of the columns' names, types and values (independent of Parquet's own layout)."""
    h = hashlib.sha256()
    for name, values in cols.items():
        h.update(name.encode() + b"\0")
        if values.dtype.kind in "OUS":
            h.update("\x1f".join(map(str, values)).encode())
        else:
            h.update(values.dtype.str.encode() + np.ascontiguousarray(values).tobytes())
    return h.hexdigest()


def write_chunk(directory: Path, key: str, fingerprint: str, result: ChunkResult) -> Path:
    """Write one chunk's results atomically; returns the file's path."""
    n, n_m = result.status.shape
    cols: dict[str, np.ndarray] = {
        "rep": np.repeat(np.arange(result.start, result.start + n, dtype=np.int64), n_m),
        "method": np.tile(np.array(result.methods, dtype=object), n),
        "status": result.status.ravel(),
        "n_warnings": result.n_warnings.ravel(),
        "message": result.message.astype(object).ravel(),
        "fit_seconds": result.fit_seconds.ravel(),
        "generate_seconds": np.repeat(result.generate_seconds, n_m),
    }
    for v in VALUES:
        for k, p in enumerate(result.params):
            cols[f"{v}|{p}"] = result.values[v][:, :, k].ravel()
    if result.reported is not None:
        for k, p in enumerate(result.params):
            cols[f"reported|{p}"] = result.reported[:, :, k].ravel()
    table = pa.table(cols)
    meta = {
        "cell_index": result.cell_index, "start": result.start, "stop": result.start + n, "key": key,
        "fingerprint": fingerprint, "methods": list(result.methods), "params": list(result.params),
        "checksum": _checksum(cols),
    }
    table = table.replace_schema_metadata({"simstudy": json.dumps(meta)})
    path = chunk_path(directory, key, result.start, result.start + n)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return path


def read_chunk(path: Path) -> tuple[ChunkResult, dict]:
    """Read a chunk file back; raises :class:`CorruptChunk` if it is unreadable or fails its checksum."""
    try:
        table = pq.read_table(path)
        meta = json.loads(table.schema.metadata[b"simstudy"])
    except Exception as exc:  # truncated, not parquet, no metadata
        raise CorruptChunk(f"{path.name}: {type(exc).__name__}") from None
    col = {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
    if _checksum(col) != meta.get("checksum"):
        raise CorruptChunk(f"{path.name}: checksum mismatch")
    methods, params = tuple(meta["methods"]), tuple(meta["params"])
    n, n_m = meta["stop"] - meta["start"], len(methods)
    values = {
        v: np.stack([col[f"{v}|{p}"].reshape(n, n_m) for p in params], axis=-1)
        if params else np.empty((n, n_m, 0))
        for v in VALUES
    }
    result = ChunkResult(
        cell_index=meta["cell_index"], start=meta["start"], methods=methods, params=params, values=values,
        status=col["status"].reshape(n, n_m).astype(np.int8),
        n_warnings=col["n_warnings"].reshape(n, n_m).astype(np.int32),
        message=col["message"].astype(str).reshape(n, n_m),
        fit_seconds=col["fit_seconds"].reshape(n, n_m),
        generate_seconds=col["generate_seconds"].reshape(n, n_m)[:, 0].copy(),
        reported=np.stack([col[f"reported|{p}"].reshape(n, n_m) for p in params], axis=-1).astype(bool)
        if params and all(f"reported|{p}" in col for p in params) else None,
    )
    return result, meta


def list_chunks(directory: Path) -> Iterator[ChunkFile]:
    """Every checkpoint file in ``directory/chunks`` (by name; contents are checked when read)."""
    folder = directory / CHUNK_DIR
    if not folder.is_dir():
        return
    for path in sorted(folder.iterdir()):
        m = _NAME.match(path.name)
        if m:
            yield ChunkFile(path, m["key"], int(m["start"]), int(m["stop"]))


def key_hex(key: tuple[int, ...]) -> str:
    """A cell key (:func:`simstudy.rng.cell_key`) as 32 hex digits, for file names."""
    return "".join(f"{k:08x}" for k in key)
