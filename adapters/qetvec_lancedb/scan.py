"""ADC top-k of one query over code arrays read from Arrow buffers (rows never decoded).

`_distance` follows LanceDB: "l2" is the squared L2 distance, "dot" is 1 - <q, x>. With a
single QET stage L2 splits over groups (l2 tables); with several stages it is
||q||^2 - 2 <q, x_hat> + ||x_hat||^2 using the stored `_qet_norm`.
"""
from __future__ import annotations

import numpy as np

from qetvec import adc
from qetvec.index_flat import ROWS_PER_BLOCK, ADCSearcher
from qetvec.metric import use_faiss_thread_count

from qetvec_lancedb.codec import TableCodec


class CodeScanner:
    """Scores a float query against codes of a `TableCodec` (lookup units planned once)."""

    def __init__(self, codec: TableCodec):
        self.codec = codec
        self.searcher = ADCSearcher(codec.quantizer)

    def topk(self, query: np.ndarray, codes: np.ndarray, norms: np.ndarray | None, k: int,
             ranges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The k best rows among codes[a:b] for (a, b) in ranges (R, 2) int64.

        query (d,) float32; codes uint8 (n, code_size); norms float32 (n,) when the codec
        stores them. Returns (distances (k',) float32 ascending, positions (k',) int64 into
        codes), k' = min(k, rows in ranges)."""
        starts = np.concatenate([np.arange(a, b, ROWS_PER_BLOCK) for a, b in ranges]).astype(np.int64) \
            if len(ranges) else np.zeros(0, np.int64)
        if len(starts) == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        range_end = np.repeat(ranges[:, 1], [len(range(a, b, ROWS_PER_BLOCK)) for a, b in ranges])
        ends = np.minimum(starts + ROWS_PER_BLOCK, range_end).astype(np.int64)
        q = np.ascontiguousarray(query, np.float32)[None]
        if self.searcher.units is None:
            return self._topk_decoded(q[0], codes, starts, ends, k)
        tables, bias, extra, coef = self._tables(q, norms)
        use_faiss_thread_count()
        D, rows = adc.scan_topk(self.searcher.units, tables, codes, extra, coef, starts, ends,
                                np.arange(len(starts) + 1, dtype=np.int64), np.zeros(len(starts), np.int64),
                                np.full(len(starts), bias, np.float32), k)
        keep = rows[0] >= 0
        return D[0][keep], rows[0][keep]

    def _tables(self, q: np.ndarray, norms: np.ndarray | None) -> tuple[np.ndarray, float, np.ndarray, float]:
        """(tables (1, table_size), bias, extra (n,) or (0,), extra_coef) so that
        bias + extra_coef * extra + lookups = `_distance`."""
        none = np.empty(0, np.float32)
        if self.codec.metric == "dot":
            return self.searcher.tables(q, "ip", -1.0), 1.0, none, 0.0
        if not self.codec.stores_norm:
            return self.searcher.tables(q, "l2"), 0.0, none, 0.0
        return self.searcher.tables(q, "ip", -2.0), float((q ** 2).sum()), norms, 1.0

    def _topk_decoded(self, q: np.ndarray, codes: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                      k: int) -> tuple[np.ndarray, np.ndarray]:
        """Fallback when ADC tables would be too large: decode the rows, same distances."""
        pos = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends)])
        x_hat = self.codec.quantizer.decode(codes[pos])
        dist = (1.0 - x_hat @ q) if self.codec.metric == "dot" else ((x_hat - q) ** 2).sum(1)
        best = np.argsort(dist, kind="stable")[:k]
        return dist[best].astype(np.float32), pos[best]
