"""`IndexRefineFlat`: re-rank a base index's candidates with exact distances, as
`faiss.IndexRefineFlat` does, for qetvec indexes (which FAISS's C++ wrapper cannot hold).

Memory: the float vectors are kept, 4 * d bytes per row on top of the base index's codes.
"""
from __future__ import annotations

import math
from typing import Any

import faiss
import numpy as np

from qetvec._validation import as_float_matrix, as_ids, check_positive_int
from qetvec.io import deserialize, register, serialize
from qetvec.metric import use_faiss_thread_count


@register("IndexRefineFlat")
class IndexRefineFlat:
    """Search `base` for k_factor * k candidates, return the k best by exact distance.
    k_factor defaults to 1 as in FAISS; set it (e.g. index.k_factor = 4) to gain recall."""

    def __init__(self, base: Any, k_factor: float = 1.0):
        self.base, self.k_factor = base, k_factor
        self.d, self.metric_type = base.d, base.metric_type
        self.vectors = np.empty((0, self.d), np.float32)
        self.ids = np.empty(0, np.int64)

    ntotal = property(lambda self: self.base.ntotal)
    is_trained = property(lambda self: self.base.is_trained)
    code_size = property(lambda self: self.base.code_size + 4 * self.d)

    @property
    def nprobe(self) -> int:
        return self.base.nprobe

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self.base.nprobe = value

    def train(self, x: np.ndarray) -> None:
        self.base.train(x)

    def add(self, x: np.ndarray) -> None:
        start = int(self.ids.max()) + 1 if len(self.ids) else 0
        self.add_with_ids(x, np.arange(start, start + len(np.asarray(x)), dtype=np.int64))

    def add_with_ids(self, x: np.ndarray, ids: np.ndarray) -> None:
        x = as_float_matrix(x, "x", self.d, allow_empty=True)
        ids = as_ids(ids, len(x))
        self.base.add_with_ids(x, ids)
        self.vectors, self.ids = np.concatenate([self.vectors, x]), np.concatenate([self.ids, ids])

    def search(self, x: np.ndarray, k: int, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        """(D, I) (nq, k): base candidates re-ranked by exact L2 / inner product."""
        x = as_float_matrix(x, "x", self.d)
        k = check_positive_int(k, "k")
        _, cand = self.base.search(x, max(k, math.ceil(k * self.k_factor)), **kwargs)
        use_faiss_thread_count()
        order = np.argsort(self.ids)
        rows = order[np.searchsorted(self.ids, np.maximum(cand, 0), sorter=order)]
        vec = self.vectors[rows]  # (nq, k', d)
        if self.metric_type == faiss.METRIC_L2:
            dist = ((vec - x[:, None, :]) ** 2).sum(-1)
        else:
            dist = -(vec * x[:, None, :]).sum(-1)
        dist[cand < 0] = np.inf
        best = np.argsort(dist, axis=1, kind="stable")[:, :k]
        D = np.take_along_axis(dist, best, 1)
        I = np.where(np.isinf(D), -1, np.take_along_axis(cand, best, 1))
        D = -D if self.metric_type == faiss.METRIC_INNER_PRODUCT else D
        return D.astype(np.float32), I.astype(np.int64)

    def reconstruct(self, key: int) -> np.ndarray:
        return self.base.reconstruct(key)

    def remove_ids(self, ids: Any) -> int:
        keep = ~np.isin(self.ids, np.asarray(ids, dtype=np.int64))
        self.vectors, self.ids = self.vectors[keep], self.ids[keep]
        return self.base.remove_ids(ids)

    def reset(self) -> None:
        self.base.reset()
        self.vectors, self.ids = self.vectors[:0], self.ids[:0]

    def _state(self) -> tuple[dict, dict[str, np.ndarray]]:
        return ({"k_factor": self.k_factor},
                {"base": np.frombuffer(serialize(self.base), np.uint8), "vectors": self.vectors,
                 "ids": self.ids})

    @classmethod
    def _from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "IndexRefineFlat":
        index = cls(deserialize(arrays["base"].tobytes()), meta["k_factor"])
        index.vectors, index.ids = arrays["vectors"], arrays["ids"]
        return index
