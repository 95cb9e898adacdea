"""Asymmetric distance computation: the one distance API of flat, IVF and LanceDB search.

`ADCSearcher` owns the metric decomposition, the per-row term and the lookup tables of one
codec (any `qetvec.codec.Codec`); `search_blocks` scans code blocks (inverted lists, or a
flat index as one list) for a batch of queries and returns each query's top k as
(minimized scores, arena rows).

Lookup units (`Codec.lookup_units`). A row's reconstruction is R^T y_hat with y_hat a sum of
unit codewords placed by a pattern read from the code; queries (and list centroids) are
rotated once (`Codec.rotate`) and <q, r_hat> is the sum over units of

    IP(q)[p, c] = sum_{j in unit} (Rq)[src_p(j)] * C[c, j]        SQ[p, c] = sum_{j in unit} C[c, j]**2

both indices read from the packed code. Codecs whose tables would be too large return no
units, and the search decodes rows instead (exact, slower, one warning).

Metric decomposition, row x_hat = c + r_hat in list l with centroid c (c = 0 without one),
every vector in the codec's rotated space (R keeps distances and inner products):

    L2, units disjoint:   ||q - x_hat||^2 = ||q - c||^2 + sum_u [SQ + 2 IP(c) - 2 IP(q)]
    L2, units overlap:    ||q - x_hat||^2 = ||q - c||^2 + sum_u [2 IP(c) - 2 IP(q)] + ||r_hat||^2
    IP:                   -<q, x_hat>     = -<q, c> - sum_u IP(q)

The per-list table (SQ + 2 IP(c), FAISS IVF-PQ's "precomputed table") is shared state
(nlist x table_size float32, built once, up to MAX_LIST_TABLE_BYTES; above, built per
batch for the probed lists) and the per-query table IP(q) is built once per
query, so each (query, list) table costs one addition per entry and is exact for every
pattern. Only L2 over overlapping units (`Codec.per_row_norm`: residual stages) needs a
per-row term: ||r_hat||^2, stored as float32 after the code (4 bytes, counted in
`ADCSearcher.code_size`). A caller that keeps rows in memory (the LanceDB adapter, per table
version) can unpack them ahead (`unpack_index`: 2 bytes per unit and row) and keep the whole
query-independent part as one float per row (`row_terms`: SQ + 2 IP(c) summed over the row's
units, plus ||r_hat||^2): `search_indexed` then neither unpacks bits nor builds a table per
(query, list).
"""
from __future__ import annotations

import warnings
from typing import Callable

import faiss
import numba
import numpy as np

from qetvec import _one_query_kernels, _scan_kernels, faiss_threads
from qetvec.codec import Codec, LookupUnits
from qetvec.metric import PARALLEL_MIN_ROWS, blas_threads, serial_if, use_faiss_thread_count

QUERY_BLOCK_BYTES = 64 << 20  # lookup tables computed for this many bytes of queries at once
ROWS_PER_BLOCK = 16384  # rows unpacked once and shared by all the queries that scan them
MAX_LIST_TABLE_BYTES = 256 << 20  # per-list tables kept for every list up to this size
PARALLEL_MIN_WORK = 2 ** 18  # multiply-adds (tables) or heap slots (merge) below which a step runs serially
# `search_unpacked` scores batches probing each list with at least DECODE_MIN_QUERIES queries
# on average by inner products with decoded rows (`search_decoded`, ~d multiply-adds per row
# and query, vectorized over the queries) when the code has fewer than
# DECODE_MAX_DIMS_PER_UNIT dimensions per lookup unit or tables above DECODE_MIN_TABLE_ENTRIES
# entries (out of L1: each lookup a cache miss); others by table lookups (`search_indexed`,
# U lookups). Measured on 1 thread (`python benchmarks/bench_decode_rule.py`), lookups against
# decoded rows: MiniLM 384-d, ~33 queries per list, 4.43x / 2.19x / 1.78x / 1.13x as fast at
# 16 / 6 / 3 / 4 dimensions per unit (6144 / 16384 / 8192 / 24576 entries); GloVe-50, ~78
# queries per list, 1.22x at 3.1 (4096 entries), 0.86x at 2.0 (6400), 0.34x at 1.9 (51200),
# 0.06x at 1.0 (409600). Below ~8 queries per list lookups were 2-6x faster.
DECODE_MIN_QUERIES = 32
DECODE_MAX_DIMS_PER_UNIT = 2.5
DECODE_MIN_TABLE_ENTRIES = 2 ** 15
# Tables of units over at least this fraction of the dimensions (full-width residual stages)
# are one BLAS product for a batch, where the table kernel streams every codebook once per
# query (20 stages x 256 x 384 at MiniLM 24 B: with the four-row scan and SIMD re-ranking,
# 0.89x -> 1.89x FAISS IVF-PQ's queries/s, `benchmarks/results/minilm-stdlib-ann-speed/`).
WIDE_UNIT_FRACTION = 0.5


def row_term_bytes(codec: Codec, metric: int) -> int:
    """Bytes stored after each code for the per-row term: 4 (float32 ||r_hat||^2) for L2
    over overlapping units (`Codec.per_row_norm`), else 0."""
    return 4 * (metric == faiss.METRIC_L2 and codec.per_row_norm)


class ADCSearcher:
    """Distances of float queries to stored rows of one trained codec under one metric.

    centroids: (nlist, d) float32 list centroids that rows are residuals of (IVF by
    residual), or None. Stored rows are `encode`'s output: uint8 (n, code_size), the codec's
    code followed by the per-row term (see `row_term_bytes`)."""

    def __init__(self, codec: Codec, metric: int = faiss.METRIC_L2,
                 centroids: np.ndarray | None = None):
        self.codec, self.metric = codec, metric
        self.centroids = None if centroids is None else np.ascontiguousarray(centroids, np.float32)
        self.code_centroids = None if centroids is None else codec.rotate(self.centroids)
        self.code_size = codec.code_size + row_term_bytes(codec, metric)
        self.term_offset = codec.code_size if self.code_size > codec.code_size else -1  # byte of the row term
        # what the scan kernels read: the rotated centroids, or one row of zeros without them
        self.scan_centroids = np.zeros((1, codec.d), np.float32) if centroids is None else self.code_centroids
        self.units = codec.lookup_units()
        self._warned = False
        self._books: tuple[np.ndarray, ...] | None = None
        self._wide: tuple[np.ndarray, list[tuple[int, int, np.ndarray]]] | None = None
        self._list_tables: np.ndarray | None = None
        self._one_query_args: tuple | None = None

    @property
    def l2(self) -> bool:
        return self.metric == faiss.METRIC_L2

    def encode(self, x: np.ndarray, lists: np.ndarray | None = None) -> np.ndarray:
        """Stored rows uint8 (n, code_size) for validated vectors x (n, d) float32 in lists
        (n,) int64 (a residual to the centroids is validated again: it can overflow)."""
        codes = self.codec.encode(x if lists is None or self.centroids is None else x - self.centroids[lists])
        if self.code_size == self.codec.code_size:
            return codes
        norms = (self.codec.decode(codes) ** 2).sum(1, dtype=np.float32).astype("<f4")
        return np.concatenate([codes, norms.view(np.uint8).reshape(-1, 4)], axis=1)

    def decode(self, codes: np.ndarray, lists: np.ndarray | None = None) -> np.ndarray:
        """Reconstructions (n, d) float32 of stored rows codes (n, code_size) in lists (n,)."""
        x = self.codec.decode(codes[:, : self.codec.code_size])
        if lists is not None and self.centroids is not None:
            x += self.centroids[lists]
        return x

    def query_tables(self, rotated: np.ndarray) -> np.ndarray:
        """Per-query part of every table (nq, table_size) float32: -2 IP(q) (L2), -IP(q) (IP),
        for queries already in the codec's space (`Codec.rotate`) (nq, d) float32."""
        return self._ip_tables(rotated, -2.0 if self.l2 else -1.0)

    def list_tables(self, lists: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-list part of the tables of `lists` (B,) int64: (tables (L, table_size) float32,
        row (B,) int64 of each list's table). SQ + 2 IP(c) (L2, one stage), 2 IP(c) (L2,
        several stages), 0 (inner product); c = 0 without centroids, one shared table then.
        All nlist tables are built once and kept if they fit MAX_LIST_TABLE_BYTES, else the
        tables of the given lists are built per call. A -1 (no list, which scans skip) gets
        some row."""
        if not (self.l2 and self.centroids is not None):
            if self._list_tables is None:
                self._list_tables = self._with_sq(np.zeros((1, self.units.table_size), np.float32))
            return self._list_tables, np.zeros(len(lists), np.int64)
        if 4 * len(self.centroids) * self.units.table_size > MAX_LIST_TABLE_BYTES:
            used, row = np.unique(lists, return_inverse=True)
            return self._with_sq(self._ip_tables(self.code_centroids[used], 2.0)), row.astype(np.int64)
        if self._list_tables is None:
            self._list_tables = self._with_sq(self._ip_tables(self.code_centroids, 2.0))
        return self._list_tables, lists

    def _with_sq(self, tables: np.ndarray) -> np.ndarray:
        """tables + SQ when the metric is L2 over disjoint units (no per-row term), in place."""
        if self.l2 and not self.codec.per_row_norm:
            tables += self._unit_books()[-1]
        return tables

    def query_block(self) -> int:
        """Queries per batch so that their tables fit QUERY_BLOCK_BYTES."""
        return max(1, QUERY_BLOCK_BYTES // (4 * max(1, self.units.table_size)))

    def one_query_args(self) -> tuple:
        """The constant trailing arguments of `_one_query_kernels.search_one` (centroids
        onwards), built once: one call then passes them without rebuilding anything."""
        if self._one_query_args is None:
            n_patterns, n_pos, src_ptr, src, book_ptr, book, _ = self._unit_books()
            self._one_query_args = (self.scan_centroids, self.l2, np.float32(-2.0 if self.l2 else -1.0),
                                    *self.units.kernel_args(), n_patterns, n_pos, src_ptr, src, book_ptr, book)
        return self._one_query_args

    def _unit_books(self) -> tuple[np.ndarray, ...]:
        if self._books is None:
            self._books = _unit_books(self.units)
        return self._books

    def wide_units(self) -> tuple[np.ndarray, list[tuple[int, int, np.ndarray]]]:
        """`_wide_units` of this codec's units, built once."""
        if self._wide is None:
            self._wide = _wide_units(self.units, self.codec.d)
        return self._wide

    def _ip_tables(self, x: np.ndarray, coef: float) -> np.ndarray:
        """coef * IP(x) (n, table_size) float32 for rotated rows x (n, d) float32: the
        tables of wide units (`_wide_units`) by matrix products, the others by the kernel."""
        _, n_pos, src_ptr, src, book_ptr, book, _ = self._unit_books()
        n_patterns, products = self.wide_units()
        u = self.units
        serial = len(x) * u.table_size * int(n_pos.mean()) < PARALLEL_MIN_WORK
        with serial_if(serial):
            tables = _scan_kernels.ip_tables(x, np.float32(coef), u.table_off, u.ksub, n_patterns, n_pos,
                                             src_ptr, src, book_ptr, book, u.table_size)
            if products:
                scaled = x * np.float32(coef)
                with blas_threads(numba.get_num_threads()):
                    for start, end, weights in products:
                        np.matmul(scaled, weights, out=tables[:, start:end])
        return tables


def _unit_books(units: LookupUnits) -> tuple[np.ndarray, ...]:
    """Flat arrays of `_scan_kernels.ip_tables` (n_patterns, n_pos, src_ptr, src, book_ptr,
    book: each unit's book position-major) and SQ (table_size,) float32."""
    sq = np.empty(units.table_size, np.float32)
    for start, sources, book in zip(units.table_off, units.sources, units.books):
        sq[start:start + len(sources) * len(book)] = np.tile((book.astype(np.float32) ** 2).sum(1), len(sources))

    def ptr(parts: list[np.ndarray]) -> np.ndarray:  # start of each part in their concatenation
        return np.concatenate([[0], np.cumsum([p.size for p in parts])[:-1]]).astype(np.int64)

    books = [np.ascontiguousarray(book.T, np.float32).ravel() for book in units.books]
    n_patterns = np.asarray([len(s) for s in units.sources], np.int64)
    n_pos = np.asarray([s.shape[1] for s in units.sources], np.int64)
    return (n_patterns, n_pos, ptr(units.sources), np.concatenate([s.ravel() for s in units.sources]).astype(np.int64),
            ptr(books), np.concatenate(books), sq)


def _wide_units(units: LookupUnits, d: int) -> tuple[np.ndarray, list[tuple[int, int, np.ndarray]]]:
    """Units with one pattern over at least WIDE_UNIT_FRACTION of the d dimensions (residual
    stages of one group), whose tables are one BLAS product with the queries: (n_patterns
    (U,) int64 with theirs 0, so the table kernel skips them; runs of such units with
    consecutive entries as (first entry, end, weights (d, end - first) float32), table[:,
    first:end] = x @ weights)."""
    n_patterns = np.asarray([len(s) for s in units.sources], np.int64)
    runs: list[list] = []  # [first entry, end, weights of each unit]
    for u, (sources, book) in enumerate(zip(units.sources, units.books)):
        if len(sources) != 1 or sources.shape[1] < WIDE_UNIT_FRACTION * d:
            continue
        n_patterns[u] = 0
        weights = np.zeros((d, len(book)), np.float32)
        weights[sources[0]] = book.T
        start = int(units.table_off[u])
        if not runs or runs[-1][1] != start:
            runs.append([start, start, []])
        runs[-1][1] = start + len(book)
        runs[-1][2].append(weights)
    return n_patterns, [(a, b, np.concatenate(w, axis=1)) for a, b, w in runs]


def unpack_index(searcher: ADCSearcher, codes: np.ndarray) -> np.ndarray | None:
    """Every row's table entries, unpacked once for `search_indexed`: (n, U) uint16 (int32
    when table_size > 2**16) for codes uint8 (n, >= codec.code_size); None when the
    searcher decodes rows instead (no lookup units)."""
    if searcher.units is None:
        return None
    dtype = np.uint16 if searcher.units.table_size <= 2 ** 16 else np.int32
    out = np.empty((len(codes), len(searcher.units.ksub)), dtype)
    with serial_if(len(codes) < PARALLEL_MIN_ROWS):
        _scan_kernels.fill_index(codes, out, *searcher.units.kernel_args())
    return out


def row_terms(searcher: ADCSearcher, index: np.ndarray, lists: np.ndarray,
              extra: np.ndarray | None = None) -> np.ndarray:
    """The query-independent part of each row's score (n,) float32 for `search_indexed`:
    the sum over lookup units of its list's table at the row's entries (SQ + 2 IP(c),
    2 IP(c) or 0: see `ADCSearcher.list_tables`), plus `extra` (n,) float32, the per-row
    term of L2 over several stages (||r_hat||^2), when given. index (n, U) from
    `unpack_index`, lists (n,) int64 each row's list."""
    used, at = np.unique(lists, return_inverse=True)
    tables, table_row = searcher.list_tables(used)
    with serial_if(len(index) < PARALLEL_MIN_ROWS):
        out = _scan_kernels.row_terms(index, tables, table_row[at].astype(np.int64))
    return out if extra is None else out + extra.astype(np.float32)


def search_blocks(searcher: ADCSearcher, queries: np.ndarray, codes: np.ndarray,
                  list_start: np.ndarray, list_size: np.ndarray, probes: np.ndarray,
                  k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of each query over the lists it probes.

    queries (nq, d) float32; codes (capacity, searcher.code_size) uint8, the arena: list l
    is rows list_start[l] .. list_start[l] + list_size[l] - 1 (int64 arrays (L,)), and uses
    centroid l of the searcher when it has centroids; probes (nq, P) int64: the lists each
    query scans, -1 for none (a flat index is one list: probes zeros (nq, 1)).

    Returns (D (nq, k) float32 ascending, rows (nq, k) int64 arena rows, -1 / +inf padded),
    D the minimized score: squared L2 distance, or -<q, x_hat> for inner product.
    Batches run on faiss.omp_get_max_threads() threads (`_search_batch`); one query runs
    on the calling thread in one kernel call (`_search_one`), with the same results."""
    search = _search_one if len(queries) == 1 and searcher.units is not None else _search_batch
    return search(searcher, queries, codes, list_start, list_size, probes, k)


def _search_batch(searcher: ADCSearcher, queries: np.ndarray, codes: np.ndarray, list_start: np.ndarray,
                  list_size: np.ndarray, probes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """`search_blocks` by parallel kernels: blocks planned for the threads, per-thread heaps
    merged (or, without lookup units, by decoding rows)."""
    use_faiss_thread_count()
    if searcher.units is None:
        if not searcher._warned:
            warnings.warn(f"{searcher.codec}: ADC tables would be too large; searching by "
                          "decoding rows (exact, slower)", stacklevel=4)
            searcher._warned = True
        return _search_without_tables(searcher, queries, codes, list_start, list_size, probes, k)

    def scan(xb: np.ndarray, pb: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        block_first, block_rows, block_list, entry_start, entry_end, entry_query = _plan(list_start, list_size, pb)
        list_tables, block_table = searcher.list_tables(block_list)
        if searcher.code_centroids is None:
            block_list = np.zeros_like(block_list)
        query_tables = searcher.query_tables(xb)
        return _scan_kernels.scan_blocks(
            codes, searcher.term_offset, xb, query_tables, list_tables, centroids, searcher.l2,
            *searcher.units.kernel_args(), block_first, block_rows, block_list, block_table,
            entry_start, entry_end, entry_query, k, numba.get_num_threads())
    return _by_query_block(searcher, queries, probes, k, scan)


_NO_TABLE = np.empty(0, np.float32)  # `search_one` builds the query's table itself


def _search_one(searcher: ADCSearcher, query: np.ndarray, codes: np.ndarray, list_start: np.ndarray,
                list_size: np.ndarray, probes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """`search_blocks` of one query (1, d) float32, probes (1, P) int64: one serial kernel
    call (`_one_query_kernels.search_one`) with the searcher's arrays built once."""
    tables, probe_table = searcher.list_tables(probes[0])
    rotated = searcher.codec.rotate(query)
    # wide units' tables by the batch's matrix product (the same bits), others in the kernel
    query_table = searcher.query_tables(rotated)[0] if searcher.wide_units()[1] else _NO_TABLE
    return _one_query_kernels.search_one(codes, searcher.term_offset, rotated[0], query_table, probes[0],
                                         tables, probe_table, list_start, list_size, k,
                                         *searcher.one_query_args())


def search_indexed(searcher: ADCSearcher, queries: np.ndarray, index: np.ndarray, terms: np.ndarray,
                   list_start: np.ndarray, list_size: np.ndarray, probes: np.ndarray,
                   k: int) -> tuple[np.ndarray, np.ndarray]:
    """`search_blocks` over rows unpacked ahead by a caller that keeps them (the LanceDB
    adapter, per table version): index (capacity, U) from `unpack_index`, terms (capacity,)
    float32 from `row_terms`. No bits are unpacked and no per-list table is built during
    the search: each row costs U lookups and one addition, and each query scans all its
    lists on one thread with its table in cache (queries in parallel). Same arguments and
    results as `search_blocks` (without centroids: list 0 only)."""
    use_faiss_thread_count()

    def scan(xb: np.ndarray, pb: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with serial_if(len(xb) < 2):
            return _scan_kernels.scan_indexed(index, terms, xb, searcher.query_tables(xb), centroids,
                                              searcher.l2, list_start, list_size, pb, k)
    return _by_query_block(searcher, queries, probes, k, scan)


def search_unpacked(searcher: ADCSearcher, queries: np.ndarray, index: np.ndarray, terms: np.ndarray,
                    list_start: np.ndarray, list_size: np.ndarray, probes: np.ndarray,
                    k: int) -> tuple[np.ndarray, np.ndarray]:
    """`search_indexed`, or `search_decoded` for batches with many queries per list over
    codes with many lookups per dimension or large tables (DECODE_MIN_QUERIES,
    DECODE_MAX_DIMS_PER_UNIT, DECODE_MIN_TABLE_ENTRIES): same arguments and results, up to
    float rounding."""
    costly = (searcher.codec.d < DECODE_MAX_DIMS_PER_UNIT * index.shape[1]
              or searcher.units.table_size > DECODE_MIN_TABLE_ENTRIES)
    decode = costly and _queries_per_list(probes) >= DECODE_MIN_QUERIES
    search = search_decoded if decode else search_indexed
    return search(searcher, queries, index, terms, list_start, list_size, probes, k)


def _queries_per_list(probes: np.ndarray) -> float:
    """Mean number of queries probing each probed list; probes (nq, P) int64, -1 none."""
    probed = probes[probes >= 0]
    return len(probed) / max(1, len(np.unique(probed)))


def search_decoded(searcher: ADCSearcher, queries: np.ndarray, index: np.ndarray, terms: np.ndarray,
                   list_start: np.ndarray, list_size: np.ndarray, probes: np.ndarray,
                   k: int) -> tuple[np.ndarray, np.ndarray]:
    """`search_indexed` by inner products, for batches with many queries per list: each row
    of a probed block is decoded once from its unpacked entries (r_hat, as the tables sum
    it) and scored for all the queries probing the block,

        score = bias + terms + coef * <q, r_hat>,  coef = -2 (L2) or -1 (inner product),

    so a row costs d multiply-adds per query (vectorized over the queries) instead of U
    table lookups. Same arguments and results, up to float rounding."""
    use_faiss_thread_count()
    _, n_pos, src_ptr, src, book_ptr, book, _ = searcher._unit_books()
    coef = np.float32(-2.0 if searcher.l2 else -1.0)

    def scan(xb: np.ndarray, pb: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        block_first, block_rows, block_list, entry_start, entry_end, entry_query = _plan(list_start, list_size, pb)
        return _scan_kernels.scan_decoded(
            index, terms, xb, centroids, searcher.l2, coef, searcher.units.table_off, searcher.units.ksub,
            n_pos, src_ptr, src, book_ptr, book, block_first, block_rows, block_list, entry_start,
            entry_end, entry_query, k, numba.get_num_threads())
    heap_bytes = 12 * k * numba.get_num_threads()  # per query: a float32 + int64 heap per thread
    return _by_query_block(searcher, queries, probes, k, scan, max(1, QUERY_BLOCK_BYTES // heap_bytes))


def _plan(list_start: np.ndarray, list_size: np.ndarray, probes: np.ndarray) -> tuple[np.ndarray, ...]:
    """`_scan_kernels.plan_blocks` of probes (nq, P) in blocks of ROWS_PER_BLOCK rows, for
    the current number of numba threads."""
    return _scan_kernels.plan_blocks(list_start, list_size, np.ascontiguousarray(probes, np.int64), ROWS_PER_BLOCK,
                                     numba.get_num_threads())


def _by_query_block(searcher: ADCSearcher, queries: np.ndarray, probes: np.ndarray, k: int,
                    scan: Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
                    step: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Run `scan(queries block, its probes, centroids)` (heaps (T, nb, k)) for blocks of
    `step` queries (default: as many as have tables within QUERY_BLOCK_BYTES) and merge the
    heaps: (D, rows) (nq, k). Queries and centroids reach `scan` in the codec's space."""
    D = np.empty((len(queries), k), np.float32)
    rows = np.empty((len(queries), k), np.int64)
    queries = searcher.codec.rotate(queries)
    step = step or searcher.query_block()
    for i in range(0, len(queries), step):
        heap_d, heap_i = scan(queries[i:i + step], probes[i:i + step], searcher.scan_centroids)
        serial = 16 * heap_d.size < PARALLEL_MIN_WORK
        with serial_if(serial):
            D[i:i + step], rows[i:i + step] = _scan_kernels.merge_heaps(heap_d, heap_i)
    return D, rows


def _search_without_tables(searcher: ADCSearcher, queries: np.ndarray, codes: np.ndarray,
                           list_start: np.ndarray, list_size: np.ndarray, probes: np.ndarray,
                           k: int) -> tuple[np.ndarray, np.ndarray]:
    """`search_blocks` by decoding rows (tables too large): same results, slower."""
    D = np.full((len(queries), k), np.inf, np.float32)
    rows = np.full((len(queries), k), -1, np.int64)
    for lst in np.unique(probes[probes >= 0]):
        qs = np.flatnonzero((probes == lst).any(1))
        for a in range(list_start[lst], list_start[lst] + list_size[lst], ROWS_PER_BLOCK):
            b = min(a + ROWS_PER_BLOCK, list_start[lst] + list_size[lst])
            x_hat = searcher.decode(codes[a:b], np.full(b - a, lst))
            d, i = faiss_threads.knn(queries[qs], x_hat, min(k, b - a), searcher.metric)
            d = d if searcher.l2 else -d
            cand_d, cand_i = np.hstack([D[qs], d]), np.hstack([rows[qs], np.where(i >= 0, i + a, -1)])
            best = np.argsort(cand_d, axis=1, kind="stable")[:, :k]
            D[qs], rows[qs] = np.take_along_axis(cand_d, best, 1), np.take_along_axis(cand_i, best, 1)
    return D, rows
