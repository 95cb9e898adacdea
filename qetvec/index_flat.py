"""`IndexQET`: a flat (exhaustive) index over the codes of any codec, searched by ADC,
FAISS-style."""
from __future__ import annotations

import copy
from typing import Any, Sequence

import faiss
import numpy as np

from qetvec import adc
from qetvec.adc import ADCSearcher
from qetvec._validation import as_float_matrix, check_id, check_positive_int, offset_ids
from qetvec.codec import Codec, codec_state, make_codec, stored_codec
from qetvec.index_base import QETIndexBase, selected_ids, to_faiss_results
from qetvec.io import register
from qetvec.metric import metric_type
from qetvec.storage import InvertedLists


@register("IndexQET")
class IndexQET(QETIndexBase):
    """Exhaustive search over the codes of a codec with the FAISS index surface.

    The codec is `codec`: a `QETQuantizer(d, m, nbits, levels, stages, codebook_bits, seed)`
    built from the settings, or any `qetvec.codec.Codec` given as `codec=` (e.g. from
    `qetvec.fit_codec`; trained or not). Stored per row: the code, plus, for L2 over
    overlapping units (residual stages), ||x_hat||^2 as float32 (4 bytes) appended to it,
    because cross-stage terms do not split over groups; both count in `code_size` (see
    `qetvec.adc`). L2 distances are squared (as FAISS reports them); inner products are
    returned largest first.

    Ids, as FAISS: an index filled by `add` behaves as `faiss.IndexFlat` / `IndexPQ`: ids
    are positions 0..ntotal-1, `remove_ids` shifts later rows down and renumbers them. An
    index filled by `add_with_ids` behaves as `faiss.IndexIDMap2` around one: user ids are
    kept, never renumbered, and `add` is refused. The mode (`user_ids`) is chosen by the
    first add into an empty index. Rows live in one list of `lists` (`InvertedLists`)."""

    def __init__(self, d: int, m: int | Sequence[Any] | None = None, nbits: int | Sequence[Any] = 8,
                 levels: int | Sequence[int] = 1, stages: int = 1, metric: str | int = "l2",
                 codebook_bits: int | None = None, seed: int = 0, *, codec: Codec | None = None):
        self.codec = make_codec(d, codec, m=m, nbits=nbits, levels=levels, stages=stages,
                                codebook_bits=codebook_bits, seed=seed)
        self.d = d
        self.metric_type = metric_type(metric)
        self.code_size = self.codec.code_size + adc.row_term_bytes(self.codec, self.metric_type)
        self.user_ids = False
        self.lists = InvertedLists(1, self.code_size, track_ids=False)
        self._searcher: ADCSearcher | None = None

    @property
    def is_trained(self) -> bool:
        return self.codec.is_trained

    def train(self, x: np.ndarray) -> None:
        """Learn the codebooks from rows x (n, d). Refused once rows are stored; a failing
        train leaves the previous codebooks as they were."""
        self._check_untrained_or_empty()
        self.codec, self._searcher = copy.deepcopy(self.codec).train(x), None
        self.code_size = self.codec.code_size + adc.row_term_bytes(self.codec, self.metric_type)
        if self.lists.code_size != self.code_size:  # a codec chosen at training time
            self.lists.set_code_size(self.code_size)

    def add(self, x: np.ndarray) -> None:
        """Encode and append rows x (n, d) under ids ntotal .. ntotal + n - 1 (FAISS)."""
        x = as_float_matrix(x, "x", self.d, allow_empty=True)
        if self.user_ids and self.ntotal:
            raise RuntimeError("this IndexQET holds user ids (filled by add_with_ids, "
                               "IndexIDMap2 semantics): use add_with_ids")
        self._append(x, np.arange(self.ntotal, self.ntotal + len(x), dtype=np.int64), user_ids=False)

    def add_with_ids(self, x: np.ndarray, ids: np.ndarray) -> None:
        """Encode and append rows x (n, d) under the user ids (n,) (IndexIDMap2 semantics:
        only on an empty index or one filled by add_with_ids; ids distinct, >= 0, new)."""
        x = as_float_matrix(x, "x", self.d, allow_empty=True)
        ids = self.lists.check_new_ids(ids, len(x))  # before encoding; `lists.add` checks again
        if self.ntotal and not self.user_ids:
            raise RuntimeError("this IndexQET holds sequential ids (filled by add, IndexFlat "
                               "semantics: ids are positions): add_with_ids needs an empty index")
        self._append(x, ids, user_ids=True)

    def remove_ids(self, ids: Any) -> int:
        """Remove the rows under `ids` (array-like of ints or a faiss.IDSelector); returns
        how many. Later rows shift down; in sequential mode they are renumbered (FAISS)."""
        rows = self._rows(selected_ids(ids, self.lists))
        rows = rows[rows >= 0]
        self.lists.remove_ordered(0, rows)
        if not self.user_ids:
            self.lists.ids[:self.ntotal] = np.arange(self.ntotal)
        return len(rows)

    def reset(self) -> None:
        """Remove every row (codebooks stay trained)."""
        self.lists.reset()

    def merge_from(self, other: "IndexQET", add_id: int = 0) -> None:
        """Move every row of `other` (same codebooks) here, as FAISS's `merge_from`: rows
        are appended in order and `other` is emptied. Sequential mode: they get ids
        ntotal..; add_id must be 0 (FAISS: "cannot set ids in FlatCodes index"). User-id
        mode (IndexIDMap2): ids + add_id, which must not clash with stored ones."""
        self._check_mergeable(other)
        add_id = check_id(add_id, "add_id")
        user_ids = self.user_ids if self.ntotal else other.user_ids
        if other.ntotal and other.user_ids != user_ids:
            raise ValueError("cannot merge an index with user ids and one with sequential ids")
        rows = other.lists.live_rows()
        if user_ids:
            ids = offset_ids(other.lists.ids[rows], add_id)
        elif add_id:
            raise ValueError("add_id must be 0 for sequential-id indexes (as in FAISS)")
        else:
            ids = np.arange(self.ntotal, self.ntotal + len(rows), dtype=np.int64)
        self._store(other.lists.codes[rows], ids, user_ids, self._merged_columns(other, rows))
        other.reset()

    def _append(self, x: np.ndarray, ids: np.ndarray, user_ids: bool) -> None:
        self._check_trained()
        self._store(self.searcher.encode(x), ids, user_ids, self._vector_columns(x))

    def _store(self, codes: np.ndarray, ids: np.ndarray, user_ids: bool,
               columns: dict[str, np.ndarray]) -> None:
        """Append encoded rows (and their `columns`, see `lists.add`, which checks the ids);
        switches id mode only while empty (then lists are rebuilt)."""
        if self.ntotal == 0 and user_ids != self.user_ids:
            self.user_ids = user_ids
            self.lists.reset(track_ids=user_ids)
        self.lists.add(np.zeros(len(ids), np.int64), codes, ids, columns)

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        if self.user_ids:
            return self.lists.find(ids)
        inside = (ids >= 0) & (ids < self.ntotal)
        return np.where(inside, ids + self.lists.start[0], -1)

    def search(self, x: np.ndarray, k: int, *, params: None = None) -> tuple[np.ndarray, np.ndarray]:
        """(D float32 (nq, k), I int64 (nq, k)) of the k nearest stored rows per query;
        padded with -1 ids (and +inf L2 / -inf IP distances) when k > ntotal. `params`
        must be None: as FAISS's IndexPQ, a flat scan takes no search parameters."""
        x = as_float_matrix(x, "x", self.d, allow_empty=True)
        return to_faiss_results(*self._search_rows(x, k, params=params), self.lists.ids, self.metric_type)

    def _search_rows(self, x: np.ndarray, k: int, *, params: None = None) -> tuple[np.ndarray, np.ndarray]:
        """`search` of validated queries x (nq, d) in arena rows: (minimized scores,
        rows) (nq, k), -1 padded (what `IndexRefineFlat` re-ranks)."""
        if params is not None:
            raise TypeError(f"IndexQET.search takes no search parameters, got {type(params).__name__} "
                            "(FAISS's IndexPQ refuses them too)")
        k = check_positive_int(k, "k")
        self._check_trained()
        return self._scan(x, k)

    def distances(self, x: np.ndarray) -> np.ndarray:
        """ADC distances (nq, ntotal) float32 of queries x to every stored row, storage order
        (L2: squared distances; IP: inner products). For tests and small n."""
        x = as_float_matrix(x, "x", self.d)
        self._check_trained()
        D, rows = self._scan(x, max(1, self.ntotal))
        out = np.empty((len(x), self.ntotal), np.float32)  # storage order: row - first row
        np.put_along_axis(out, rows[:, : self.ntotal] - self.lists.start[0], D[:, : self.ntotal], axis=1)
        return -out if self.metric_type == faiss.METRIC_INNER_PRODUCT else out

    # -- internals ---------------------------------------------------------------------
    @property
    def searcher(self) -> ADCSearcher:
        if self._searcher is None:
            self._searcher = ADCSearcher(self.codec, self.metric_type)
        return self._searcher

    def _scan(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(minimized scores, arena rows) (nq, k) of validated queries: the index is one list."""
        return adc.search_blocks(self.searcher, x, self.lists.codes, self.lists.start, self.lists.size,
                                 np.zeros((len(x), 1), np.int64), k)

    def _decode_rows(self, rows: np.ndarray) -> np.ndarray:
        return self.searcher.decode(self.lists.codes[rows])

    def _state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta, arrays = codec_state(self.codec)
        return ({"codec": meta, "metric_type": self.metric_type, "user_ids": self.user_ids},
                {**arrays, **self.lists.state()})

    @classmethod
    def _from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "IndexQET":
        codec = stored_codec(meta, arrays)
        index = cls.__new__(cls)
        index.codec, index.d, index.metric_type = codec, codec.d, metric_type(meta["metric_type"])
        index.user_ids = meta["user_ids"]
        if not isinstance(index.user_ids, bool):
            raise ValueError(f"user_ids must be a bool, got {index.user_ids!r}")
        index.code_size = codec.code_size + adc.row_term_bytes(codec, index.metric_type)
        index.lists = InvertedLists.from_state(1, index.code_size, index.user_ids, arrays)
        if not index.user_ids and not np.array_equal(index.lists.ids, np.arange(index.ntotal)):
            raise ValueError("ids of a sequential-id IndexQET must be 0..ntotal-1")
        index._searcher = None
        return index
