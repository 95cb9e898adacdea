"""`IndexIVFQET`: inverted file over the codes of any codec, with any FAISS index as coarse
quantizer.

Lists live in one growable arena (`qetvec.storage.InvertedLists`, `self.lists`): list l is
the contiguous rows lists.codes[lists.start[l] : lists.start[l] + lists.size[l]], their ids
in lists.ids; no Python object per vector, amortized O(1) appends, O(1) id lookups.

Scores (x_hat = c + r_hat, c the list centroid, r_hat the decoded residual) come from
`qetvec.adc`: exact tables per (query, probed list), built from a per-query table and a
per-list table computed once (nlist x table_size float32 of shared state, FAISS IVF-PQ's
precomputed table), so a single-stage code stores nothing but the code; L2 over several
stages adds ||r_hat||^2 as float32 (4 bytes, counted in `code_size`).

With `precompute_rows` (off by default: it trades memory for speed, as FAISS's precomputed
tables do), each row's table entries and the list-dependent part of its score are kept in
memory beside its code (2 bytes per lookup unit, 4 past 65,536 table entries, + 4 per row;
`adc.unpack_index`, `adc.row_terms`; derived, never written to a file), so a search builds
one table per query instead of one per (query, probed list) and unpacks no bits
(`adc.search_unpacked`).
"""
from __future__ import annotations

import copy
import warnings
from typing import Any, Sequence

import faiss
import numpy as np

from qetvec import adc, faiss_threads
from qetvec.adc import ADCSearcher
from qetvec._validation import (as_float_matrix, check_bool, check_positive_int, check_seed,
                                check_training_scale, offset_ids)
from qetvec.codebooks import train_kmeans
from qetvec.codec import Codec, codec_state, make_codec, stored_codec
from qetvec.index_base import QETIndexBase, selected_ids, to_faiss_results
from qetvec.io import register
from qetvec.metric import metric_type
from qetvec.storage import InvertedLists

PRECOMPUTED_COLUMNS = ("entries", "terms")  # `lists` columns kept with `precompute_rows`


def ivf_search_params(params: Any) -> tuple[int | None, Any]:
    """(nprobe or None, the coarse quantizer's search params) of `params`, None or a
    faiss.SearchParametersIVF. Other types raise TypeError (FAISS's IndexIVF refuses them:
    "params have incorrect type"); fields the scan cannot honour (`sel`, `max_codes`) raise
    ValueError rather than give unfiltered or unbounded results without a word."""
    if params is None:
        return None, None
    if not isinstance(params, faiss.SearchParametersIVF):
        raise TypeError(f"params must be a faiss.SearchParametersIVF, got {type(params).__name__} "
                        "(FAISS's IndexIVF refuses other types too)")
    if params.sel is not None:
        raise ValueError("params.sel: search-time id selectors are not supported by qetvec indexes "
                         "(the results would not be filtered); remove_ids or a separate index instead")
    if params.max_codes:
        raise ValueError(f"params.max_codes={params.max_codes} is not supported: qetvec scans every "
                         "code of the probed lists (set nprobe instead)")
    return params.nprobe, params.quantizer_params


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
    codec `codec` codes the residuals: a `QETQuantizer(d, m, nbits, levels, stages,
    codebook_bits, seed)` built from the settings, or any `qetvec.codec.Codec` given as
    `codec=` (trained on the residuals by `train`). (`coarse` is a deprecated alias of
    `quantizer`.)

    `nprobe` (default 1, as in FAISS; values above nlist are clamped to nlist as FAISS
    does) lists are scanned per query; override per call with `search(x, k, nprobe=...)` or
    `search(x, k, params=faiss.SearchParametersIVF(nprobe=...))`.

    Ids, as FAISS's IndexIVF: `add` assigns ntotal .. ntotal + n - 1, `add_with_ids` keeps
    user ids, `remove_ids` never renumbers. Unlike FAISS, an id is never stored twice:
    `add_with_ids` with a stored id, or an `add` whose ntotal-based ids clash with stored ones
    (possible after `remove_ids`), raises ValueError. Rows live in `lists` (InvertedLists)."""

    def __init__(self, quantizer: faiss.Index, d: int, nlist: int, m: int | Sequence[Any] | None = None,
                 nbits: int | Sequence[Any] = 8, levels: int | Sequence[int] = 1, stages: int = 1,
                 metric: str | int = "l2", by_residual: bool = True,
                 codebook_bits: int | None = None, seed: int = 0, *, codec: Codec | None = None):
        if not isinstance(quantizer, faiss.Index) or quantizer.d != d:
            raise ValueError(f"quantizer must be a faiss.Index of dimension d={d}, got {quantizer!r}")
        self.quantizer = quantizer
        self.d, self.nlist = d, check_positive_int(nlist, "nlist")
        self.metric_type = metric_type(metric)
        self._by_residual = check_bool(by_residual, "by_residual")
        self.nprobe = 1
        self.seed = check_seed(seed)
        self.codec = make_codec(d, codec, m=m, nbits=nbits, levels=levels, stages=stages,
                                codebook_bits=codebook_bits, seed=seed)
        self.code_size = self.codec.code_size + adc.row_term_bytes(self.codec, self.metric_type)
        self.centroids = np.zeros((0, d), np.float32)
        self.lists = InvertedLists(self.nlist, self.code_size)
        self._searcher: ADCSearcher | None = None

    @property
    def coarse(self) -> faiss.Index:
        """Deprecated alias of `quantizer` (the coarse FAISS index), kept for one release."""
        warnings.warn("IndexIVFQET.coarse is deprecated: use .quantizer (FAISS's name); the "
                      "codec is .codec", DeprecationWarning, stacklevel=2)
        return self.quantizer

    @property
    def is_trained(self) -> bool:
        return len(self.centroids) == self.nlist and self.codec.is_trained

    @property
    def nprobe(self) -> int:
        """Lists scanned per query (default 1); an integer >= 1, checked when set."""
        return self._nprobe

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self._nprobe = check_positive_int(value, "nprobe")

    @property
    def by_residual(self) -> bool:
        """Whether rows are coded as residuals to their list centroid (FAISS's by_residual).
        Set before training: the codebooks are trained for one or the other."""
        return self._by_residual

    @by_residual.setter
    def by_residual(self, value: bool) -> None:
        value = check_bool(value, "by_residual")
        if value != self._by_residual and self.codec.is_trained:
            raise RuntimeError("by_residual cannot change once the codebooks are trained (they were "
                               "trained on the other kind of vectors): set it before train()")
        self._by_residual = value

    @property
    def precompute_rows(self) -> bool:
        """Whether each row's table entries and list term are kept in memory for the scan
        (2 bytes per lookup unit + 4 per row, `lists.entries` / `lists.terms`): one table per
        query instead of one per (query, list), no bit unpacking; same results up to float
        rounding. Off by default; switching it on computes them for the stored rows. Needs a
        trained codec with lookup units; kept through `train` (recomputed for the new codec)
        and saved as a setting by `qetvec.io` (the arrays are rebuilt on reading)."""
        return "entries" in self.lists.extra_columns

    @precompute_rows.setter
    def precompute_rows(self, value: bool) -> None:
        if check_bool(value, "precompute_rows") == self.precompute_rows:
            return
        if not value:
            for name in PRECOMPUTED_COLUMNS:
                self.lists.detach(name)
            return
        self._check_trained()
        if self.searcher.units is None:
            raise ValueError(f"precompute_rows: {self.codec} has no lookup units (its tables would be too "
                             "large; the search decodes rows)")
        rows = self.lists.live_rows()
        values = self._precomputed(self.lists.codes[rows], self.lists.list_of(rows))
        for name in PRECOMPUTED_COLUMNS:
            self.lists.attach(name, values[name].shape[1:], values[name].dtype)
            getattr(self.lists, name)[rows] = values[name]

    @property
    def precomputed_bytes_per_row(self) -> int:
        """Memory per row that `precompute_rows` adds (its entries and term), 0 when off."""
        if not self.precompute_rows:
            return 0
        return self.lists.entries.itemsize * self.lists.entries.shape[1] + self.lists.terms.itemsize

    def train(self, x: np.ndarray) -> None:
        """k-means the coarse centroids (unless the quantizer already holds nlist of them),
        then train the codec on the residuals. Refused once rows are stored (as FAISS); trains
        copies and swaps them in at the end, so a failure leaves the index as it was."""
        self._check_untrained_or_empty()
        x = as_float_matrix(x, "x", self.d)
        check_training_scale(x)
        kmeans = None
        coarse = self.quantizer
        if coarse.ntotal != self.nlist:
            if len(x) < self.nlist:
                raise ValueError(f"x has {len(x)} rows, fewer than nlist={self.nlist}")
            kmeans = train_kmeans(x, self.nlist, self.seed)
            coarse = _fill(faiss.clone_index(self.quantizer), kmeans)
        centroids = coarse.reconstruct_n(0, self.nlist).astype(np.float32)
        codec = copy.deepcopy(self.codec).train(x - centroids[faiss_threads.search(coarse, x, 1)[1][:, 0]]
                                                 if self.by_residual else x)
        if self.precompute_rows and codec.lookup_units() is None:
            raise ValueError(f"precompute_rows: the trained {codec} has no lookup units (its tables would be "
                             "too large); switch precompute_rows off to train it")
        if kmeans is not None:  # nothing failed: fill the caller's quantizer, as FAISS does
            _fill(self.quantizer, kmeans)
        precompute, self.precompute_rows = self.precompute_rows, False  # columns of the old codec
        self.centroids, self.codec, self._searcher = centroids, codec, None
        self.code_size = codec.code_size + adc.row_term_bytes(codec, self.metric_type)
        if self.lists.code_size != self.code_size:  # a codec chosen at training time
            self.lists.set_code_size(self.code_size)
        self.precompute_rows = precompute

    def add(self, x: np.ndarray) -> None:
        """Encode rows x (n, d) under ids ntotal .. ntotal + n - 1 (FAISS's IndexIVF::add)."""
        x = as_float_matrix(x, "x", self.d, allow_empty=True)
        self.add_with_ids(x, np.arange(self.ntotal, self.ntotal + len(x), dtype=np.int64))

    def add_with_ids(self, x: np.ndarray, ids: np.ndarray) -> None:
        """Encode rows x (n, d), store them under `ids` (n,) int64 in their lists; ids
        distinct, >= 0 and not stored yet."""
        x = as_float_matrix(x, "x", self.d, allow_empty=True)
        ids = self.lists.check_new_ids(ids, len(x))  # before encoding; `lists.add` checks again
        self._check_trained()
        lists = self._assign(x)
        codes = self.searcher.encode(x, lists)
        self.lists.add(lists, codes, ids, {**self._vector_columns(x), **self._precomputed_columns(codes, lists)})

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
        rows = other.lists.live_rows()
        ids = offset_ids(other.lists.ids[rows], add_id)
        lists, codes = other.lists.list_of(rows), other.lists.codes[rows]
        self.lists.add(lists, codes, ids, {**self._merged_columns(other, rows), **self._precomputed_columns(codes, lists)})
        other.reset()

    def search(self, x: np.ndarray, k: int, *, params: faiss.SearchParametersIVF | None = None,
               nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(D float32 (nq, k), I int64 (nq, k)) over the `nprobe` nearest lists, -1 padded."""
        x = as_float_matrix(x, "x", self.d, allow_empty=True)
        return to_faiss_results(*self._search_rows(x, k, params=params, nprobe=nprobe), self.lists.ids,
                                self.metric_type)

    def _search_rows(self, x: np.ndarray, k: int, *, params: faiss.SearchParametersIVF | None = None,
                     nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """`search` of validated queries x (nq, d) in arena rows: (minimized scores,
        rows) (nq, k), -1 padded (what `IndexRefineFlat` re-ranks)."""
        k = check_positive_int(k, "k")
        params_nprobe, coarse_params = ivf_search_params(params)
        nprobe = next(p for p in (nprobe, params_nprobe, self.nprobe) if p is not None)
        nprobe = min(check_positive_int(nprobe, "nprobe"), self.nlist)  # FAISS clamps to nlist
        self._check_trained()
        _, probes = faiss_threads.search(self.quantizer, x, nprobe, coarse_params)  # (nq, nprobe), -1: fewer lists
        return self._scan(x, probes, k)

    # -- internals ---------------------------------------------------------------------
    @property
    def searcher(self) -> ADCSearcher:
        if self._searcher is None:
            self._searcher = ADCSearcher(self.codec, self.metric_type,
                                         self.centroids if self.by_residual else None)
        return self._searcher

    def _assign(self, x: np.ndarray) -> np.ndarray:
        return faiss_threads.search(self.quantizer, x, 1)[1][:, 0]

    def _decode_rows(self, rows: np.ndarray) -> np.ndarray:
        return self.searcher.decode(self.lists.codes[rows], self.lists.list_of(rows))

    def _scan(self, x: np.ndarray, probes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(minimized scores, arena rows) (nq, k) of validated queries x over their probed lists."""
        if self.precompute_rows:
            return adc.search_unpacked(self.searcher, x, self.lists.entries, self.lists.terms, self.lists.start,
                                       self.lists.size, probes, k)
        return adc.search_blocks(self.searcher, x, self.lists.codes, self.lists.start, self.lists.size,
                                 probes, k)

    def _precomputed_columns(self, codes: np.ndarray, lists: np.ndarray) -> dict[str, np.ndarray]:
        """`_precomputed` of new rows when `precompute_rows` is on, else {}."""
        return self._precomputed(codes, lists) if self.precompute_rows else {}

    def _precomputed(self, codes: np.ndarray, lists: np.ndarray) -> dict[str, np.ndarray]:
        """The `precompute_rows` columns of stored rows codes (n, code_size) in lists (n,):
        entries (n, U) uint16 / int32 and terms (n,) float32."""
        searcher = self.searcher
        entries = adc.unpack_index(searcher, codes)
        norms = None if searcher.term_offset < 0 else \
            np.ascontiguousarray(codes[:, searcher.term_offset:searcher.term_offset + 4]).view("<f4")[:, 0]
        return {"entries": entries, "terms": adc.row_terms(searcher, entries, lists, norms)}

    def _state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta, arrays = codec_state(self.codec)
        return ({"codec": meta, "d": self.d, "nlist": self.nlist, "metric_type": self.metric_type,
                 "by_residual": self.by_residual, "nprobe": self.nprobe, "seed": self.seed,
                 "precompute_rows": self.precompute_rows},
                {**arrays, "coarse": faiss.serialize_index(self.quantizer), "centroids": self.centroids,
                 **self.lists.state()})

    @classmethod
    def _from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "IndexIVFQET":
        """Inverse of `_state`, trained or not, refusing what `_state` would not write."""
        index = cls.__new__(cls)
        index.codec = stored_codec(meta, arrays)
        index.d, index.nlist = check_positive_int(meta["d"], "d"), check_positive_int(meta["nlist"], "nlist")
        if index.d != index.codec.d:
            raise ValueError(f"d={index.d} differs from the codec's d={index.codec.d}")
        index.metric_type = metric_type(meta["metric_type"])
        index.nprobe, index.seed = meta["nprobe"], check_seed(meta["seed"])
        index._by_residual = check_bool(meta["by_residual"], "by_residual")
        try:
            index.quantizer = faiss.deserialize_index(arrays["coarse"])
        except RuntimeError as err:
            raise ValueError(f"coarse: FAISS cannot read the coarse quantizer ({err})") from err
        if index.quantizer.d != index.d:
            raise ValueError(f"coarse: quantizer has d={index.quantizer.d}, expected d={index.d}")
        trained = index.codec.is_trained  # `train` sets the codec and the centroids together
        nlist = index.nlist if trained else 0
        centroids = arrays["centroids"]
        if centroids.dtype != np.float32 or centroids.shape != (nlist, index.d):
            raise ValueError(f"centroids: must be float32 ({nlist}, {index.d}) for a "
                             f"{'trained' if trained else 'untrained'} index, got {centroids.dtype} {centroids.shape}")
        if trained and (index.quantizer.ntotal != nlist or not np.array_equal(
                centroids, index.quantizer.reconstruct_n(0, nlist))):
            raise ValueError(f"centroids: the coarse quantizer must hold exactly these nlist={nlist} centroids")
        index.centroids = centroids
        index.code_size = index.codec.code_size + adc.row_term_bytes(index.codec, index.metric_type)
        index.lists = InvertedLists.from_state(index.nlist, index.code_size, True, arrays)
        if index.ntotal and not trained:
            raise ValueError(f"list_sizes: an untrained index holds no rows, got {index.ntotal}")
        index._searcher = None
        index.precompute_rows = check_bool(meta.get("precompute_rows", False), "precompute_rows")  # older files: off
        return index
