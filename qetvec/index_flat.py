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
from qetvec.metric import metric_type


@register("IndexQET")
class IndexQET(QETIndexBase):
    """Exhaustive search over QET codes with the FAISS index surface.

    Stored per row: the QET code, plus, for L2 with several stages, ||x_hat||^2 as float32
    (4 bytes) appended to it, because cross-stage terms do not split over groups; both count
    in `code_size` (see `qetvec.adc`). L2 distances are squared (as FAISS reports them); inner
    products are returned largest first. Ids are int64, sequential unless given to
    `add_with_ids`."""

    def __init__(self, d: int, m: int, nbits: int | Sequence[int] = 8,
                 levels: int | Sequence[int] = 1, stages: int = 1, metric: str | int = "l2",
                 codebook_bits: int | None = None, seed: int = 0):
        self.quantizer = QETQuantizer(d, m, nbits, levels, stages, codebook_bits, seed)
        self.d = d
        self.metric_type = metric_type(metric)
        self.code_size = self.quantizer.code_size + adc.row_term_bytes(self.quantizer, self.metric_type)
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
        self.codes = np.concatenate([self.codes, self.searcher.encode(x)])
        self.ids = np.concatenate([self.ids, ids])

    def search(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(D float32 (nq, k), I int64 (nq, k)) of the k nearest stored rows per query;
        padded with -1 ids (and +inf L2 / -inf IP distances) when k > ntotal."""
        x = as_float_matrix(x, "x", self.d)
        k = check_positive_int(k, "k")
        self._check_trained()
        return to_faiss_results(*self._scan(x, k), self.ids, self.metric_type)

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
        self._check_trained()
        D, rows = self._scan(x, max(1, self.ntotal))
        out = np.empty((len(x), self.ntotal), np.float32)
        np.put_along_axis(out, rows[:, : self.ntotal], D[:, : self.ntotal], axis=1)
        return -out if self.metric_type == faiss.METRIC_INNER_PRODUCT else out

    # -- internals ---------------------------------------------------------------------
    @property
    def searcher(self) -> ADCSearcher:
        if self._searcher is None:
            self._searcher = ADCSearcher(self.quantizer, self.metric_type)
        return self._searcher

    def _scan(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(minimized scores, rows) (nq, k) of validated queries: the whole index is one list."""
        list_start, list_size = np.zeros(1, np.int64), np.array([self.ntotal], np.int64)
        return adc.search_blocks(self.searcher, x, self.codes, list_start, list_size,
                                 np.zeros((len(x), 1), np.int64), k)

    def _decode_rows(self, rows: np.ndarray) -> np.ndarray:
        return self.searcher.decode(self.codes[rows])

    def _state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta, arrays = self.quantizer._state()
        return ({"quantizer": meta, "metric_type": self.metric_type},
                {**arrays, "codes": self.codes, "ids": self.ids})

    @classmethod
    def _from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "IndexQET":
        quantizer = QETQuantizer._from_state(meta["quantizer"], arrays)
        index = cls.__new__(cls)
        index.quantizer, index.d, index.metric_type = quantizer, quantizer.d, meta["metric_type"]
        index.code_size = quantizer.code_size + adc.row_term_bytes(quantizer, index.metric_type)
        index.codes, index.ids, index._searcher = arrays["codes"], arrays["ids"], None
        return index
