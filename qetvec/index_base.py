"""What the flat and IVF indexes share: storage (`qetvec.storage.InvertedLists` in
`self.lists`), id bookkeeping with FAISS's semantics, reconstruction and the FAISS
conventions of search results. Subclasses set `codec` (a `qetvec.codec.Codec`), `lists`, `code_size`,
`d`, `metric_type`, and implement `add_with_ids`, `remove_ids`, `_rows`, `_decode_rows`.

An index can keep each row's float vector beside its code (`keeps_vectors`, switched on
by `IndexRefineFlat`): a column of `lists` that every path adding rows fills (add,
add_with_ids, merge_from), so no row is ever without its vector, however it was added."""
from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from qetvec import _idmap_kernels
from qetvec._validation import INT64_MAX, as_id_array, check_id
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


def id_range(i0: object, ni: object, ntotal: int) -> np.ndarray:
    """Ids i0 .. i0 + ni - 1 (ni,) int64 for `reconstruct_n`; KeyError, as for any absent
    id, if they cannot all be stored (more than ntotal of them, or past 2**63 - 1)."""
    i0, ni = check_id(i0, "i0"), check_id(ni, "ni")
    if ni > ntotal or i0 > INT64_MAX - ni + 1:
        raise KeyError(f"ids {i0} .. {i0} + {ni} - 1 cannot all be in an index of {ntotal} rows")
    return np.arange(i0, i0 + ni, dtype=np.int64)


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

    @property
    def keeps_vectors(self) -> bool:
        """Whether each row's float vector (d,) float32 is stored beside its code."""
        return "vectors" in self.lists.extra_columns

    def _keep_vectors(self, stored: np.ndarray | None = None) -> None:
        """Store every row's float vector from now on (`lists.vectors`, arena order, moved
        with the codes); `stored` (ntotal, d) float32 are those of the rows already stored,
        in `lists.live_rows()` order (what a file holds). Nothing to do if kept already."""
        if self.keeps_vectors:
            return
        stored = np.zeros((0, self.d), np.float32) if stored is None else stored
        if stored.shape != (self.ntotal, self.d):
            raise ValueError(f"cannot keep float vectors of the {self.ntotal} rows already stored "
                             f"from vectors of shape {stored.shape}: start from an empty index")
        self.lists.attach("vectors", (self.d,), np.float32)
        self.lists.vectors[self.lists.live_rows()] = stored

    def _vector_columns(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The columns `lists.add` needs for new rows x (n, d) float32."""
        return {"vectors": x} if self.keeps_vectors else {}

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
        return self.reconstruct_batch(id_range(i0, ni, self.ntotal))

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
        if self.keeps_vectors and not other.keeps_vectors:
            raise ValueError("cannot merge: this index keeps float vectors (IndexRefineFlat re-ranks "
                             "with them) and the other keeps no float vectors for its rows")

    def _merged_columns(self, other: Any, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The columns `lists.add` needs for `other`'s arena rows (n,) merged here."""
        return {"vectors": other.lists.vectors[rows]} if self.keeps_vectors else {}
