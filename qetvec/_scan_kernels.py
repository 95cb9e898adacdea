"""Numba kernels of the ADC scan: lookup-table building and the multithreaded top-k scan.

The Python layer (`qetvec.adc`) plans lookup units, shapes the work into (block, query)
entries and validates; these loops only compute. Bit order as in `qetvec._kernels`.
Small batches run these on one thread (`qetvec.metric.serial_if`); one query runs the
serial kernels of `qetvec._one_query_kernels`, built from the inline steps here.
"""
from __future__ import annotations

import numba
import numpy as np

from qetvec._kernels import read_bits


@numba.njit(cache=True, inline="always")
def ip_table(row, query, coef, table_off, ksub, n_patterns, n_pos, src_ptr, src, book_ptr, book):
    """Fill row (table_size,) float32 with coef * <permuted query, codeword> for one query
    (d,) float32.

    For unit u, pattern p < n_patterns[u] and codeword c < ksub[u], entry
    table_off[u] + p * ksub[u] + c is coef * sum_j query[src[s + p * n_pos[u] + j]] *
    book[b + j * ksub[u] + c], with s = src_ptr[u], b = book_ptr[u], j < n_pos[u] (summed
    in that order): each unit's book is stored position-major, (n_pos, ksub), so the loop
    over codewords is contiguous and vectorizes (over slices: LLVM then sees two arrays).
    src int64 and book float32 are the units' flat arrays."""
    for u in range(table_off.shape[0]):
        npos, ks = n_pos[u], ksub[u]
        for p in range(n_patterns[u]):
            out = row[table_off[u] + p * ks:table_off[u] + (p + 1) * ks]
            out[:] = 0.0
            for j in range(npos):
                qv = query[src[src_ptr[u] + p * npos + j]]
                codewords = book[book_ptr[u] + j * ks:book_ptr[u] + (j + 1) * ks]
                for c in range(ks):
                    out[c] += qv * codewords[c]
            for c in range(ks):
                out[c] *= coef


@numba.njit(cache=True, parallel=True)
def ip_tables(queries, coef, table_off, ksub, n_patterns, n_pos, src_ptr, src, book_ptr, book, table_size):
    """`ip_table` of every query: (nq, table_size) float32 for queries (nq, d) float32."""
    out = np.empty((queries.shape[0], table_size), dtype=np.float32)
    for i in numba.prange(queries.shape[0]):
        ip_table(out[i], queries[i], coef, table_off, ksub, n_patterns, n_pos, src_ptr, src, book_ptr, book)
    return out


@numba.njit(cache=True, inline="always")
def read_f32(codes, row, offset):
    """The little-endian float32 stored in codes[row, offset:offset + 4]."""
    bits = np.uint32(np.uint32(codes[row, offset]) | (np.uint32(codes[row, offset + 1]) << 8)
                     | (np.uint32(codes[row, offset + 2]) << 16) | (np.uint32(codes[row, offset + 3]) << 24))
    return bits.view(np.float32)  # a scalar's bits (an array here would be allocated per row)


@numba.njit(cache=True, inline="always")
def ranks_after(d1, i1, d2, i2):
    """(score d1, row i1) ranks after (d2, i2): a larger score, or an equal score and a
    larger row. Heaps and sorts use this total order, so a top-k is one set in one order
    whatever the scan order and thread count (ties go to the smaller row, as FAISS's heaps
    break them by id)."""
    return d1 > d2 or (d1 == d2 and i1 > i2)


@numba.njit(cache=True, inline="always")
def _sift_down(dist, ids, n, value, ident):
    """Put (value, ident) at the root of the max-heap (dist[:n], ids[:n]) and sift it down."""
    i = 0
    while True:
        left = 2 * i + 1
        if left >= n:
            break
        child = left
        if left + 1 < n and ranks_after(dist[left + 1], ids[left + 1], dist[left], ids[left]):
            child = left + 1
        if not ranks_after(dist[child], ids[child], value, ident):
            break
        dist[i] = dist[child]
        ids[i] = ids[child]
        i = child
    dist[i] = value
    ids[i] = ident


@numba.njit(cache=True)
def heap_replace_top(dist, ids, value, ident):
    """Replace the root of the max-heap (dist, ids) by (value, ident) and sift it down (a
    call of its own: inlined, its loop slows the scan loops that rarely reach it)."""
    _sift_down(dist, ids, dist.shape[0], value, ident)


@numba.njit(cache=True, inline="always")
def heap_offer(dist, ids, value, ident):
    """Keep (value, ident) in the max-heap (dist, ids) of the k best if it ranks before
    the worst (its root), which it replaces."""
    if ranks_after(dist[0], ids[0], value, ident):
        heap_replace_top(dist, ids, value, ident)


@numba.njit(cache=True, inline="always")
def heap_sort(dist, ids):
    """Sort the max-heap (dist, ids) in place, best first (FAISS's heap_reorder)."""
    for end in range(dist.shape[0] - 1, 0, -1):
        value, ident = dist[end], ids[end]
        dist[end], ids[end] = dist[0], ids[0]
        _sift_down(dist, ids, end, value, ident)


@numba.njit(cache=True, inline="always")
def table_index(codes, row, u, code_bit, code_width, ksub, table_off, run_ptr, run_start, run_len,
                run_shift):
    """Table entry of lookup unit u for row `row` of codes: its swap pattern and group code."""
    code = read_bits(codes, row, code_bit[u], code_width[u])
    pattern = np.int64(0)
    for t in range(run_ptr[u], run_ptr[u + 1]):
        pattern |= read_bits(codes, row, run_start[t], run_len[t]) << run_shift[t]
    return table_off[u] + pattern * ksub[u] + code


@numba.njit(cache=True, parallel=True)
def fill_index(codes, out, code_bit, code_width, ksub, table_off, run_ptr, run_start, run_len, run_shift):
    """out[r, u] = table entry of lookup unit u for row r of codes (n, w) uint8; out (n, U)
    uint16 or int32, filled in place."""
    for r in numba.prange(codes.shape[0]):
        for u in range(code_bit.shape[0]):
            out[r, u] = table_index(codes, r, u, code_bit, code_width, ksub, table_off, run_ptr,
                                    run_start, run_len, run_shift)


@numba.njit(cache=True, parallel=True)
def row_terms(index, tables, table_of_row):
    """sum_u tables[table_of_row[r], index[r, u]] (n,) float32 for unpacked rows index (n, U);
    tables (L, table_size) float32, table_of_row (n,) int64."""
    n = index.shape[0]
    out = np.empty(n, dtype=np.float32)
    for r in numba.prange(n):
        s = np.float32(0.0)
        for u in range(index.shape[1]):
            s += tables[table_of_row[r], index[r, u]]
        out[r] = s
    return out


@numba.njit(cache=True, inline="always")
def _empty_heaps(n_threads, nq, k):
    """Heaps (D (n_threads, nq, k) float32 +inf, rows int64 -1), filled by a plain (serial)
    loop: in a parallel kernel np.full would be a parfor, a parallel region of its own."""
    heap_d = np.empty((n_threads, nq, k), dtype=np.float32)
    heap_i = np.empty((n_threads, nq, k), dtype=np.int64)
    flat_d, flat_i = heap_d.reshape(-1), heap_i.reshape(-1)
    for t in range(flat_d.shape[0]):
        flat_d[t], flat_i[t] = np.inf, -1
    return heap_d, heap_i


@numba.njit(cache=True, inline="always")
def list_bias(query, centroid, l2):
    """||q - c||^2 (l2) or -<q, c> (inner product) of a query and a centroid (d,) float32."""
    out = np.float32(0.0)
    for j in range(query.shape[0]):
        if l2:
            diff = query[j] - centroid[j]
            out += diff * diff
        else:
            out -= query[j] * centroid[j]
    return out


@numba.njit(cache=True, inline="always")
def _scan_rows(hd, hi, first, bias, row_term, index, table):
    """Offer rows first + r of one block to the heap (hd, hi) of one query, row r scoring
    bias + row_term[r] + sum_u table[index[r, u]] (index (nrows, U), row_term (nrows,)),
    summed in that order. Four rows at a time: four independent sums keep the loads busy
    where one waits on each addition (`benchmarks/bench_decode_rule.py`, MiniLM 128x6: 0.077 s
    against 0.134 s with one sum)."""
    n = index.shape[0]
    quads = n - n % 4
    for r in range(0, quads, 4):
        s0, s1, s2, s3 = bias + row_term[r], bias + row_term[r + 1], bias + row_term[r + 2], bias + row_term[r + 3]
        for u in range(index.shape[1]):
            s0 += table[index[r, u]]
            s1 += table[index[r + 1, u]]
            s2 += table[index[r + 2, u]]
            s3 += table[index[r + 3, u]]
        heap_offer(hd, hi, s0, first + r)
        heap_offer(hd, hi, s1, first + r + 1)
        heap_offer(hd, hi, s2, first + r + 2)
        heap_offer(hd, hi, s3, first + r + 3)
    for r in range(quads, n):
        s = bias + row_term[r]
        for u in range(index.shape[1]):
            s += table[index[r, u]]
        heap_offer(hd, hi, s, first + r)


@numba.njit(cache=True, parallel=True)
def scan_blocks(codes, term_offset, queries, query_tables, list_tables, centroids, l2,
                code_bit, code_width, ksub, table_off, run_ptr, run_start, run_len, run_shift,
                block_first, block_rows, block_list, block_table, entry_start, entry_end, entry_query,
                k, n_threads):
    """Per-thread top-k heaps of a scan over (block, query) entries.

    Block b is rows block_first[b] .. + block_rows[b] of codes (capacity, code_size) uint8,
    all in list l = block_list[b]; it is scanned for entries entry_start[b] <= e < entry_end[b].
    Entry e scores every row of the block for query i = entry_query[e] as

        bias + row term + sum_u table[index_u(row)],  table = query_tables[i] + list_tables[t]

    with t = block_table[b], bias = ||q_i - c_l||^2 (l2) or -<q_i, c_l> (inner product),
    c_l = centroids[l] (L, d) float32, and the row term the float32 at byte term_offset of
    the row (term_offset < 0: none). Each row's table indexes are unpacked once per block.

    Returns heaps (D (n_threads, nq, k) float32, rows (n_threads, nq, k) int64), unsorted,
    +inf / -1 in unused slots; `merge_heaps` makes the final top-k."""
    nq, table_size = query_tables.shape
    n_units = code_bit.shape[0]
    heap_d, heap_i = _empty_heaps(n_threads, nq, k)
    for b in numba.prange(block_first.shape[0]):
        tid = numba.get_thread_id()
        first, nrows, lst, tab = block_first[b], block_rows[b], block_list[b], block_table[b]
        index = np.empty((nrows, n_units), dtype=np.int32)  # table entry of each lookup
        row_term = np.zeros(nrows, dtype=np.float32)
        for r in range(nrows):
            row = first + r
            for u in range(n_units):
                index[r, u] = table_index(codes, row, u, code_bit, code_width, ksub, table_off, run_ptr,
                                          run_start, run_len, run_shift)
            if term_offset >= 0:
                row_term[r] = read_f32(codes, row, term_offset)
        table = np.empty(table_size, dtype=np.float32)
        for e in range(entry_start[b], entry_end[b]):
            qi = entry_query[e]
            for t in range(table_size):
                table[t] = query_tables[qi, t] + list_tables[tab, t]
            _scan_rows(heap_d[tid, qi], heap_i[tid, qi], first, list_bias(queries[qi], centroids[lst], l2),
                       row_term, index, table)
    return heap_d, heap_i


@numba.njit(cache=True, parallel=True)
def scan_indexed(index, terms, queries, query_tables, centroids, l2, list_start, list_size, probes, k):
    """Top-k heaps of queries over rows unpacked ahead (`fill_index`), one query per thread
    at a time: query i scans the lists probes[i] (-1: none), row r of list l scoring

        bias + terms[r] + sum_u query_tables[i, index[r, u]]

    with bias as in `scan_blocks` (centroids (L, d), or one row of zeros: list 0 only),
    terms (capacity,) float32 holding the per-list part (`qetvec.adc.row_terms`), index
    (capacity, U) uint16 / int32. The query's table stays in cache over all its lists.

    Returns heaps (D (1, nq, k) float32, rows (1, nq, k) int64) for `merge_heaps`."""
    nq = queries.shape[0]
    heap_d, heap_i = _empty_heaps(1, nq, k)
    for qi in numba.prange(nq):
        for p in range(probes.shape[1]):
            lst = probes[qi, p]
            if lst < 0:
                continue
            first = list_start[lst]
            last = first + list_size[lst]
            bias = list_bias(queries[qi], centroids[min(lst, centroids.shape[0] - 1)], l2)
            _scan_rows(heap_d[0, qi], heap_i[0, qi], first, bias, terms[first:last], index[first:last],
                       query_tables[qi])
    return heap_d, heap_i


@numba.njit(cache=True, inline="always")
def _decode_row(out, index, row, table_off, ksub, n_pos, src_ptr, src, book_ptr, book):
    """out (d,) = the residual of an unpacked row (index (n, U) from `fill_index`): entry
    table_off[u] + p * ksub[u] + c of unit u puts codeword c's values book[b + j * ksub[u]
    + c] (position-major books, as `ip_table`) at columns src[s + p * n_pos[u] + j]
    (b = book_ptr[u], s = src_ptr[u]), summed over stages: the vector whose inner products
    the unit tables add up."""
    out[:] = 0.0
    for u in range(index.shape[1]):
        v = np.int64(index[row, u]) - table_off[u]
        p, c = v // ksub[u], v % ksub[u]
        npos = n_pos[u]
        for j in range(npos):
            out[src[src_ptr[u] + p * npos + j]] += book[book_ptr[u] + j * ksub[u] + c]


@numba.njit(cache=True, parallel=True)
def scan_decoded(index, terms, queries, centroids, l2, coef, table_off, ksub, n_pos, src_ptr, src,
                 book_ptr, book, block_first, block_rows, block_list, entry_start, entry_end,
                 entry_query, k, n_threads):
    """`scan_indexed`'s scores by inner products, over the blocks and entries of `scan_blocks`:
    the rows of a block are decoded once (`_decode_row`, one column per row), then each of
    the block's queries scores them all (rows innermost: vectorized) as

        bias + terms[r] + coef * <q_i, r_hat_r>,  coef = -2 (L2) or -1 (inner product).

    Returns per-thread heaps (D (n_threads, nq, k), rows) for `merge_heaps`."""
    nq, d = queries.shape
    heap_d, heap_i = _empty_heaps(n_threads, nq, k)
    for b in numba.prange(block_first.shape[0]):
        tid = numba.get_thread_id()
        first, lst = block_first[b], min(block_list[b], centroids.shape[0] - 1)
        nrows = block_rows[b]
        xt = np.empty((d, nrows), dtype=np.float32)  # the block's residuals, one per column
        x = np.empty(d, dtype=np.float32)
        for r in range(nrows):
            _decode_row(x, index, first + r, table_off, ksub, n_pos, src_ptr, src, book_ptr, book)
            xt[:, r] = x
        score = np.empty(nrows, dtype=np.float32)
        for e in range(entry_start[b], entry_end[b]):
            qi = entry_query[e]
            bias = list_bias(queries[qi], centroids[lst], l2)
            score[:] = 0.0
            for j in range(d):  # rows innermost: contiguous, vectorized
                w = coef * queries[qi, j]
                for r in range(nrows):
                    score[r] += w * xt[j, r]
            hd, hi = heap_d[tid, qi], heap_i[tid, qi]
            for r in range(nrows):
                heap_offer(hd, hi, bias + terms[first + r] + score[r], first + r)
    return heap_d, heap_i


@numba.njit(cache=True)
def plan_blocks(list_start, list_size, probes, block_rows, n_threads):
    """The scan's work as blocks of at most `block_rows` rows of one list, each with the
    entries (queries) that scan it, dealt for `n_threads` threads: numba splits a prange
    into n_threads contiguous ranges of equal count, so the blocks, largest first, are dealt
    round-robin into those ranges (sorted by work alone, the first range got ~99% of it).

    list_start, list_size (L,) int64: the arena's lists; probes (nq, P) int64, -1 for none.
    Returns block_first, block_rows, block_list (B,) int64 and entry_start, entry_end (B,)
    int64 into entry_query (E,) int64: the queries probing each non-empty list, ascending,
    list after list. O(nq * P + L): serial, for the per-call cost of small batches."""
    nq, nprobe = probes.shape
    nlist = list_size.shape[0]
    first = np.zeros(nlist + 1, np.int64)  # list l's entries are first[l] .. first[l + 1] - 1
    for i in range(nq):
        for p in range(nprobe):
            lst = probes[i, p]
            if lst >= 0 and list_size[lst] > 0:
                first[lst + 1] += 1
    n_blocks = 0
    for lst in range(nlist):
        if first[lst + 1] > 0:
            n_blocks += (list_size[lst] + block_rows - 1) // block_rows
        first[lst + 1] += first[lst]
    entry_query = np.empty(first[nlist], np.int64)
    fill = first[:nlist].copy()
    for i in range(nq):
        for p in range(nprobe):
            lst = probes[i, p]
            if lst >= 0 and list_size[lst] > 0:
                entry_query[fill[lst]] = i
                fill[lst] += 1
    block_first = np.empty(n_blocks, np.int64)
    rows = np.empty(n_blocks, np.int64)
    block_list = np.empty(n_blocks, np.int64)
    entry_start = np.empty(n_blocks, np.int64)
    entry_end = np.empty(n_blocks, np.int64)
    b = 0
    for lst in range(nlist):
        if first[lst + 1] == first[lst]:
            continue
        for a in range(0, list_size[lst], block_rows):
            block_first[b] = list_start[lst] + a
            rows[b] = min(block_rows, list_size[lst] - a)
            block_list[b] = lst
            entry_start[b], entry_end[b] = first[lst], first[lst + 1]
            b += 1
    largest_first = np.argsort(-rows * (entry_end - entry_start), kind="mergesort")  # stable
    order = np.empty(n_blocks, np.int64)
    at = 0
    for t in range(n_threads):  # range t: the t-th, (t + n_threads)-th, ... largest blocks
        for i in range(t, n_blocks, n_threads):
            order[at] = largest_first[i]
            at += 1
    return (block_first[order], rows[order], block_list[order], entry_start[order], entry_end[order],
            entry_query)


@numba.njit(cache=True, parallel=True)
def merge_heaps(heap_d, heap_i):
    """Top-k per query (D (nq, k) float32 ascending, rows (nq, k) int64, -1 padded) from
    the per-thread heaps (n_threads, nq, k) of `scan_blocks`."""
    n_threads, nq, k = heap_d.shape
    out_d = np.empty((nq, k), dtype=np.float32)
    out_i = np.empty((nq, k), dtype=np.int64)
    for q in numba.prange(nq):
        hd, hi = heap_d[0, q].copy(), heap_i[0, q].copy()
        for t in range(1, n_threads):
            for j in range(k):
                if heap_i[t, q, j] >= 0:
                    heap_offer(hd, hi, heap_d[t, q, j], heap_i[t, q, j])
        heap_sort(hd, hi)
        out_d[q], out_i[q] = hd, hi
    return out_d, out_i


@numba.njit(cache=True, inline="always")
def rerank_query(out_d, out_i, query, vectors, rows, inner_product):
    """Exact re-ranking of one query (d,) float32: out_d, out_i (k,) (filled) get the k
    best of the candidates rows (c,) int64 (rows of vectors (n, d) float32, -1 for none),
    ascending: the squared L2 distance or -<q, x>, and the row, -1 padded."""
    out_d[:] = np.inf
    out_i[:] = -1
    for j in range(rows.shape[0]):
        r = rows[j]
        if r >= 0:
            heap_offer(out_d, out_i, exact_score(query, vectors[r], inner_product), r)
    heap_sort(out_d, out_i)


@numba.njit(cache=True, fastmath={"reassoc", "contract"})
def exact_score(query, vector, inner_product):
    """Squared L2 distance, or -<q, x>, of query and vector (d,) float32, summed in SIMD
    lanes, as FAISS sums them (reassociated: one running sum cannot be vectorized)."""
    s = np.float32(0.0)
    if inner_product:
        for t in range(query.shape[0]):
            s -= query[t] * vector[t]
    else:
        for t in range(query.shape[0]):
            diff = query[t] - vector[t]
            s += diff * diff
    return s


@numba.njit(cache=True, parallel=True)
def rerank(queries, vectors, rows, k, inner_product):
    """`rerank_query` of every query (nq, d) float32 over its candidates rows (nq, c) int64:
    (D (nq, k) float32 ascending, rows (nq, k) int64, -1 padded)."""
    nq = queries.shape[0]
    out_d = np.empty((nq, k), dtype=np.float32)
    out_i = np.empty((nq, k), dtype=np.int64)
    for q in numba.prange(nq):
        rerank_query(out_d[q], out_i[q], queries[q], vectors, rows[q], inner_product)
    return out_d, out_i
