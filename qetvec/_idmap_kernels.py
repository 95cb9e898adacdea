"""Numba kernels of the id -> row hash (`qetvec.storage.IdMap`): open addressing with
linear probing over two parallel int64 arrays, keys (cap,) and rows (cap,), cap a power
of two. EMPTY (-1) marks a never-used slot, TOMB (-2) a deleted one; stored keys are ids,
which are >= 0 (ids are validated before they get here).
"""
from __future__ import annotations

import numba
import numpy as np

EMPTY = -1
TOMB = -2
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@numba.njit(cache=True, inline="always")
def _slot(key, mask):
    """Home slot of `key`: Fibonacci hashing (multiply, keep the high bits via a fold)."""
    h = np.uint64(key) * _GOLDEN
    return np.int64((h ^ (h >> np.uint64(29))) & np.uint64(mask))


@numba.njit(cache=True, inline="always")
def _find(keys, q):
    """Slot of id q in keys, or -1 if absent (linear probing from its hash slot)."""
    mask = keys.shape[0] - 1
    s = _slot(q, mask)
    while keys[s] != EMPTY:
        if keys[s] == q:
            return s
        s = (s + 1) & mask
    return -1


@numba.njit(cache=True)
def lookup(keys, rows, query):
    """Row (n,) int64 of each id in query (n,) int64, -1 where absent."""
    out = np.full(query.shape[0], -1, dtype=np.int64)
    for i in range(query.shape[0]):
        s = _find(keys, query[i])
        if s >= 0:
            out[i] = rows[s]
    return out


@numba.njit(cache=True)
def insert(keys, rows, new_keys, new_rows):
    """Store new_keys[i] -> new_rows[i]; the keys must be absent (checked by the caller).
    Returns how many tombstones were reused."""
    mask = keys.shape[0] - 1
    reused = 0
    for i in range(new_keys.shape[0]):
        s = _slot(new_keys[i], mask)
        while keys[s] >= 0:
            s = (s + 1) & mask
        reused += keys[s] == TOMB
        keys[s] = new_keys[i]
        rows[s] = new_rows[i]
    return reused


@numba.njit(cache=True)
def update(keys, rows, query, new_rows):
    """Set the row of each present id query[i] to new_rows[i]."""
    for i in range(query.shape[0]):
        s = _find(keys, query[i])
        if s >= 0:
            rows[s] = new_rows[i]


@numba.njit(cache=True)
def delete(keys, query):
    """Turn the slot of each present id in query into a tombstone; returns how many."""
    removed = 0
    for i in range(query.shape[0]):
        s = _find(keys, query[i])
        if s >= 0:
            keys[s] = TOMB
            removed += 1
    return removed


@numba.njit(cache=True)
def ids_of_rows(rows, ids):
    """ids[rows] (nq, k) int64 for arena rows (nq, k) int64, -1 where a row is -1 (padding);
    ids (capacity,) int64 is the arena row -> id column."""
    out = np.empty(rows.shape, dtype=np.int64)
    for i in range(rows.shape[0]):
        for j in range(rows.shape[1]):
            out[i, j] = ids[rows[i, j]] if rows[i, j] >= 0 else -1
    return out
