"""Checkpoints: one Parquet file per finished chunk, written atomically, with a checksum of its contents.

A chunk file holds one row per (replicate, estimator): the fit-level columns and, for every parameter ``p``,
the columns ``estimate|p``, ``se|p``, ``ci_lower|p``, ``ci_upper|p``, ``df|p`` and ``reported|p`` (the fit
listed the parameter: NaN then means "not estimable", not "not an output of this estimator"). Its key-value metadata
carries the cell, the replicate range, the estimators, the parameters, the cell's fingerprint and a SHA-256
of all of that and of the column data. A file whose checksum fails, whose name disagrees with its metadata,
or whose rows disagree with its metadata is detected (and recomputed by the runner, with one line naming it)
instead of being read as data or placed where its metadata says.
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

from simstudy.engine.chunk import VALUES, ChunkResult
from simstudy.engine.store import atomic_path

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


#: Checkpoint format: 2 puts the metadata under the checksum and checks it against the file name.
FORMAT = 2


def _checksum(cols: dict[str, np.ndarray], meta: dict | None = None) -> str:
    """SHA-256 of the metadata (without the checksum itself) and the columns' names, types and values
    (independent of Parquet's own layout)."""
    h = hashlib.sha256()
    if meta is not None:
        h.update(json.dumps({k: v for k, v in meta.items() if k != "checksum"}, sort_keys=True).encode() + b"\0")
    for name, values in cols.items():
        h.update(name.encode() + b"\0")
        if values.dtype.kind in "OUS":
            h.update("\x1f".join(map(str, values)).encode())
        else:
            h.update(values.dtype.str.encode() + np.ascontiguousarray(values).tobytes())
    return h.hexdigest()


def write_chunk(directory: Path, key: str, fingerprint: str, result: ChunkResult) -> Path:
    """Write one chunk's results atomically; returns the file's path.

    The metadata (cell key, replicate range, estimators, parameters, fingerprint) is covered by the
    checksum together with the data, so neither can change without the file failing its check.
    """
    n, n_m = result.status.shape
    cols: dict[str, np.ndarray] = {
        "rep": np.repeat(np.arange(result.start, result.start + n, dtype=np.int64), n_m),
        "estimator": np.tile(np.array(result.estimators, dtype=object), n),
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
        "format": FORMAT, "start": result.start, "stop": result.start + n, "key": key, "fingerprint": fingerprint,
        "estimators": list(result.estimators), "params": list(result.params),
    }
    meta["checksum"] = _checksum(cols, meta)
    table = table.replace_schema_metadata({"simstudy": json.dumps(meta)})
    path = chunk_path(directory, key, result.start, result.start + n)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return path


def read_chunk(path: Path) -> tuple[ChunkResult, dict]:
    """Read a chunk file back and verify it.

    Raises :class:`CorruptChunk` (with the file's name and what is wrong) if it is unreadable, fails its
    checksum (data or metadata), was written by an older format whose metadata is not under the checksum,
    its name and metadata disagree on the cell or the replicates, or its rows disagree with its metadata.
    The returned result's ``cell_index`` is -1: the caller places it by the cell key.
    """
    try:
        table = pq.read_table(path)
        meta = json.loads(table.schema.metadata[b"simstudy"])
    except Exception as exc:  # truncated, not parquet, no metadata
        raise CorruptChunk(f"{path.name}: unreadable ({type(exc).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CorruptChunk(f"{path.name}: written by an older simstudy (its metadata is not checksummed)")
    col = {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
    if _checksum(col, meta) != meta.get("checksum"):
        raise CorruptChunk(f"{path.name}: checksum mismatch (data or metadata changed)")
    named = _NAME.match(path.name)
    try:
        start, stop, estimators, params = int(meta["start"]), int(meta["stop"]), tuple(meta["estimators"]), \
            tuple(meta["params"])
        if named is None or (named["key"], int(named["start"]), int(named["stop"])) != (meta["key"], start, stop):
            raise CorruptChunk(f"{path.name}: its name and its metadata disagree on the cell or the replicates "
                               f"(metadata: cell {meta['key']}, replicates {start}-{stop - 1})")
        n, n_m = stop - start, len(estimators)
        if n < 1 or n_m < 1 or table.num_rows != n * n_m:
            raise CorruptChunk(f"{path.name}: {table.num_rows} rows, but its metadata says {n} replicates x "
                               f"{n_m} estimators")
        if not (np.array_equal(col["rep"], np.repeat(np.arange(start, stop), n_m))
                and list(col["estimator"][:n_m]) == list(estimators)):
            raise CorruptChunk(f"{path.name}: its rows are not replicates {start}-{stop - 1} of "
                               f"{', '.join(estimators)}")
        values = {
            v: np.stack([col[f"{v}|{p}"].reshape(n, n_m) for p in params], axis=-1) if params
            else np.empty((n, n_m, 0))
            for v in VALUES
        }
        reported = (np.stack([col[f"reported|{p}"].reshape(n, n_m) for p in params], axis=-1).astype(bool)
                    if params and all(f"reported|{p}" in col for p in params) else None)
        result = ChunkResult(
            cell_index=-1, start=start, estimators=estimators, params=params, values=values,
            status=col["status"].reshape(n, n_m).astype(np.int8),
            n_warnings=col["n_warnings"].reshape(n, n_m).astype(np.int32),
            message=col["message"].astype(str).reshape(n, n_m),
            fit_seconds=col["fit_seconds"].reshape(n, n_m),
            generate_seconds=col["generate_seconds"].reshape(n, n_m)[:, 0].copy(), reported=reported,
        )
    except CorruptChunk:
        raise
    except Exception as exc:  # a column or key that the metadata names is not there, a wrong shape
        raise CorruptChunk(f"{path.name}: its columns do not match its metadata ({type(exc).__name__}: "
                           f"{exc})".splitlines()[0]) from None
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
    """A cell key (:func:`simstudy.engine.rng.cell_key`) as 32 hex digits, for file names."""
    return "".join(f"{k:08x}" for k in key)
