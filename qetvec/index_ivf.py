"""`IndexIVFQET`: inverted file over QET codes with any FAISS index as coarse quantizer.

Lists live in contiguous arrays, sorted by list: codes (ntotal, code_size) uint8, ids
(ntotal,) int64 and list_offsets (nlist + 1,) int64, so list l is rows
list_offsets[l]:list_offsets[l + 1]; no Python object per vector.

Scores (x_hat = c + r_hat, c the list centroid, r_hat the decoded QET residual) come from
`qetvec.adc`: exact tables per (query, probed list), built from a per-query table and a
per-list table computed once (nlist x table_size float32 of shared state, FAISS IVF-PQ's
precomputed table), so a single-stage code stores nothing but the QET code; L2 over several
stages adds ||r_hat||^2 as float32 (4 bytes, counted in `code_size`).
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
from qetvec.io import CorruptIndexError, register
from qetvec.metric import metric_type


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
        self.code_size = self.quantizer.code_size + adc.row_term_bytes(self.quantizer, self.metric_type)
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
        codes = self.searcher.encode(x, lists)
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
        _, probes = self.coarse.search(x, nprobe)  # (nq, nprobe), -1 where fewer lists
        return to_faiss_results(*self._scan(x, probes, k), self.ids, self.metric_type)

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
            self._searcher = ADCSearcher(self.quantizer, self.metric_type,
                                         self.centroids if self.by_residual else None)
        return self._searcher

    def _assign(self, x: np.ndarray) -> np.ndarray:
        return self.coarse.search(x, 1)[1][:, 0]

    def _store(self, codes: np.ndarray, ids: np.ndarray, lists: np.ndarray) -> None:
        order = np.argsort(lists, kind="stable")
        self.codes, self.ids = np.ascontiguousarray(codes[order]), ids[order]
        self.list_offsets = np.concatenate([[0], np.cumsum(np.bincount(lists, minlength=self.nlist))])

    def _decode_rows(self, rows: np.ndarray) -> np.ndarray:
        lists = np.searchsorted(self.list_offsets, rows, side="right") - 1
        return self.searcher.decode(self.codes[rows], lists)

    def _scan(self, x: np.ndarray, probes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(minimized scores, rows) (nq, k) of validated queries x over their probed lists."""
        list_start, list_size = self.list_offsets[:-1], np.diff(self.list_offsets)
        return adc.search_blocks(self.searcher, x, self.codes, list_start, list_size, probes, k)

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
        index.code_size = index.quantizer.code_size + adc.row_term_bytes(index.quantizer, index.metric_type)
        if arrays["codes"].shape[1] != index.code_size:  # files from before beta left the codes
            raise CorruptIndexError(f"stored codes have {arrays['codes'].shape[1]} bytes per row, this "
                                    f"index stores {index.code_size}: rebuild it with this qetvec version")
        index.centroids, index.codes, index.ids = arrays["centroids"], arrays["codes"], arrays["ids"]
        index.list_offsets, index._searcher = arrays["list_offsets"], None
        return index
