"""One random Generator per (study seed, cell, replicate).

The spawn key of a replicate is derived from the cell's factor *values* (not the cell's position in the
grid) and the replicate number, so a replicate's data are the same for any number of workers, any chunk
size, any backend, after a resume, and after the grid gains levels or replicates.
"""

from __future__ import annotations

import hashlib
import json
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np


def _canonical(value: Any) -> Any:
    """A JSON-able form in which equal factor values (2 and 2.0, say) look the same."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Real):
        return repr(float(value))
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return str(value)


def cell_key(cell: Mapping[str, Any]) -> tuple[int, ...]:
    """Four 32-bit words identifying a cell by its factor values (order of the factors does not matter)."""
    text = json.dumps({k: _canonical(v) for k, v in sorted(cell.items())}, sort_keys=True)
    digest = hashlib.sha256(text.encode()).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))


def replicate_rng(seed: int, key: tuple[int, ...], rep: int) -> np.random.Generator:
    """The Generator of replicate ``rep`` (1-based) of the cell with key ``key`` under study seed ``seed``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(*key, rep))))
