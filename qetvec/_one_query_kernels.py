"""Serial numba kernels of a one-query search: the whole ADC search (the query's table,
the scan of its probed lists, the top-k) in one call, and the exact re-ranking.

A batch of one query has nothing to split over threads (FAISS searches it on one thread
too), while each kernel call and each parallel region costs microseconds: these kernels run
on the calling thread, never touch numba's thread pool, and compute every score with the
batch kernels' own steps (`qetvec._scan_kernels`), in the same order, so both paths return
the same bits. Arguments as in `scan_blocks`.
"""
from __future__ import annotations

import numba
import numpy as np

from qetvec._scan_kernels import heap_offer, heap_sort, ip_table, list_bias, read_f32, rerank_query, table_index


@numba.njit(cache=True, inline="always")
def _pq8_layout(code_bit, code_width, ksub, table_off, run_ptr):
    """Unit u reads byte u of the row, has no pattern and its 256 entries start at 256 u
    (product quantization with 8-bit codes, FAISS's PQ layout, over any number of stages)."""
    for u in range(code_bit.shape[0]):
        if code_bit[u] != 8 * u or code_width[u] != 8 or ksub[u] != 256 or table_off[u] != 256 * u \
                or run_ptr[u + 1] != run_ptr[u]:
            return False
    return True


@numba.njit(cache=True, inline="always")
def _row_term(codes, row, term_offset):
    """The row's stored float32 term (||r_hat||^2) at byte term_offset, or 0 (term_offset < 0)."""
    return read_f32(codes, row, term_offset) if term_offset >= 0 else np.float32(0.0)


@numba.njit(cache=True)
def search_one(codes, term_offset, query, query_table, probes, list_tables, probe_table, list_start, list_size, k,
               centroids, l2, coef, code_bit, code_width, ksub, table_off, run_ptr, run_start, run_len,
               run_shift, n_patterns, n_pos, src_ptr, src, book_ptr, book):
    """Top-k of one query (d,) float32 in the codec's space over the lists probes (P,) int64
    (-1: none): (D (1, k) float32 ascending, arena rows (1, k) int64, +inf / -1 padded).

    Row r of list l scores as in `scan_blocks`: bias + row term + sum_u table[index_u(r)],
    table = query_table + list_tables[probe_table[p]] with query_table (table_size,) float32
    coef * IP(query), computed here (`ip_table`) when given empty, bias ||q - c_l||^2
    (l2) or -<q, c_l> with c_l = centroids[min(l, L - 1)] (L, d) float32 (one row of zeros:
    no centroids), the row term the float32 at byte term_offset (< 0: none). In the PQ
    layout (`_pq8_layout`) a row's entries are its bytes, read without unpacking."""
    table_size = list_tables.shape[1]
    n_units = code_bit.shape[0]
    out_d = np.full((1, k), np.inf, dtype=np.float32)
    out_i = np.full((1, k), -1, dtype=np.int64)
    hd, hi = out_d[0], out_i[0]
    if query_table.shape[0] == 0:
        query_table = np.empty(table_size, dtype=np.float32)
        ip_table(query_table, query, coef, table_off, ksub, n_patterns, n_pos, src_ptr, src, book_ptr, book)
    table = np.empty(table_size, dtype=np.float32)
    pq8 = _pq8_layout(code_bit, code_width, ksub, table_off, run_ptr)
    for p in range(probes.shape[0]):
        lst = probes[p]
        if lst < 0 or list_size[lst] == 0:
            continue
        tab = probe_table[p]
        for t in range(table_size):
            table[t] = query_table[t] + list_tables[tab, t]
        bias = list_bias(query, centroids[min(lst, centroids.shape[0] - 1)], l2)
        first = list_start[lst]
        if pq8:
            for r in range(first, first + list_size[lst]):
                row = codes[r]
                s = bias + _row_term(codes, r, term_offset)
                at = 0
                for u in range(n_units):
                    s += table[at + row[u]]
                    at += 256
                heap_offer(hd, hi, s, r)
        else:
            for r in range(first, first + list_size[lst]):
                s = bias + _row_term(codes, r, term_offset)
                for u in range(n_units):
                    s += table[table_index(codes, r, u, code_bit, code_width, ksub, table_off, run_ptr,
                                           run_start, run_len, run_shift)]
                heap_offer(hd, hi, s, r)
    heap_sort(hd, hi)
    return out_d, out_i


@numba.njit(cache=True)
def rerank_one(query, vectors, rows, k, inner_product):
    """`rerank_query` of one query (d,) float32 over its candidates rows (c,) int64: (D (1, k)
    float32 ascending, rows (1, k) int64, -1 padded)."""
    out_d = np.empty((1, k), dtype=np.float32)
    out_i = np.empty((1, k), dtype=np.int64)
    rerank_query(out_d[0], out_i[0], query, vectors, rows, inner_product)
    return out_d, out_i
