"""Top-k of a batch of queries over the cached rows of one table version, grouped by partition.

The only module of the adapter that calls `qetvec.adc`, which owns the metric decomposition
(per-query and per-partition tables, exact for residual codes), the rows unpacked ahead
(table entries and the per-partition part of each row's score, once per cached version),
the two scans over them (table lookups, or inner products with rows decoded on the fly for
large batches: `qetvec.adc.search_unpacked`) and the decoding fallback for tables too large.
`_distance` follows LanceDB: "l2" is the squared L2 distance, "dot" is 1 - <q, x>.
"""
from __future__ import annotations

import faiss
import numpy as np

from qetvec import adc
from qetvec.adc import ADCSearcher

from qetvec_lancedb.codec import TableCodec


class CodeScanner:
    """Scores float queries against codes of a `TableCodec` (lookup units planned once)."""

    def __init__(self, codec: TableCodec):
        self.codec = codec
        metric = faiss.METRIC_INNER_PRODUCT if codec.metric == "dot" else faiss.METRIC_L2
        self.searcher = ADCSearcher(codec.codec, metric, codec.centroids if codec.by_residual else None)

    def unpack(self, codes: np.ndarray, parts: np.ndarray,
               extra: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
        """What `search` scans instead of codes uint8 (n, code_size) in partitions parts (n,)
        int64 (zeros without IVF): (index (n, U) uint16 / int32, the rows' table entries;
        terms (n,) float32, the query-independent part of their scores), see
        `qetvec.adc.unpack_index` / `row_terms`; extra float32 (n,) ||r_hat||^2 for L2 over
        several stages, else None. (None, None) when the scan decodes rows (tables too large)."""
        index = adc.unpack_index(self.searcher, codes)
        if index is None:
            return None, None
        return index, adc.row_terms(self.searcher, index, parts, extra)

    def search(self, queries: np.ndarray, probes: np.ndarray, codes: np.ndarray, index: np.ndarray | None,
               terms: np.ndarray | None, part_ptr: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best rows per query among the probed partitions.

        queries (nq, d) float32; probes (nq, P) int64 partition ids per query (one column of
        zeros without IVF); codes uint8 (n, code_size) grouped by partition, partition p being
        rows part_ptr[p]:part_ptr[p + 1] (part_ptr (parts + 1,) int64); index, terms their
        `unpack` (scanned when given, else codes are decoded). Returns (D (nq, k) float32
        `_distance` ascending, rows (nq, k) int64 into codes), +inf / -1 where fewer than k."""
        queries, probes = np.ascontiguousarray(queries, np.float32), probes.astype(np.int64)
        start, size = part_ptr[:-1], np.diff(part_ptr)
        if index is None:
            D, rows = adc.search_blocks(self.searcher, queries, codes, start, size, probes, k)
        else:
            D, rows = adc.search_unpacked(self.searcher, queries, index, terms, start, size, probes, k)
        return (1.0 + D if self.codec.metric == "dot" else D), rows


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
