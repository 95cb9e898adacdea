"""ADC top-k of a batch of queries over code arrays grouped by partition (rows never decoded).

The only module of the adapter that calls `qetvec.adc`. `_distance` follows LanceDB: "l2" is
the squared L2 distance, "dot" is 1 - <q, x>. With c the row's partition centroid (zero
without residual encoding) and r_hat the decoded code, each (query, partition) pair gets
its own lookup tables, built for the pair query q' below, and every row scores
bias + extra + sum of table lookups:

    l2, one stage:     q' = q - c,  tables "l2"          -> ||q - c - r_hat||^2
    l2, several:       q' = q - c,  tables "ip" * -2,    bias ||q - c||^2, extra ||r_hat||^2
    dot:               q' = q,      tables "ip" * -1,    bias 1 - <q, c>

Every probed partition is scanned once for all the pairs that probe it (one kernel call per
chunk of pairs), then each query keeps the best k over its pairs.
"""
from __future__ import annotations

import warnings

import numba
import numpy as np

from qetvec import adc
from qetvec.adc import ADCSearcher
from qetvec.metric import use_faiss_thread_count

from qetvec_lancedb.codec import TableCodec

BLOCK_ROWS = 4096  # rows unpacked once per block and shared by every pair scanning it
TABLE_BYTES = 64 << 20  # lookup tables built for at most this many bytes of pairs at once
SERIAL_WORK = 1 << 21  # (row, pair) scores below which one thread scans: a parallel region's
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
        centroids = codec.centroids if codec.by_residual else np.zeros((1, codec.d), np.float32)
        self.centroids = centroids  # (parts, d): the c of each partition (one zero row without residuals)

    def search(self, queries: np.ndarray, probes: np.ndarray, codes: np.ndarray,
               norms: np.ndarray | None, part_ptr: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best rows per query among the probed partitions.

        queries (nq, d) float32; probes (nq, P) int64 partition ids per query (column 0 only
        without IVF); codes uint8 (n, code_size) grouped by partition, partition p being rows
        part_ptr[p]:part_ptr[p + 1] (part_ptr (parts + 1,) int64); norms float32 (n,) when the
        codec stores them. Returns (D (nq, k) float32 ascending, rows (nq, k) int64 into
        codes), +inf / -1 where fewer than k rows were scanned."""
        nq, P = probes.shape
        pair_query = np.repeat(np.arange(nq, dtype=np.int64), P)
        pair_part = probes.ravel().astype(np.int64)
        D = np.full((nq * P, k), np.inf, np.float32)
        rows = np.full((nq * P, k), -1, np.int64)
        table_size = self.searcher.units.table_size if self.searcher.units is not None else 1
        chunk = max(1, TABLE_BYTES // (4 * table_size * P)) * P  # whole queries per chunk
        for a in range(0, nq * P, chunk):
            sl = slice(a, a + chunk)
            scan = self._scan_pairs if self.searcher.units is not None else self._decode_pairs
            D[sl], rows[sl] = scan(queries[pair_query[sl]], pair_part[sl], codes, norms, part_ptr, k)
        return best_per_query(D.reshape(nq, P * k), rows.reshape(nq, P * k), k)

    def _pair_terms(self, q: np.ndarray, parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(tables (npairs, table_size) float32, bias (npairs,) float32) of pairs (q, parts)."""
        c = self.centroids[parts if self.codec.by_residual else np.zeros_like(parts)]
        if self.codec.metric == "dot":
            return self.searcher.tables(q, "ip", -1.0), (1.0 - (q * c).sum(1)).astype(np.float32)
        if not self.codec.stores_norm:
            return self.searcher.tables(q - c, "l2"), np.zeros(len(q), np.float32)
        return self.searcher.tables(q - c, "ip", -2.0), ((q - c) ** 2).sum(1, dtype=np.float32)

    def _scan_pairs(self, q: np.ndarray, parts: np.ndarray, codes: np.ndarray, norms: np.ndarray | None,
                    part_ptr: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (npairs, k) of each pair (q[i], parts[i]) over its partition's rows."""
        tables, bias = self._pair_terms(q, parts)
        block_start, block_end, entry_ptr, entry_pair = pair_blocks(parts, part_ptr)
        extra = norms if self.codec.stores_norm else np.empty(0, np.float32)
        use_faiss_thread_count()
        if int(((block_end - block_start) * np.diff(entry_ptr)).sum()) < SERIAL_WORK:
            numba.set_num_threads(1)
        return adc.scan_topk(self.searcher.units, tables, codes, extra, 1.0, block_start, block_end,
                             entry_ptr, entry_pair, bias[entry_pair], k)

    def _decode_pairs(self, q: np.ndarray, parts: np.ndarray, codes: np.ndarray, norms: np.ndarray | None,
                      part_ptr: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Fallback when ADC tables would be too large: decode the rows, same distances."""
        D = np.full((len(q), k), np.inf, np.float32)
        rows = np.full((len(q), k), -1, np.int64)
        for i, (qi, p) in enumerate(zip(q, parts)):
            pos = np.arange(part_ptr[p], part_ptr[p + 1])
            x_hat = self.codec.decode(codes[pos], np.full(len(pos), p))
            dist = (1.0 - x_hat @ qi) if self.codec.metric == "dot" else ((x_hat - qi) ** 2).sum(1)
            best = np.argsort(dist, kind="stable")[:k]
            D[i, :len(best)], rows[i, :len(best)] = dist[best], pos[best]
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
