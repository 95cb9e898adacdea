"""`IndexQET`: a flat (exhaustive) index over QET codes, searched by ADC, FAISS-style."""
from __future__ import annotations

from typing import Sequence

import faiss
import numpy as np

from qetvec import adc
from qetvec.adc import ADCSearcher
from qetvec._validation import as_float_matrix, as_ids, check_positive_int
from qetvec.codec import QETQuantizer
from qetvec.index_base import QETIndexBase, to_faiss_results
from qetvec.io import register
from qetvec.metric import metric_type, use_faiss_thread_count

ROWS_PER_BLOCK = 16384  # rows unpacked once and shared by all queries; large blocks amortize table loads


@register("IndexQET")
class IndexQET(QETIndexBase):
    """Exhaustive search over QET codes with the FAISS index surface.

    Stored per row: the QET code, plus, for L2 with several stages, ||x_hat||^2 as float32
    (4 bytes) appended to it, because cross-stage terms do not split over groups; both count
    in `code_size`. L2 distances are squared (as FAISS reports them); inner products are
    returned largest first. Ids are int64, sequential unless given to `add_with_ids`."""

    def __init__(self, d: int, m: int, nbits: int | Sequence[int] = 8,
                 levels: int | Sequence[int] = 1, stages: int = 1, metric: str | int = "l2",
                 codebook_bits: int | None = None, seed: int = 0):
        self.quantizer = QETQuantizer(d, m, nbits, levels, stages, codebook_bits, seed)
        self.d = d
        self.metric_type = metric_type(metric)
        self.stores_norm = self.metric_type == faiss.METRIC_L2 and len(self.quantizer.stages) > 1
        self.code_size = self.quantizer.code_size + 4 * self.stores_norm
        self.codes = np.empty((0, self.code_size), dtype=np.uint8)
        self.ids = np.empty(0, dtype=np.int64)
        self._searcher: ADCSearcher | None = None

    @property
    def is_trained(self) -> bool:
        return self.quantizer.is_trained

    def train(self, x: np.ndarray) -> None:
        self.quantizer.train(x)
        self._searcher = None

    def add_with_ids(self, x: np.ndarray, ids: np.ndarray) -> None:
        """Encode and append rows x (n, d) under the int64 `ids` (n,)."""
        x = as_float_matrix(x, "x", self.d, allow_empty=True)
        ids = as_ids(ids, len(x))
        self._check_trained()
        codes = self.quantizer.encode(x)
        if self.stores_norm:
            norms = (self.quantizer.decode(codes) ** 2).sum(1, dtype=np.float32)
            codes = np.concatenate([codes, norms.astype("<f4").view(np.uint8).reshape(-1, 4)], axis=1)
        self.codes = np.concatenate([self.codes, codes])
        self.ids = np.concatenate([self.ids, ids])

    def search(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(D float32 (nq, k), I int64 (nq, k)) of the k nearest stored rows per query;
        padded with -1 ids (and +inf L2 / -inf IP distances) when k > ntotal."""
        x = as_float_matrix(x, "x", self.d)
        k = check_positive_int(k, "k")
        self._check_trained()
        use_faiss_thread_count()
        if self.searcher.units is None:
            return to_faiss_results(*self._scan_decoded(x, k), self.ids, self.metric_type)
        D = np.empty((len(x), k), np.float32)
        rows = np.empty((len(x), k), np.int64)
        block_start = np.arange(0, self.ntotal, ROWS_PER_BLOCK, dtype=np.int64)
        block_end = np.minimum(block_start + ROWS_PER_BLOCK, self.ntotal)
        step = self.searcher.query_block()
        for i in range(0, len(x), step):
            xb = x[i:i + step]
            tables, bias, extra, coef = self._tables(xb)
            entry_ptr = np.arange(len(block_start) + 1, dtype=np.int64) * len(xb)
            entry_query = np.tile(np.arange(len(xb), dtype=np.int64), len(block_start))
            D[i:i + step], rows[i:i + step] = adc.scan_topk(
                self.searcher.units, tables, self.codes, extra, coef, block_start, block_end,
                entry_ptr, entry_query, bias[entry_query], k)
        return to_faiss_results(D, rows, self.ids, self.metric_type)

    def remove_ids(self, ids: np.ndarray | Sequence[int]) -> int:
        """Remove the rows stored under any of `ids`; returns how many were removed."""
        drop = np.isin(self.ids, np.asarray(ids, dtype=np.int64))
        self.codes, self.ids = self.codes[~drop], self.ids[~drop]
        return int(drop.sum())

    def reset(self) -> None:
        """Remove every row (codebooks stay trained)."""
        self.codes, self.ids = self.codes[:0], self.ids[:0]

    def distances(self, x: np.ndarray) -> np.ndarray:
        """ADC distances (nq, ntotal) float32 of queries x to every stored row, storage order
        (L2: squared distances; IP: inner products). For tests and small n."""
        x = as_float_matrix(x, "x", self.d)
        tables, bias, extra, coef = self._tables(x)
        s = adc.scores(self.searcher.units, tables, self.codes, extra, coef, bias)
        return -s if self.metric_type == faiss.METRIC_INNER_PRODUCT else s

    # -- internals ---------------------------------------------------------------------
    @property
    def searcher(self) -> ADCSearcher:
        if self._searcher is None:
            self._searcher = ADCSearcher(self.quantizer)
        return self._searcher

    def _tables(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """(tables, bias (nq,), extra (n,) or (0,), extra_coef): score = what `_scan` minimizes."""
        none = np.empty(0, np.float32)
        if self.metric_type == faiss.METRIC_INNER_PRODUCT:  # maximize <q, x_hat>
            return self.searcher.tables(x, "ip", -1.0), np.zeros(len(x), np.float32), none, 0.0
        if not self.stores_norm:  # single stage: L2 splits over groups
            return self.searcher.tables(x, "l2"), np.zeros(len(x), np.float32), none, 0.0
        norms = self.codes[:, self.quantizer.code_size:].copy().view("<f4").ravel()
        return self.searcher.tables(x, "ip", -2.0), (x ** 2).sum(1), norms, 1.0

    def _scan_decoded(self, x: np.ndarray, k: int, block: int = 65536) -> tuple[np.ndarray, np.ndarray]:
        """Fallback: decode rows block by block and keep the best k (same result, slower)."""
        heap = faiss.ResultHeap(len(x), k, keep_max=self.metric_type == faiss.METRIC_INNER_PRODUCT)
        for i in range(0, self.ntotal, block):
            rows = self.quantizer.decode(self.codes[i:i + block, : self.quantizer.code_size])
            D, I = faiss.knn(x, rows, min(k, len(rows)), metric=self.metric_type)
            heap.add_result(D, np.where(I >= 0, I + i, -1))
        heap.finalize()
        D = -heap.D if self.metric_type == faiss.METRIC_INNER_PRODUCT else heap.D
        return D.astype(np.float32), heap.I

    def _decode_rows(self, rows: np.ndarray) -> np.ndarray:
        return self.quantizer.decode(self.codes[rows, : self.quantizer.code_size])

    def _state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta, arrays = self.quantizer._state()
        return ({"quantizer": meta, "metric_type": self.metric_type},
                {**arrays, "codes": self.codes, "ids": self.ids})

    @classmethod
    def _from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "IndexQET":
        quantizer = QETQuantizer._from_state(meta["quantizer"], arrays)
        index = cls.__new__(cls)
        index.quantizer, index.d, index.metric_type = quantizer, quantizer.d, meta["metric_type"]
        index.stores_norm = index.metric_type == faiss.METRIC_L2 and len(quantizer.stages) > 1
        index.code_size = quantizer.code_size + 4 * index.stores_norm
        index.codes, index.ids, index._searcher = arrays["codes"], arrays["ids"], None
        return index
