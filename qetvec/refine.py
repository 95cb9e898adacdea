"""`IndexRefineFlat`: re-rank a base index's candidates with exact distances, as
`faiss.IndexRefineFlat` does, for qetvec indexes (which FAISS's C++ wrapper cannot hold).

Memory: the float vectors are kept, 4 * d bytes per row on top of the base index's codes.
"""
from __future__ import annotations

import math
from typing import Any

import faiss
import numpy as np

from qetvec import _one_query_kernels, _scan_kernels
from qetvec._validation import as_float_matrix, as_id_array, check_id, check_positive_int
from qetvec.index_base import id_range, to_faiss_results
from qetvec.io import deserialize, register, serialize
from qetvec.metric import use_faiss_thread_count


@register("IndexRefineFlat")
class IndexRefineFlat:
    """Search `base` for k_factor * k candidates, return the k best by exact distance.
    k_factor defaults to 1 as in FAISS; set it (e.g. index.k_factor = 4) to gain recall.

    The float vectors (d,) float32 are kept by the base index itself (`base.keeps_vectors`,
    switched on here): a column of its storage, in the same arena rows as the codes, which
    every path adding rows to the base fills (also `base.add` called directly) and every
    removal moves. Re-ranking reads the candidates' arena rows directly. Several wrappers
    over one base share its rows and vectors. Ids follow the base index's semantics (see
    IndexQET / IndexIVFQET)."""

    def __init__(self, base: Any, k_factor: float = 1.0):
        if not hasattr(base, "keeps_vectors") or (base.ntotal and not base.keeps_vectors):
            raise ValueError(f"base must be an empty qetvec index (or one that keeps its vectors), got "
                             f"{type(base).__name__} with {getattr(base, 'ntotal', '?')} rows")
        base._keep_vectors()
        self.base, self.k_factor = base, k_factor
        self.d, self.metric_type = base.d, base.metric_type

    base_index = property(lambda self: self.base)  # FAISS's IndexRefine names it so
    ntotal = property(lambda self: self.base.ntotal)
    is_trained = property(lambda self: self.base.is_trained)
    code_size = property(lambda self: self.base.code_size + 4 * self.d)

    @property
    def k_factor(self) -> float:
        return self._k_factor

    @k_factor.setter
    def k_factor(self, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                or not math.isfinite(value) or value < 1:
            raise ValueError(f"k_factor must be a finite number >= 1, got {value!r}")
        self._k_factor = float(value)

    @property
    def nprobe(self) -> int:
        return self.base.nprobe

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self.base.nprobe = value

    def train(self, x: np.ndarray) -> None:
        self.base.train(x)

    def add(self, x: np.ndarray) -> None:
        """Add rows x (n, d) under ids ntotal .. ntotal + n - 1 (the base's `add`, which
        keeps their vectors)."""
        self.base.add(x)

    def add_with_ids(self, x: np.ndarray, ids: np.ndarray) -> None:
        """Add rows x (n, d) under ids (n,) (the base's `add_with_ids`)."""
        self.base.add_with_ids(x, ids)

    def search(self, x: np.ndarray, k: int, *, params: Any = None,
               nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(D, I) (nq, k): base candidates re-ranked by exact L2 / inner product. `params`
        and `nprobe` go to the base's search (an IVF base; a flat one takes neither)."""
        x = as_float_matrix(x, "x", self.d, allow_empty=True)
        k = check_positive_int(k, "k")
        probing = {} if nprobe is None else {"nprobe": nprobe}
        if probing and not hasattr(self.base, "nlist"):
            raise TypeError(f"nprobe: the base {type(self.base).__name__} is flat (it scans every row)")
        _, rows = self.base._search_rows(x, max(k, math.ceil(k * self.k_factor)), params=params, **probing)
        vectors = self.base.lists.vectors  # arena order: candidates' rows index it directly
        if not len(vectors):  # nothing stored: every candidate is padding
            rows = np.full_like(rows, -1)
            vectors = np.zeros((1, self.d), np.float32)
        inner_product = self.metric_type == faiss.METRIC_INNER_PRODUCT
        if len(x) == 1:  # on the calling thread, one kernel call (as the base's one-query search)
            D, chosen = _one_query_kernels.rerank_one(x[0], vectors, rows[0], k, inner_product)
        else:
            use_faiss_thread_count()
            D, chosen = _scan_kernels.rerank(x, vectors, rows, k, inner_product)
        return to_faiss_results(D, chosen, self.base.lists.ids, self.metric_type)

    def reconstruct(self, key: int) -> np.ndarray:
        """The stored float vector (d,) float32 of id `key` (FAISS: the refine index's)."""
        return self.reconstruct_batch(np.array([check_id(key)]))[0]

    def reconstruct_batch(self, keys: Any) -> np.ndarray:
        """Stored vectors (n, d) float32 of ids keys (n,); KeyError naming an absent id."""
        keys = as_id_array(keys, "keys")
        rows = self.base._rows(keys)
        if (rows < 0).any():
            raise KeyError(f"id {keys[np.argmax(rows < 0)]} is not in the index")
        return self.base.lists.vectors[rows].copy()

    def reconstruct_n(self, i0: int, ni: int) -> np.ndarray:
        """Stored vectors (ni, d) of ids i0 .. i0 + ni - 1."""
        return self.reconstruct_batch(id_range(i0, ni, self.ntotal))

    def remove_ids(self, ids: Any) -> int:
        """Remove as the base does (the vectors move with its rows); returns how many."""
        return self.base.remove_ids(ids)

    def reset(self) -> None:
        self.base.reset()

    def merge_from(self, other: "IndexRefineFlat", add_id: int = 0) -> None:
        """Move `other`'s rows and vectors here (the base's `merge_from` rules), empty it."""
        if not isinstance(other, IndexRefineFlat):
            raise TypeError(f"cannot merge a {type(other).__name__} into an IndexRefineFlat")
        self.base.merge_from(other.base, add_id)

    def _state(self) -> tuple[dict, dict[str, np.ndarray]]:
        return ({"k_factor": self.k_factor},
                {"base": np.frombuffer(serialize(self.base), np.uint8),
                 "vectors": self.base.lists.vectors[self.base.lists.live_rows()]})

    @classmethod
    def _from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "IndexRefineFlat":
        base = deserialize(arrays["base"].tobytes(), source="IndexRefineFlat base")
        vectors = arrays["vectors"]
        if vectors.dtype != np.float32 or vectors.shape != (base.ntotal, base.d) or not np.isfinite(vectors).all():
            raise ValueError(f"vectors must be finite float32 ({base.ntotal}, {base.d}), got "
                             f"{vectors.dtype} {vectors.shape}")
        base._keep_vectors(vectors)  # the base file holds codes only (`_state`)
        index = cls.__new__(cls)
        index.base, index.k_factor = base, meta["k_factor"]
        index.d, index.metric_type = base.d, base.metric_type
        return index
