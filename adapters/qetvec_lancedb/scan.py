"""ADC top-k of one query over code arrays read from Arrow buffers (rows never decoded).

`_distance` follows LanceDB: "l2" is the squared L2 distance, "dot" is 1 - <q, x>; the
metric decomposition, the stored `_qet_norm` term and the decoding fallback are
`qetvec.adc`'s.
"""
from __future__ import annotations

import faiss
import numpy as np

from qetvec import adc
from qetvec.adc import ADCSearcher

from qetvec_lancedb.codec import TableCodec


class CodeScanner:
    """Scores a float query against codes of a `TableCodec` through `qetvec.adc`."""

    def __init__(self, codec: TableCodec):
        self.codec = codec
        metric = faiss.METRIC_L2 if codec.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        self.searcher = ADCSearcher(codec.quantizer, metric)

    def topk(self, query: np.ndarray, codes: np.ndarray, norms: np.ndarray | None, k: int,
             ranges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The k best rows among codes[a:b] for (a, b) in ranges (R, 2) int64.

        query (d,) float32; codes uint8 (n, code_size); norms float32 (n,) when the codec
        stores them. Returns (distances (k',) float32 ascending, positions (k',) int64 into
        codes), k' = min(k, rows in ranges)."""
        if len(ranges) == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        if norms is not None:  # the searcher reads the per-row term after the code
            codes = np.concatenate([codes, norms.astype("<f4").view(np.uint8).reshape(-1, 4)], axis=1)
        q = np.ascontiguousarray(query, np.float32)[None]
        ranges = np.asarray(ranges, np.int64)
        D, rows = adc.search_blocks(self.searcher, q, codes, ranges[:, 0], ranges[:, 1] - ranges[:, 0],
                                    np.arange(len(ranges), dtype=np.int64)[None], k)
        keep = rows[0] >= 0
        D = 1.0 + D[0][keep] if self.codec.metric == "dot" else D[0][keep]  # dot: 1 - <q, x>
        return D.astype(np.float32), rows[0][keep]
