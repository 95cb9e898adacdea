"""Numba kernels. The Python layer validates and shapes; these loops only compute.

Bit order everywhere: bit t of a bit stream is bit (t % 8) of byte t // 8 (LSB first), and
a field of width w holds its value's bit b at stream bit (offset + b).
"""
from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def pack_fields(values, offsets, widths, row_stride_bits, out):
    """Write values[i, j] (n, f) int64 into the zeroed bit stream `out` (uint8, 1-D) at bit
    i * row_stride_bits + offsets[j], widths[j] bits each.

    Serial on purpose: with a stride that is not a multiple of 8 (matrix mode) two rows
    share a byte, and parallel writers would race."""
    n, f = values.shape
    for i in range(n):
        base = i * row_stride_bits
        for j in range(f):
            v = values[i, j]
            w = widths[j]
            pos = base + offsets[j]
            while w > 0:
                byte = pos >> 3
                shift = pos & 7
                take = min(8 - shift, w)
                out[byte] |= np.uint8(((v & ((1 << take) - 1)) << shift) & 0xFF)
                v >>= take
                pos += take
                w -= take


@numba.njit(cache=True, parallel=True)
def unpack_fields(stream, offsets, widths, row_stride_bits, n):
    """Inverse of `pack_fields`: return values (n, f) int64 read from the uint8 stream."""
    f = offsets.shape[0]
    values = np.empty((n, f), dtype=np.int64)
    for i in numba.prange(n):
        base = i * row_stride_bits
        for j in range(f):
            w = widths[j]
            pos = base + offsets[j]
            v = 0
            got = 0
            while got < w:
                byte = pos >> 3
                shift = pos & 7
                take = min(8 - shift, w - got)
                v |= ((np.int64(stream[byte]) >> shift) & ((1 << take) - 1)) << got
                got += take
                pos += take
            values[i, j] = v
    return values


@numba.njit(cache=True, inline="always")
def _read_bits(codes, row, bit, width):
    """Value of the `width`-bit field at bit offset `bit` of codes[row] (LSB first)."""
    byte = bit >> 3
    shift = bit & 7
    need = (shift + width + 7) >> 3
    v = np.int64(0)
    for t in range(need):
        v |= np.int64(codes[row, byte + t]) << (8 * t)
    return (v >> shift) & ((1 << width) - 1)


@numba.njit(cache=True, inline="always")
def _row_score(codes, row, table, code_bit, code_width, ksub, table_off,
               run_ptr, run_start, run_len, run_shift):
    """Sum over lookup units u of table[table_off[u] + pattern_u * ksub[u] + code_u]."""
    s = 0.0
    for u in range(code_bit.shape[0]):
        code = _read_bits(codes, row, code_bit[u], code_width[u])
        pattern = np.int64(0)
        for r in range(run_ptr[u], run_ptr[u + 1]):
            pattern |= _read_bits(codes, row, run_start[r], run_len[r]) << run_shift[r]
        s += table[table_off[u] + pattern * ksub[u] + code]
    return s


@numba.njit(cache=True, inline="always")
def _extra(extra, coef, row):
    """Per-row term coef * extra[row]; `extra` is empty when the scan has none."""
    return coef * extra[row] if extra.shape[0] > 0 else 0.0


@numba.njit(cache=True, inline="always")
def _heap_push(dist, ids, value, ident):
    """Replace the root of the max-heap (dist, ids) by (value, ident) and sift down."""
    k = dist.shape[0]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= k:
            break
        child = left
        if left + 1 < k and dist[left + 1] > dist[left]:
            child = left + 1
        if dist[child] <= value:
            break
        dist[i] = dist[child]
        ids[i] = ids[child]
        i = child
    dist[i] = value
    ids[i] = ident


@numba.njit(cache=True, parallel=True)
def scan_blocks(codes, extra, extra_coef, tables, code_bit, code_width, ksub, table_off,
                run_ptr, run_start, run_len, run_shift, block_start, block_end,
                entry_ptr, entry_query, entry_bias, k):
    """Top-k scan organised by row blocks, so that unpacking a row's codes is paid once
    per block, not once per query.

    Block b covers rows block_start[b] <= row < block_end[b] and is scanned for entries
    entry_ptr[b] .. entry_ptr[b+1]-1; entry e scores every row of its block for query
    entry_query[e] as entry_bias[e] + extra_coef * extra[row] + sum of table lookups, and
    keeps its k smallest. codes (n, code_size) uint8, extra (n,) or (0,) float32, tables
    (nq, table_size) float32. Returns per entry (D (E, k) float32, rows (E, k) int64),
    unsorted heaps with +inf / -1 in unused slots; `merge_entries` makes the final top-k."""
    n_entries = entry_query.shape[0]
    out_d = np.full((n_entries, k), np.inf, dtype=np.float32)
    out_i = np.full((n_entries, k), -1, dtype=np.int64)
    n_units = code_bit.shape[0]
    for b in numba.prange(block_start.shape[0]):
        first, nrows = block_start[b], block_end[b] - block_start[b]
        index = np.empty((nrows, n_units), dtype=np.int32)  # table entry of each lookup
        row_term = np.zeros(nrows)
        for r in range(nrows):
            row = first + r
            for u in range(n_units):
                code = _read_bits(codes, row, code_bit[u], code_width[u])
                pattern = np.int64(0)
                for t in range(run_ptr[u], run_ptr[u + 1]):
                    pattern |= _read_bits(codes, row, run_start[t], run_len[t]) << run_shift[t]
                index[r, u] = table_off[u] + pattern * ksub[u] + code
            if extra.shape[0] > 0:
                row_term[r] = extra_coef * extra[row]
        for e in range(entry_ptr[b], entry_ptr[b + 1]):
            table = tables[entry_query[e]]
            heap_d, heap_i = out_d[e], out_i[e]
            for r in range(nrows):
                s = entry_bias[e] + row_term[r]
                for u in range(n_units):
                    s += table[index[r, u]]
                if s < heap_d[0]:
                    _heap_push(heap_d, heap_i, s, first + r)
    return out_d, out_i


@numba.njit(cache=True)
def merge_entries(entry_d, entry_i, entry_query, nq, k):
    """Final top-k per query (D (nq, k) float32 ascending, rows (nq, k) int64, -1 padded)
    from the per-entry heaps of `scan_blocks`."""
    heap_d = np.full((nq, k), np.inf, dtype=np.float32)
    heap_i = np.full((nq, k), -1, dtype=np.int64)
    for e in range(entry_query.shape[0]):
        q = entry_query[e]
        for j in range(k):
            if entry_i[e, j] >= 0 and entry_d[e, j] < heap_d[q, 0]:
                _heap_push(heap_d[q], heap_i[q], entry_d[e, j], entry_i[e, j])
    for q in range(nq):
        order = np.argsort(heap_d[q], kind="mergesort")
        heap_d[q] = heap_d[q][order]
        heap_i[q] = heap_i[q][order]
    return heap_d, heap_i


@numba.njit(cache=True, parallel=True)
def scan_all(codes, extra, extra_coef, tables, code_bit, code_width, ksub, table_off,
             run_ptr, run_start, run_len, run_shift, bias):
    """Scores (nq, n) float32 of every row for every query (bias (nq,)); for small n only."""
    nq, n = tables.shape[0], codes.shape[0]
    out = np.empty((nq, n), dtype=np.float32)
    for q in numba.prange(nq):
        for row in range(n):
            out[q, row] = bias[q] + _extra(extra, extra_coef, row) + _row_score(
                codes, row, tables[q], code_bit, code_width, ksub, table_off,
                run_ptr, run_start, run_len, run_shift)
    return out
