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


# -- the same Generators, cheaper -----------------------------------------------------------------------------
# ``replicate_rng`` costs ~10 us, most of it in SeedSequence's mixing of the seed and the five spawn-key words;
# only the last word (the replicate) differs between the replicates of a cell. ``ReplicateRngs`` mixes the
# seed and the cell's key once (numpy's own SeedSequence) and the replicate words of a whole chunk at once
# (numpy uint32 arithmetic: SeedSequence's hashmix/mix, then its generate_state), and hands PCG64 the
# resulting words through a stand-in seed sequence. The Generators are the same, bit for bit (checked
# against numpy's SeedSequence for the chunk's first replicate: any difference and it falls back to
# ``replicate_rng``); ``rng.spawn``, ``bit_generator.seed_seq`` and its attributes behave as numpy's.

_M32 = 0xFFFFFFFF
_INIT_A, _MULT_A, _INIT_B, _MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R = 0xCA01F9DD, 0x4973F715
_POOL = 4


def _u32_words(value: int) -> int:
    """How many uint32 words numpy's SeedSequence makes of a non-negative integer."""
    return max(1, -(-int(value).bit_length() // 32))


def _replicate_states(seed: int, key: tuple[int, ...], reps: np.ndarray) -> np.ndarray:
    """PCG64's seeding words ``SeedSequence(seed, spawn_key=(*key, rep)).generate_state(4, uint64)`` for every
    ``rep`` (each below 2**32), shape (len(reps), 4)."""
    prefix = np.random.SeedSequence(seed, spawn_key=key)
    length = max(_u32_words(seed), _POOL) + sum(_u32_words(k) for k in key)
    hash_a = _INIT_A * pow(_MULT_A, 4 * _POOL + 4 * (length - _POOL), 1 << 32) & _M32  # after the prefix's hashmixes
    word = np.asarray(reps, dtype=np.uint32)
    shift = np.uint32(16)
    pool = [np.full(word.shape, v, np.uint32) for v in prefix.pool]
    out = np.empty((word.shape[0], 2 * _POOL), np.uint32)
    with np.errstate(over="ignore"):
        for i in range(_POOL):  # mix the replicate's word into every pool word
            value = word ^ np.uint32(hash_a)  # hashmix
            hash_a = hash_a * _MULT_A & _M32
            value *= np.uint32(hash_a)
            value ^= value >> shift
            mixed = np.uint32(_MIX_L) * pool[i] - np.uint32(_MIX_R) * value
            mixed ^= mixed >> shift
            pool[i] = mixed
        hash_b = _INIT_B
        for j in range(2 * _POOL):  # generate_state(8 words of 32 bits)
            value = pool[j % _POOL] ^ np.uint32(hash_b)
            hash_b = hash_b * _MULT_B & _M32
            value *= np.uint32(hash_b)
            value ^= value >> shift
            out[:, j] = value
    return out.astype("<u4").view("<u8").astype(np.uint64)


class _PresetSeedSequence(np.random.bit_generator.ISpawnableSeedSequence):
    """Stands in for ``SeedSequence(seed, spawn_key=spawn_key)`` whose PCG64 words are already known; anything
    else (other states, ``spawn``, ``pool``, ``entropy`` ...) is asked of that SeedSequence, made on first use."""

    __slots__ = ("_words", "_seed", "_spawn_key", "_real")

    def __init__(self, words: np.ndarray, seed: int, spawn_key: tuple[int, ...]) -> None:
        self._words = words
        self._seed = seed
        self._spawn_key = spawn_key
        self._real: np.random.SeedSequence | None = None

    def _sequence(self) -> np.random.SeedSequence:
        if self._real is None:
            self._real = np.random.SeedSequence(self._seed, spawn_key=self._spawn_key)
        return self._real

    def generate_state(self, n_words: int, dtype: Any = np.uint32) -> np.ndarray:
        if n_words == _POOL and np.dtype(dtype) == np.uint64 and self._real is None:
            return self._words.copy()
        return self._sequence().generate_state(n_words, dtype)

    def spawn(self, n_children: int) -> list[np.random.SeedSequence]:
        return self._sequence().spawn(n_children)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._sequence(), name)

    def __reduce__(self) -> Any:  # pickles as the SeedSequence it stands for
        return self._sequence().__reduce__()

    def __repr__(self) -> str:
        return repr(self._sequence())


class ReplicateRngs:
    """The Generators of replicates ``start .. stop - 1`` of one cell: ``rngs(rep)`` equals
    ``replicate_rng(seed, key, rep)`` bit for bit, at about a tenth of its cost."""

    def __init__(self, seed: int, key: tuple[int, ...], start: int, stop: int) -> None:
        self.seed, self.key, self.start = seed, tuple(key), start
        self._words: np.ndarray | None = None
        if 0 < start < stop <= _M32 + 1 and all(0 <= k <= _M32 for k in self.key):
            try:
                words = _replicate_states(seed, self.key, np.arange(start, stop))
            except Exception:  # pragma: no cover - a numpy without these internals
                words = None
            check = np.random.SeedSequence(seed, spawn_key=(*self.key, start)).generate_state(_POOL, np.uint64)
            if words is not None and np.array_equal(words[0], check):
                self._words = words

    def __call__(self, rep: int) -> np.random.Generator:
        if self._words is None:
            return replicate_rng(self.seed, self.key, rep)
        preset = _PresetSeedSequence(self._words[rep - self.start], self.seed, (*self.key, rep))
        return np.random.Generator(np.random.PCG64(preset))
