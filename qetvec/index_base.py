"""What the flat and IVF indexes share: storage (`qetvec.storage.InvertedLists` in
`self.lists`), id bookkeeping with FAISS's semantics, reconstruction and the FAISS
conventions of search results. Subclasses set `codec` (a `qetvec.codec.Codec`), `lists`, `code_size`,
`d`, `metric_type`, and implement `add_with_ids`, `remove_ids`, `_rows`, `_decode_rows`."""
from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from qetvec import _idmap_kernels
from qetvec._validation import as_id_array, check_id
from qetvec.storage import InvertedLists


def to_faiss_results(D: np.ndarray, rows: np.ndarray, ids: np.ndarray,
                     metric: int) -> tuple[np.ndarray, np.ndarray]:
    """FAISS conventions from minimized scores D (nq, k) float32 and arena rows (nq, k)
    int64: ids (arena row -> id map `ids`) instead of rows, -1 padding, inner products with
    their sign restored."""
    return (-D if metric == faiss.METRIC_INNER_PRODUCT else D), _idmap_kernels.ids_of_rows(rows, ids)


def selected_ids(sel: Any, lists: InvertedLists) -> np.ndarray:
    """The stored ids (n,) int64 that `remove_ids(sel)` removes: `sel` is an array-like of
    ids or a faiss.IDSelector (FAISS's API). IDSelectorArray / IDSelectorRange are read
    directly; any other selector is evaluated by FAISS itself (`IndexIDMap.remove_ids` on a
    1-d stand-in holding the stored ids), so its semantics are FAISS's exactly."""
    if not isinstance(sel, faiss.IDSelector):
        return np.unique(as_id_array(sel, "ids"))
    if isinstance(sel, faiss.IDSelectorArray):
        return np.unique(faiss.rev_swig_ptr(sel.ids, sel.n).astype(np.int64))
    stored = lists.ids[lists.live_rows()]
    if isinstance(sel, faiss.IDSelectorRange):
        return stored[(stored >= sel.imin) & (stored < sel.imax)]
    probe = faiss.IndexIDMap(faiss.IndexFlatL2(1))
    probe.add_with_ids(np.zeros((len(stored), 1), np.float32), stored)
    probe.remove_ids(sel)
    return np.setdiff1d(stored, faiss.vector_to_array(probe.id_map), assume_unique=True)


class QETIndexBase:
    """FAISS index surface common to `IndexQET` and `IndexIVFQET`."""

    codec: Any
    lists: InvertedLists
    code_size: int
    d: int
    metric_type: int

    @property
    def ntotal(self) -> int:
        return self.lists.ntotal

    def sa_code_size(self) -> int:
        """Bytes stored per row (FAISS's name), every stored per-row term included."""
        return self.code_size

    def add_with_ids(self, x: np.ndarray, ids: np.ndarray) -> None:
        raise NotImplementedError

    def reconstruct(self, key: int) -> np.ndarray:
        """Decoded row (d,) float32 of the vector stored under id `key`; KeyError if absent."""
        return self.reconstruct_batch(np.array([check_id(key)]))[0]

    def reconstruct_batch(self, keys: Any) -> np.ndarray:
        """Decoded rows (n, d) float32 of ids keys (n,); KeyError naming the first absent id."""
        keys = as_id_array(keys, "keys")
        rows = self._rows(keys)
        if (rows < 0).any():
            raise KeyError(f"id {keys[np.argmax(rows < 0)]} is not in the index")
        self._check_trained()
        return self._decode_rows(rows)

    def reconstruct_n(self, i0: int, ni: int) -> np.ndarray:
        """Decoded rows (ni, d) float32 of ids i0 .. i0 + ni - 1 (as FAISS's
        `Index::reconstruct_n`; for flat indexes in sequential mode, positions)."""
        i0, ni = check_id(i0, "i0"), check_id(ni, "ni")
        return self.reconstruct_batch(np.arange(i0, i0 + ni, dtype=np.int64))

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        """Arena rows (n,) int64 of ids (n,), -1 where absent."""
        return self.lists.find(ids)

    def _decode_rows(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _check_trained(self) -> None:
        if not self.is_trained:  # type: ignore[attr-defined]
            raise RuntimeError("index is not trained: call train(x) first")

    def _check_untrained_or_empty(self) -> None:
        """FAISS asserts ntotal == 0 before re-training: codes made with old codebooks would
        be decoded with new ones."""
        if self.ntotal:
            raise RuntimeError(f"cannot train an index holding {self.ntotal} rows (their codes "
                               "would no longer match the codebooks): reset() it first")

    def _check_mergeable(self, other: Any) -> None:
        if type(other) is not type(self):
            raise TypeError(f"cannot merge a {type(other).__name__} into a {type(self).__name__}")
        if other is self:
            raise ValueError("cannot merge an index into itself")
        if other.d != self.d or other.metric_type != self.metric_type or other.code_size != self.code_size:
            raise ValueError("cannot merge: indexes differ in d, metric or code size")
        if not (self.is_trained and other.is_trained):  # type: ignore[attr-defined]
            raise RuntimeError("cannot merge untrained indexes")
        mine, theirs = self.codec._state()[1], other.codec._state()[1]
        if type(self.codec) is not type(other.codec) or mine.keys() != theirs.keys() \
                or not all(np.array_equal(mine[k], theirs[k]) for k in mine):
            raise ValueError("cannot merge: the indexes hold different codecs (codes are only "
                             "comparable under one trained codec; train once, clone, then add)")
