"""Beam search over residual stages: better-than-greedy encoding, as FAISS's residual quantizer does.

Greedy encoding gives each stage the code nearest to what the stages before it left. Beam
search keeps, per row, the `beam` best partial encodings (smallest squared error so far)
after every stage: each entry is extended by every stage code among the `beam` best of
each of its groups, and the `beam` best extensions over all entries survive. Groups of a
stage cover disjoint columns, so an extension's error is the sum of its groups' errors and
the best combinations are exact (`_best_extensions`). Beam 1 is greedy encoding.

Distances come from matrix products (||r||^2 - 2 <r, c> + ||c||^2, one product per group
for a block of rows), the selection from a numba kernel. Stages must have no swap tree
(levels 0): a tree would reorder every entry's residual differently.
"""
from __future__ import annotations

from typing import Any, Callable

import numba
import numpy as np

from qetvec.metric import PARALLEL_MIN_ROWS, serial_if

BLOCK_ROWS = 4096  # rows encoded at once (their entries' residuals: BLOCK_ROWS * beam * d floats)
DISTANCE_BYTES = 64 << 20  # distance tables (rows * entries * ksub float32) computed at once


@numba.njit(cache=True, inline="always")
def _insert(err, idx, count, value, item):
    """Insert (value, item) into the ascending arrays err / idx holding `count` entries,
    capped at their length; returns the new count."""
    cap = err.shape[0]
    if value == np.inf or (count == cap and value >= err[cap - 1]):
        return count
    j = min(count, cap - 1)
    while j > 0 and err[j - 1] > value:
        err[j] = err[j - 1]
        idx[j] = idx[j - 1]
        j -= 1
    err[j] = value
    idx[j] = item
    return min(count + 1, cap)


@numba.njit(cache=True, parallel=True)
def _best_extensions(base, top_d, top_c, n_entries, beam):
    """The `beam` best extensions of each row's entries by one stage.

    base (n, E) float32: each entry's error outside this stage's columns (0: groups cover
    every column, the stage's errors are the whole error); top_d / top_c (n, E, m, t): each
    entry's t best codes per group and their squared errors, ascending; n_entries (n,) int64
    entries alive per row (an extension of error inf, a group with fewer than t codes, is never
    kept). Returns (err (n, beam) float32 ascending, parent (n, beam) int64
    entry, codes (n, beam, m) int64, alive (n,) int64)."""
    n, e_max, m, t = top_d.shape
    err = np.full((n, beam), np.inf, np.float32)
    parent = np.zeros((n, beam), np.int64)
    codes = np.zeros((n, beam, m), np.int64)
    alive = np.zeros(n, np.int64)
    for i in numba.prange(n):
        cur_d = np.empty(beam, np.float32)
        cur_c = np.zeros((beam, m), np.int64)
        nxt_d = np.empty(beam, np.float32)
        nxt_k = np.empty(beam, np.int64)
        nxt_c = np.zeros((beam, m), np.int64)
        best_d = np.empty(beam, np.float32)
        best_k = np.empty(beam, np.int64)
        best_c = np.zeros((e_max * beam, m), np.int64)
        found = 0
        for e in range(n_entries[i]):
            count = 1
            cur_d[0] = base[i, e]
            for g in range(m):  # combinations of groups 0..g, best first
                kept = 0
                for a in range(count):
                    for b in range(t):
                        kept = _insert(nxt_d, nxt_k, kept, cur_d[a] + top_d[i, e, g, b], a * t + b)
                for r in range(kept):
                    a, b = nxt_k[r] // t, nxt_k[r] % t
                    nxt_c[r, :g] = cur_c[a, :g]
                    nxt_c[r, g] = top_c[i, e, g, b]
                for r in range(kept):
                    cur_d[r] = nxt_d[r]
                    cur_c[r] = nxt_c[r]
                count = kept
            for r in range(count):
                slot = e * beam + r
                best_c[slot] = cur_c[r]
                found = _insert(best_d, best_k, found, cur_d[r], slot)
        for r in range(found):
            err[i, r] = best_d[r]
            parent[i, r] = best_k[r] // beam
            codes[i, r] = best_c[best_k[r]]
        alive[i] = found
    return err, parent, codes, alive


@numba.njit(cache=True, parallel=True)
def _top_codes(ip, r_norm, c_norm, t):
    """The t codewords nearest to each residual: squared distances r_norm[i] - 2 ip[i, c] +
    c_norm[c] (clipped at 0) from inner products ip (r, k) float32 and squared norms r_norm
    (r,), c_norm (k,); returns (errors (r, t) float32 ascending, codes (r, t) int64), rows
    padded with inf when k < t."""
    r, k = ip.shape
    top_d = np.full((r, t), np.inf, np.float32)
    top_c = np.zeros((r, t), np.int64)
    for i in numba.prange(r):
        count = 0
        for c in range(k):
            dist = max(r_norm[i] - 2 * ip[i, c] + c_norm[c], np.float32(0.0))
            count = _insert(top_d[i], top_c[i], count, dist, c)
    return top_d, top_c


def _group_candidates(residual: np.ndarray, bounds: np.ndarray, books: np.ndarray, ksubs: np.ndarray,
                      t: int) -> tuple[np.ndarray, np.ndarray]:
    """Each entry's t best codes per group: (errors (n, E, m, t) float32 ascending, codes
    (n, E, m, t) int64), for residuals (n, E, d) float32 and one stage's codebooks."""
    n, e, _ = residual.shape
    m = len(bounds) - 1
    top_d = np.empty((n, e, m, t), np.float32)
    top_c = np.empty((n, e, m, t), np.int64)
    for g in range(m):
        a, b, k = bounds[g], bounds[g + 1], int(ksubs[g])
        book = books[g, :k, : b - a]
        r = residual[:, :, a:b].reshape(n * e, b - a)
        with serial_if(len(r) < PARALLEL_MIN_ROWS):
            best_d, best_c = _top_codes(r @ book.T, (r ** 2).sum(1), (book ** 2).sum(1), t)
        top_d[:, :, g], top_c[:, :, g] = best_d.reshape(n, e, t), best_c.reshape(n, e, t)
    return top_d, top_c


def beam_encode(stages: list, y: np.ndarray, beam: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per stage (swap bits (n, 0) bool, codes (n, m) int64) of rows y (n, d) float32 by beam
    search of width `beam` over trained stages (levels 0), BLOCK_ROWS rows at a time."""
    n = len(y)
    out = [np.zeros((n, stage.m), np.int64) for stage in stages]
    for start in range(0, n, BLOCK_ROWS):
        for s, codes in enumerate(search_stages(stages, y[start:start + BLOCK_ROWS], beam)):
            out[s][start:start + len(codes)] = codes
    return [(np.zeros((n, 0), bool), c) for c in out]


def search_stages(stages: list, y: np.ndarray, beam: int,
                  fit: Callable[[Any, np.ndarray], None] | None = None) -> list[np.ndarray]:
    """Codes (n, m_s) of the best beam entry per stage for rows y (n, d) float32. With
    `fit(stage, residuals)`, each stage is first trained on the residuals (r, d) of every
    live entry of every row, as FAISS trains its residual quantizer (memory: n * beam * d
    floats: pass a sample of rows)."""
    n, d = y.shape
    residual = y[:, None, :].copy()  # (n, entries, d)
    alive = np.ones(n, np.int64)
    history: list[np.ndarray] = []  # per stage: codes (n, entries, m_s)
    for stage in stages:
        if stage.levels:
            raise ValueError("beam search needs stages without a swap tree (levels 0)")
        if fit is not None:
            fit(stage, np.ascontiguousarray(residual[np.arange(residual.shape[1]) < alive[:, None]]))
        parent = np.zeros((n, beam), np.int64)
        codes = np.zeros((n, beam, stage.m), np.int64)
        step = max(1, DISTANCE_BYTES // (4 * residual.shape[1] * int(stage.ksubs.max())))
        for a in range(0, n, step):
            top_d, top_c = _group_candidates(residual[a:a + step], stage.bounds, stage.codebooks_,
                                             stage.ksubs, beam)
            with serial_if(len(top_d) < PARALLEL_MIN_ROWS):
                _, parent[a:a + step], codes[a:a + step], alive[a:a + step] = _best_extensions(
                    np.zeros(top_d.shape[:2], np.float32), top_d, top_c, alive[a:a + step], beam)
        rows = np.arange(n)[:, None]
        history = [h[rows, parent] for h in history] + [codes]
        residual = residual[rows, parent] - _decode_entries(stage, codes)
    return [h[:, 0] for h in history]


def _decode_entries(stage: Any, codes: np.ndarray) -> np.ndarray:
    """Codewords (n, E, d) float32 of stage codes (n, E, m) (levels 0)."""
    n, e, m = codes.shape
    out = np.empty((n, e, stage.d), np.float32)
    for g in range(m):
        a, b = stage.bounds[g], stage.bounds[g + 1]
        out[:, :, a:b] = stage.codebooks_[g][codes[:, :, g], : b - a]
    return out
