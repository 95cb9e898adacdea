"""ADC top-k of a batch of queries over code arrays grouped by partition (rows never decoded).

The only module of the adapter that calls `qetvec.adc`. `_distance` follows LanceDB: "l2" is
the squared L2 distance, "dot" is 1 - <q, x>. A row of partition p (centroid c, zero without
residual encoding) decodes to c + r_hat and scores bias + extra + sum of table lookups, with
lookup tables per query only (shared by all partitions):

    l2, one stage, no residual:  tables_l2(q)                  extra 0               bias 0
    l2, several, no residual:    -2 tables_ip(q)               extra ||r_hat||^2     bias ||q||^2
    l2, residual:                -2 tables_ip(q)               extra beta            bias ||q - c||^2
    dot:                         -tables_ip(q)                 extra 0               bias 1 - <q, c>

(beta = 2 <c, r_hat> + ||r_hat||^2, see `TableCodec.residual_beta`; the extra column comes
from the caller.) Every probed partition is scanned once for all the queries probing it:
one kernel call per chunk of queries, whose per-(query, partition) entries share each row
block; the kernel keeps each query's best k over its partitions.
"""
from __future__ import annotations

import warnings

import numba
import numpy as np

from qetvec import adc
from qetvec.adc import ADCSearcher
from qetvec.metric import use_faiss_thread_count

from qetvec_lancedb.codec import TableCodec

BLOCK_ROWS = 4096  # rows unpacked once per block and shared by every query scanning it
TABLE_BYTES = 64 << 20  # lookup tables built for at most this many bytes of queries at once
SERIAL_WORK = 1 << 21  # (row, query) scores below which one thread scans: a parallel region's
# start and barrier cost more than such a scan (40x more on a busy 2-core box, measured)


class CodeScanner:
    """Scores float queries against codes of a `TableCodec` (lookup units planned once)."""

    def __init__(self, codec: TableCodec):
        self.codec = codec
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the decoding fallback is announced below, once
            self.searcher = ADCSearcher(codec.quantizer)
        if self.searcher.units is None:
            warnings.warn(f"{codec.quantizer}: ADC tables would be too large; searching by decoding "
                          "rows (exact, slower)", stacklevel=2)

    def search(self, queries: np.ndarray, probes: np.ndarray, codes: np.ndarray,
               extra: np.ndarray | None, part_ptr: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best rows per query among the probed partitions.

        queries (nq, d) float32; probes (nq, P) int64 partition ids per query (one column of
        zeros without IVF); codes uint8 (n, code_size) grouped by partition, partition p being
        rows part_ptr[p]:part_ptr[p + 1] (part_ptr (parts + 1,) int64); extra float32 (n,)
        the per-row term (see the module docstring) or None. Returns (D (nq, k) float32
        ascending, rows (nq, k) int64 into codes), +inf / -1 where fewer than k rows."""
        nq = len(queries)
        D = np.empty((nq, k), np.float32)
        rows = np.empty((nq, k), np.int64)
        table_size = self.searcher.units.table_size if self.searcher.units is not None else 1
        step = max(1, TABLE_BYTES // (4 * table_size))  # queries per chunk
        scan = self._scan if self.searcher.units is not None else self._decode
        for a in range(0, nq, step):
            D[a:a + step], rows[a:a + step] = scan(queries[a:a + step], probes[a:a + step], codes, extra,
                                                   part_ptr, k)
        return D, rows

    def _terms(self, q: np.ndarray, pair_query: np.ndarray, pair_part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(tables (nq, table_size) float32, bias (npairs,) float32) for queries q (nq, d)
        and the (query, partition) pairs (pair_query, pair_part)."""
        codec = self.codec
        qp = q[pair_query]
        c = codec.centroids[pair_part] if codec.by_residual else np.zeros_like(qp)
        if codec.metric == "dot":
            return self.searcher.tables(q, "ip", -1.0), 1.0 - (qp * c).sum(1)
        if not codec.by_residual and not codec.stores_norm:
            return self.searcher.tables(q, "l2"), np.zeros(len(qp), np.float32)
        return self.searcher.tables(q, "ip", -2.0), ((qp - c) ** 2).sum(1)

    def _scan(self, q: np.ndarray, probes: np.ndarray, codes: np.ndarray, extra: np.ndarray | None,
              part_ptr: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (nq, k) of queries q (nq, d) over their probed partitions probes (nq, P)."""
        nq, P = probes.shape
        pair_query = np.repeat(np.arange(nq, dtype=np.int64), P)
        pair_part = probes.ravel().astype(np.int64)
        tables, bias = self._terms(q, pair_query, pair_part)
        block_start, block_end, entry_ptr, entry_pair = pair_blocks(pair_part, part_ptr)
        use_faiss_thread_count()
        if int(((block_end - block_start) * np.diff(entry_ptr)).sum()) < SERIAL_WORK:
            numba.set_num_threads(1)
        return adc.scan_topk(self.searcher.units, tables, codes,
                             np.empty(0, np.float32) if extra is None else extra, 1.0, block_start, block_end,
                             entry_ptr, pair_query[entry_pair], bias[entry_pair].astype(np.float32), k)

    def _decode(self, q: np.ndarray, probes: np.ndarray, codes: np.ndarray, extra: np.ndarray | None,
                part_ptr: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Fallback when ADC tables would be too large: decode the probed rows, same distances."""
        D = np.full((len(q), k), np.inf, np.float32)
        rows = np.full((len(q), k), -1, np.int64)
        for i, (qi, parts) in enumerate(zip(q, probes)):
            pos = np.concatenate([np.arange(part_ptr[p], part_ptr[p + 1]) for p in parts])
            owner = np.repeat(parts, part_ptr[parts + 1] - part_ptr[parts])
            x_hat = self.codec.decode(codes[pos], owner if self.codec.by_residual else None)
            D[i:i + 1], best = exact_topk(qi[None], x_hat, self.codec.metric, k)
            rows[i] = np.where(best[0] >= 0, pos[np.maximum(best[0], 0)], -1)
        return D, rows


def pair_blocks(parts: np.ndarray, part_ptr: np.ndarray) -> tuple[np.ndarray, ...]:
    """Kernel work list for pairs probing partitions parts (npairs,) int64: row blocks of
    at most BLOCK_ROWS rows of each probed partition, each scanned for every pair probing
    that partition. Returns (block_start, block_end (B,) int64, entry_ptr (B + 1,) int64,
    entry_pair (E,) int64), block b serving pairs entry_pair[entry_ptr[b]:entry_ptr[b + 1]].

    Plain-loop equivalent:
        for p in unique(parts): for each block of rows of p: entries += pairs with parts == p
    """
    order = np.argsort(parts, kind="stable")
    uniq, first, count = np.unique(parts[order], return_index=True, return_counts=True)
    lo, hi = part_ptr[uniq], part_ptr[uniq + 1]
    nblocks = (hi - lo + BLOCK_ROWS - 1) // BLOCK_ROWS
    owner = np.repeat(np.arange(len(uniq)), nblocks)  # block -> index into uniq
    local = np.arange(len(owner)) - np.repeat(np.cumsum(nblocks) - nblocks, nblocks)
    block_start = (lo[owner] + local * BLOCK_ROWS).astype(np.int64)
    block_end = np.minimum(block_start + BLOCK_ROWS, hi[owner]).astype(np.int64)
    per_block = count[owner]
    entry_ptr = np.concatenate([[0], np.cumsum(per_block)]).astype(np.int64)
    within = np.arange(entry_ptr[-1]) - np.repeat(entry_ptr[:-1], per_block)
    entry_pair = order[np.repeat(first[owner], per_block) + within].astype(np.int64)
    return block_start, block_end, entry_ptr, entry_pair


def best_per_query(D: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k smallest of each row of D (nq, c) float32 with their rows (nq, c) int64,
    ascending (ties by column), +inf / -1 padded to k."""
    if D.shape[1] < k:
        pad = k - D.shape[1]
        D = np.pad(D, ((0, 0), (0, pad)), constant_values=np.inf)
        rows = np.pad(rows, ((0, 0), (0, pad)), constant_values=-1)
    order = np.argsort(D, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(D, order, 1), np.take_along_axis(rows, order, 1)


def exact_topk(queries: np.ndarray, x: np.ndarray, metric: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest rows of x (n, d) float32 per query (nq, d) float32 by exact `_distance`:
    (D (nq, k) float32 ascending, rows (nq, k) int64), +inf / -1 padded."""
    dist = exact_distances(queries, x, metric)
    return best_per_query(dist, np.broadcast_to(np.arange(len(x)), dist.shape), k)


def exact_distances(queries: np.ndarray, x: np.ndarray, metric: str) -> np.ndarray:
    """`_distance` (nq, n) float32 of queries (nq, d) to rows x (n, d), both float32."""
    if metric == "dot":
        return (1.0 - queries @ x.T).astype(np.float32)
    return np.stack([((x - q) ** 2).sum(1) for q in queries]).astype(np.float32).reshape(len(queries), len(x))
