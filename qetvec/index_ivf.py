"""`IndexIVFQET`: inverted file over QET codes with any FAISS index as coarse quantizer.

Lists live in one growable arena (`qetvec.storage.InvertedLists`, `self.lists`): list l is
the contiguous rows lists.codes[lists.start[l] : lists.start[l] + lists.size[l]], their ids
in lists.ids; no Python object per vector, amortized O(1) appends, O(1) id lookups.

Scores, with c the list centroid and r_hat the decoded QET residual (x_hat = c + r_hat):

    L2:  ||q - x_hat||^2 = ||q - c||^2 - 2 <q, r_hat> + beta,  beta = 2 <c, r_hat> + ||r_hat||^2
    IP:  <q, x_hat>      = <q, c> + <q, r_hat>

so lookup tables depend on the query only (not on the list) and the scan kernel is the
flat index's. beta is stored per row as float32 inside the code (4 bytes, counted in
`code_size`) except for single-stage L2 without residuals, where per-group L2 tables are
exact on their own.
"""
from __future__ import annotations

import copy
import warnings
from typing import Any, Sequence

import faiss
import numpy as np

from qetvec import adc
from qetvec.adc import ADCSearcher
from qetvec._validation import as_float_matrix, as_ids, check_id, check_positive_int
from qetvec.codebooks import train_kmeans
from qetvec.codec import QETQuantizer
from qetvec.index_base import QETIndexBase, empty_results, selected_ids, to_faiss_results
from qetvec.io import register
from qetvec.metric import metric_type, use_faiss_thread_count
from qetvec.storage import InvertedLists


def _fill(coarse: faiss.Index, centroids: np.ndarray) -> faiss.Index:
    """Make `coarse` hold exactly `centroids` (nlist, d) float32; returns it."""
    coarse.reset()
    if not coarse.is_trained:
        coarse.train(centroids)
    coarse.add(centroids)
    return coarse


@register("IndexIVFQET")
class IndexIVFQET(QETIndexBase):
    """IVF index: `quantizer` (FAISS's name: the coarse quantizer, any faiss.Index, e.g.
    faiss.IndexFlatL2(d) or faiss.IndexHNSWFlat(d, 32)) assigns rows to `nlist` lists; the
    QET codec `qet` codes the residuals. (`coarse` is a deprecated alias of `quantizer`.)

    `nprobe` (default 1, as in FAISS; values above nlist are clamped to nlist as FAISS
    does) lists are scanned per query; override per call with `search(x, k, nprobe=...)` or
    `search(x, k, params=faiss.SearchParametersIVF(nprobe=...))`.

    Ids, as FAISS's IndexIVF: `add` assigns ntotal .. ntotal + n - 1, `add_with_ids` keeps
    user ids, `remove_ids` never renumbers. Unlike FAISS, an id is never stored twice:
    `add_with_ids` with a stored id, or an `add` whose ntotal-based ids clash with stored ones
    (possible after `remove_ids`), raises ValueError. Rows live in `lists` (InvertedLists)."""

    def __init__(self, quantizer: faiss.Index, d: int, nlist: int, m: int,
                 nbits: int | Sequence[int] = 8, levels: int | Sequence[int] = 1, stages: int = 1,
                 metric: str | int = "l2", by_residual: bool = True,
                 codebook_bits: int | None = None, seed: int = 0):
        if not isinstance(quantizer, faiss.Index) or quantizer.d != d:
            raise ValueError(f"quantizer must be a faiss.Index of dimension d={d}, got {quantizer!r}")
        self.quantizer = quantizer
        self.d, self.nlist = d, check_positive_int(nlist, "nlist")
        self.metric_type = metric_type(metric)
        self.by_residual = by_residual
        self.nprobe = 1
        self.seed = seed
        self.qet = QETQuantizer(d, m, nbits, levels, stages, codebook_bits, seed)
        self.stores_beta = self.metric_type == faiss.METRIC_L2 and (by_residual or stages > 1)
        self.code_size = self.qet.code_size + 4 * self.stores_beta
        self.centroids = np.zeros((0, d), np.float32)
        self.lists = InvertedLists(self.nlist, self.code_size)
        self._searcher: ADCSearcher | None = None

    @property
    def coarse(self) -> faiss.Index:
        """Deprecated alias of `quantizer` (the coarse FAISS index), kept for one release."""
        warnings.warn("IndexIVFQET.coarse is deprecated: use .quantizer (FAISS's name); the "
                      "QET codec is .qet", DeprecationWarning, stacklevel=2)
        return self.quantizer

    @property
    def is_trained(self) -> bool:
        return len(self.centroids) == self.nlist and self.qet.is_trained

    def train(self, x: np.ndarray) -> None:
        """k-means the coarse centroids (unless the quantizer already holds nlist of them),
        then train QET on the residuals. Refused once rows are stored (as FAISS); trains
        copies and swaps them in at the end, so a failure leaves the index as it was."""
        self._check_untrained_or_empty()
        x = as_float_matrix(x, "x", self.d)
        kmeans = None
        coarse = self.quantizer
        if coarse.ntotal != self.nlist:
            if len(x) < self.nlist:
                raise ValueError(f"x has {len(x)} rows, fewer than nlist={self.nlist}")
            kmeans = train_kmeans(x, self.nlist, self.seed)
            coarse = _fill(faiss.clone_index(self.quantizer), kmeans)
        centroids = coarse.reconstruct_n(0, self.nlist).astype(np.float32)
        qet = copy.deepcopy(self.qet)
        qet.train(x - centroids[coarse.search(x, 1)[1][:, 0]] if self.by_residual else x)
        if kmeans is not None:  # nothing failed: fill the caller's quantizer, as FAISS does
            _fill(self.quantizer, kmeans)
        self.centroids, self.qet, self._searcher = centroids, qet, None

    def add(self, x: np.ndarray) -> None:
        """Encode rows x (n, d) under ids ntotal .. ntotal + n - 1 (FAISS's IndexIVF::add)."""
        x = as_float_matrix(x, "x", self.d, allow_empty=True)
        self.add_with_ids(x, np.arange(self.ntotal, self.ntotal + len(x), dtype=np.int64))

    def add_with_ids(self, x: np.ndarray, ids: np.ndarray) -> None:
        """Encode rows x (n, d), store them under `ids` (n,) int64 in their lists; ids
        distinct, >= 0 and not stored yet."""
        x = as_float_matrix(x, "x", self.d, allow_empty=True)
        ids = as_ids(ids, len(x))
        self._check_trained()
        found = self.lists.find(ids)
        if (found >= 0).any():
            raise ValueError(f"ids: id {ids[np.argmax(found >= 0)]} is already stored (ids "
                             "must be unique; after remove_ids, add() may collide: use add_with_ids)")
        lists = self._assign(x)
        self._add_codes(lists, self.qet.encode(x - self.centroids[lists] if self.by_residual else x), ids)

    def remove_ids(self, ids: Any) -> int:
        """Remove the rows under `ids` (array-like of ints or a faiss.IDSelector); returns
        how many. Ids are kept (no renumbering); cost O(removed), lists' last rows fill holes."""
        rows = self.lists.find(selected_ids(ids, self.lists))
        rows = rows[rows >= 0]
        self.lists.remove(rows)
        return len(rows)

    def reset(self) -> None:
        """Remove every row (coarse centroids and codebooks stay trained)."""
        self.lists.reset()

    def list_sizes(self) -> np.ndarray:
        """Rows per inverted list (nlist,) int64."""
        return self.lists.size.copy()

    def merge_from(self, other: "IndexIVFQET", add_id: int = 0) -> None:
        """Move every row of `other` (same centroids and codebooks) into the same lists
        here with ids + add_id, and empty `other` (FAISS's IndexIVF::merge_from)."""
        self._check_mergeable(other)
        if other.nlist != self.nlist or not np.array_equal(other.centroids, self.centroids):
            raise ValueError("cannot merge: the indexes have different coarse centroids")
        add_id = check_id(add_id, "add_id")
        rows = other.lists.live_rows()
        ids = other.lists.ids[rows] + add_id
        found = self.lists.find(ids)
        if (found >= 0).any():
            raise ValueError(f"cannot merge: id {ids[np.argmax(found >= 0)]} is in both indexes")
        self.lists.add(other.lists.list_of(rows), other.lists.codes[rows], ids)
        other.reset()

    def search(self, x: np.ndarray, k: int, *, params: faiss.SearchParametersIVF | None = None,
               nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(D float32 (nq, k), I int64 (nq, k)) over the `nprobe` nearest lists, -1 padded."""
        x = as_float_matrix(x, "x", self.d, allow_empty=True)
        k = check_positive_int(k, "k")
        nprobe = nprobe if nprobe is not None else (params.nprobe if params is not None else self.nprobe)
        nprobe = min(check_positive_int(nprobe, "nprobe"), self.nlist)  # FAISS clamps to nlist
        self._check_trained()
        if len(x) == 0:
            return empty_results(k)
        use_faiss_thread_count()
        _, probes = self.quantizer.search(x, nprobe)  # (nq, nprobe), -1 where fewer lists
        D = np.empty((len(x), k), np.float32)
        rows = np.empty((len(x), k), np.int64)
        step = self.searcher.query_block()
        for i in range(0, len(x), step):
            D[i:i + step], rows[i:i + step] = self._scan(x[i:i + step], probes[i:i + step], k)
        return to_faiss_results(D, rows, self.lists.ids, self.metric_type)

    # -- internals ---------------------------------------------------------------------
    @property
    def searcher(self) -> ADCSearcher:
        if self._searcher is None:
            self._searcher = ADCSearcher(self.qet)
            if self._searcher.units is None:
                raise NotImplementedError(f"{self.qet}: ADC tables too large for IVF search; "
                                          "use fewer levels or nbits, or IndexQET (decoding fallback)")
        return self._searcher

    def _assign(self, x: np.ndarray) -> np.ndarray:
        return self.quantizer.search(x, 1)[1][:, 0]

    def _add_codes(self, lists: np.ndarray, codes: np.ndarray, ids: np.ndarray) -> None:
        """Store QET codes (n, qet.code_size) uint8 of rows in lists (n,) under new ids (n,),
        with the per-row term the scan needs appended."""
        if self.stores_beta:
            centroids = self.centroids[lists] if self.by_residual else np.zeros((len(lists), self.d), np.float32)
            r_hat = self.qet.decode(codes)
            beta = (2 * (centroids * r_hat).sum(1) + (r_hat ** 2).sum(1)).astype("<f4")
            codes = np.concatenate([codes, beta.view(np.uint8).reshape(-1, 4)], axis=1)
        self.lists.add(lists, codes, ids)

    def _decode_rows(self, rows: np.ndarray) -> np.ndarray:
        x = self.qet.decode(self.lists.codes[rows, : self.qet.code_size])
        if self.by_residual:
            x += self.centroids[self.lists.list_of(rows)]
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
            extra = self.lists.codes[:, self.qet.code_size:].copy().view("<f4").ravel()
        else:
            tables, bias = self.searcher.tables(x, "l2"), np.zeros(len(lists), np.float32)
        start, size = self.lists.start[blocks], self.lists.size[blocks]
        return adc.scan_topk(self.searcher.units, tables, self.lists.codes, extra, 1.0, start, start + size,
                             entry_ptr, query, bias, k)

    def _state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta, arrays = self.qet._state()
        return ({"quantizer": meta, "d": self.d, "nlist": self.nlist, "metric_type": self.metric_type,
                 "by_residual": self.by_residual, "nprobe": self.nprobe, "seed": self.seed},
                {**arrays, "coarse": faiss.serialize_index(self.quantizer), "centroids": self.centroids,
                 **self.lists.state()})

    @classmethod
    def _from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "IndexIVFQET":
        index = cls.__new__(cls)
        index.qet = QETQuantizer._from_state(meta["quantizer"], arrays)
        index.qet._check_state()
        index.d, index.nlist = check_positive_int(meta["d"], "d"), check_positive_int(meta["nlist"], "nlist")
        index.metric_type = metric_type(meta["metric_type"])
        index.nprobe, index.seed = check_positive_int(meta["nprobe"], "nprobe"), meta["seed"]
        index.by_residual = meta["by_residual"]
        if not isinstance(index.by_residual, bool) or index.d != index.qet.d:
            raise ValueError(f"by_residual must be a bool and d match the codec's "
                             f"(got {index.by_residual!r}, d={index.d} vs {index.qet.d})")
        index.quantizer = faiss.deserialize_index(arrays["coarse"])
        centroids = arrays["centroids"]
        if index.quantizer.d != index.d or index.quantizer.ntotal != index.nlist:
            raise ValueError(f"coarse: quantizer must hold nlist={index.nlist} centroids of d={index.d}")
        if centroids.dtype != np.float32 or centroids.shape != (index.nlist, index.d) or not \
                np.array_equal(centroids, index.quantizer.reconstruct_n(0, index.nlist)):
            raise ValueError("centroids: must be float32 (nlist, d) and equal the coarse quantizer's")
        index.centroids = centroids
        index.stores_beta = index.metric_type == faiss.METRIC_L2 and (
            index.by_residual or len(index.qet.stages) > 1)
        index.code_size = index.qet.code_size + 4 * index.stores_beta
        index.lists = InvertedLists.from_state(index.nlist, index.code_size, True, arrays)
        index._searcher = None
        return index
