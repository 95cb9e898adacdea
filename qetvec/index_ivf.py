"""`IndexIVFQET`: inverted file over QET codes with any FAISS index as coarse quantizer.

Lists live in contiguous arrays, sorted by list: codes (ntotal, code_size) uint8, ids
(ntotal,) int64 and list_offsets (nlist + 1,) int64, so list l is rows
list_offsets[l]:list_offsets[l + 1]; no Python object per vector.

Scores, with c the list centroid and r_hat the decoded QET residual (x_hat = c + r_hat):

    L2:  ||q - x_hat||^2 = ||q - c||^2 - 2 <q, r_hat> + beta,  beta = 2 <c, r_hat> + ||r_hat||^2
    IP:  <q, x_hat>      = <q, c> + <q, r_hat>

so lookup tables depend on the query only (not on the list) and the scan kernel is the
flat index's. beta is stored per row as float32 inside the code (4 bytes, counted in
`code_size`) except for single-stage L2 without residuals, where per-group L2 tables are
exact on their own.
"""
from __future__ import annotations

from typing import Sequence

import faiss
import numpy as np

from qetvec import adc
from qetvec.adc import ADCSearcher
from qetvec._validation import as_float_matrix, as_ids, check_positive_int
from qetvec.codebooks import train_kmeans
from qetvec.codec import QETQuantizer
from qetvec.index_base import QETIndexBase, to_faiss_results
from qetvec.io import register
from qetvec.metric import metric_type, use_faiss_thread_count


@register("IndexIVFQET")
class IndexIVFQET(QETIndexBase):
    """IVF index: `quantizer` (a FAISS index, e.g. faiss.IndexFlatL2(d) or
    faiss.IndexHNSWFlat(d, 32)) assigns rows to `nlist` lists; QET codes the residuals.

    `nprobe` (default 1, as in FAISS) lists are scanned per query; override per call with
    `search(x, k, nprobe=...)` or `search(x, k, params=faiss.SearchParametersIVF(nprobe=...))`."""

    def __init__(self, quantizer: faiss.Index, d: int, nlist: int, m: int,
                 nbits: int | Sequence[int] = 8, levels: int | Sequence[int] = 1, stages: int = 1,
                 metric: str | int = "l2", by_residual: bool = True,
                 codebook_bits: int | None = None, seed: int = 0):
        if not isinstance(quantizer, faiss.Index) or quantizer.d != d:
            raise ValueError(f"quantizer must be a faiss.Index of dimension d={d}")
        self.coarse = quantizer
        self.d, self.nlist = d, check_positive_int(nlist, "nlist")
        self.metric_type = metric_type(metric)
        self.by_residual = by_residual
        self.nprobe = 1
        self.seed = seed
        self.quantizer = QETQuantizer(d, m, nbits, levels, stages, codebook_bits, seed)
        self.stores_beta = self.metric_type == faiss.METRIC_L2 and (by_residual or stages > 1)
        self.code_size = self.quantizer.code_size + 4 * self.stores_beta
        self.centroids = np.zeros((0, d), np.float32)
        self.codes = np.empty((0, self.code_size), np.uint8)
        self.ids = np.empty(0, np.int64)
        self.list_offsets = np.zeros(self.nlist + 1, np.int64)
        self._searcher: ADCSearcher | None = None

    @property
    def is_trained(self) -> bool:
        return len(self.centroids) == self.nlist and self.quantizer.is_trained

    def train(self, x: np.ndarray) -> None:
        """k-means the coarse centroids (unless the quantizer already holds nlist of them),
        then train QET on the residuals."""
        x = as_float_matrix(x, "x", self.d)
        if self.coarse.ntotal != self.nlist:
            if len(x) < self.nlist:
                raise ValueError(f"x has {len(x)} rows, fewer than nlist={self.nlist}")
            centroids = train_kmeans(x, self.nlist, self.seed)
            self.coarse.reset()
            if not self.coarse.is_trained:
                self.coarse.train(centroids)
            self.coarse.add(centroids)
        self.centroids = self.coarse.reconstruct_n(0, self.nlist).astype(np.float32)
        lists = self._assign(x)
        self.quantizer.train(x - self.centroids[lists] if self.by_residual else x)
        self._searcher = None

    def add_with_ids(self, x: np.ndarray, ids: np.ndarray) -> None:
        """Encode rows x (n, d), store them under `ids` (n,) int64 in their lists."""
        x = as_float_matrix(x, "x", self.d, allow_empty=True)
        ids = as_ids(ids, len(x))
        self._check_trained()
        lists = self._assign(x)
        centroids = self.centroids[lists] if self.by_residual else np.zeros_like(x)
        codes = self.quantizer.encode(x - centroids)
        if self.stores_beta:
            r_hat = self.quantizer.decode(codes)
            beta = (2 * (centroids * r_hat).sum(1) + (r_hat ** 2).sum(1)).astype("<f4")
            codes = np.concatenate([codes, beta.view(np.uint8).reshape(-1, 4)], axis=1)
        old_lists = np.repeat(np.arange(self.nlist), np.diff(self.list_offsets))
        self._store(np.concatenate([self.codes, codes]), np.concatenate([self.ids, ids]),
                    np.concatenate([old_lists, lists]))

    def search(self, x: np.ndarray, k: int, *, params: faiss.SearchParametersIVF | None = None,
               nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(D float32 (nq, k), I int64 (nq, k)) over the `nprobe` nearest lists, -1 padded."""
        x = as_float_matrix(x, "x", self.d)
        k = check_positive_int(k, "k")
        nprobe = nprobe if nprobe is not None else (params.nprobe if params is not None else self.nprobe)
        nprobe = check_positive_int(nprobe, "nprobe", 1, self.nlist)
        self._check_trained()
        use_faiss_thread_count()
        _, probes = self.coarse.search(x, nprobe)  # (nq, nprobe), -1 where fewer lists
        D = np.empty((len(x), k), np.float32)
        rows = np.empty((len(x), k), np.int64)
        step = self.searcher.query_block()
        for i in range(0, len(x), step):
            D[i:i + step], rows[i:i + step] = self._scan(x[i:i + step], probes[i:i + step], k)
        return to_faiss_results(D, rows, self.ids, self.metric_type)

    def remove_ids(self, ids: np.ndarray | Sequence[int]) -> int:
        """Remove rows stored under any of `ids`; returns how many were removed."""
        keep = ~np.isin(self.ids, np.asarray(ids, dtype=np.int64))
        lists = np.repeat(np.arange(self.nlist), np.diff(self.list_offsets))
        removed = int((~keep).sum())
        self._store(self.codes[keep], self.ids[keep], lists[keep])
        return removed

    def reset(self) -> None:
        """Remove every row (coarse centroids and codebooks stay trained)."""
        self._store(self.codes[:0], self.ids[:0], np.zeros(0, np.int64))

    def list_sizes(self) -> np.ndarray:
        """Rows per inverted list (nlist,) int64."""
        return np.diff(self.list_offsets)

    # -- internals ---------------------------------------------------------------------
    @property
    def searcher(self) -> ADCSearcher:
        if self._searcher is None:
            self._searcher = ADCSearcher(self.quantizer)
            if self._searcher.units is None:
                raise NotImplementedError(f"{self.quantizer}: ADC tables too large for IVF search; "
                                          "use fewer levels or nbits, or IndexQET (decoding fallback)")
        return self._searcher

    def _assign(self, x: np.ndarray) -> np.ndarray:
        return self.coarse.search(x, 1)[1][:, 0]

    def _store(self, codes: np.ndarray, ids: np.ndarray, lists: np.ndarray) -> None:
        order = np.argsort(lists, kind="stable")
        self.codes, self.ids = np.ascontiguousarray(codes[order]), ids[order]
        self.list_offsets = np.concatenate([[0], np.cumsum(np.bincount(lists, minlength=self.nlist))])

    def _decode_rows(self, rows: np.ndarray) -> np.ndarray:
        x = self.quantizer.decode(self.codes[rows, : self.quantizer.code_size])
        if self.by_residual:
            x += self.centroids[np.searchsorted(self.list_offsets, rows, side="right") - 1]
        return x

    def _scan(self, x: np.ndarray, probes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (D, rows) for queries x over their probed lists, one block per list."""
        query, lists = np.nonzero(probes >= 0)
        lists = probes[query, lists]
        order = np.argsort(lists, kind="stable")  # entries grouped by list
        query, lists = query[order].astype(np.int64), lists[order]
        blocks, first = np.unique(lists, return_index=True)
        entry_ptr = np.append(first, len(lists)).astype(np.int64)
        c = self.centroids[lists] if self.by_residual else np.zeros((len(lists), self.d), np.float32)
        xq = x[query]
        extra = np.empty(0, np.float32)
        if self.metric_type == faiss.METRIC_INNER_PRODUCT:  # minimize -<q, c> - <q, r_hat>
            tables, bias = self.searcher.tables(x, "ip", -1.0), -(xq * c).sum(1)
        elif self.stores_beta:
            tables, bias = self.searcher.tables(x, "ip", -2.0), ((xq - c) ** 2).sum(1)
            extra = self.codes[:, self.quantizer.code_size:].copy().view("<f4").ravel()
        else:
            tables, bias = self.searcher.tables(x, "l2"), np.zeros(len(lists), np.float32)
        return adc.scan_topk(self.searcher.units, tables, self.codes, extra, 1.0,
                             self.list_offsets[blocks], self.list_offsets[blocks + 1],
                             entry_ptr, query, bias, k)

    def _state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta, arrays = self.quantizer._state()
        return ({"quantizer": meta, "d": self.d, "nlist": self.nlist, "metric_type": self.metric_type,
                 "by_residual": self.by_residual, "nprobe": self.nprobe, "seed": self.seed},
                {**arrays, "coarse": faiss.serialize_index(self.coarse), "centroids": self.centroids,
                 "codes": self.codes, "ids": self.ids, "list_offsets": self.list_offsets})

    @classmethod
    def _from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "IndexIVFQET":
        index = cls.__new__(cls)
        index.coarse = faiss.deserialize_index(arrays["coarse"])
        index.quantizer = QETQuantizer._from_state(meta["quantizer"], arrays)
        for key in ("d", "nlist", "metric_type", "by_residual", "nprobe", "seed"):
            setattr(index, key, meta[key])
        index.stores_beta = index.metric_type == faiss.METRIC_L2 and (
            index.by_residual or len(index.quantizer.stages) > 1)
        index.code_size = index.quantizer.code_size + 4 * index.stores_beta
        index.centroids, index.codes, index.ids = arrays["centroids"], arrays["codes"], arrays["ids"]
        index.list_offsets, index._searcher = arrays["list_offsets"], None
        return index
