"""What the flat and IVF indexes share: id bookkeeping, reconstruction and the FAISS
conventions of search results. Subclasses own `quantizer`, `codes` (ntotal, code_size)
uint8, `ids` (ntotal,) int64, `code_size`, and implement `add_with_ids`, `_decode_rows`."""
from __future__ import annotations

import faiss
import numpy as np


def to_faiss_results(D: np.ndarray, rows: np.ndarray, ids: np.ndarray,
                     metric: int) -> tuple[np.ndarray, np.ndarray]:
    """FAISS conventions from minimized scores D and storage rows (nq, k): ids instead of
    rows, -1 padding, inner products with their sign restored (largest first)."""
    I = np.where(rows >= 0, ids[np.maximum(rows, 0)] if len(ids) else -1, -1)
    if metric == faiss.METRIC_INNER_PRODUCT:
        D = -D
    return D.astype(np.float32), I.astype(np.int64)


class QETIndexBase:
    """FAISS index surface common to `IndexQET` and `IndexIVFQET`."""

    quantizer: "object"
    codes: np.ndarray
    ids: np.ndarray
    code_size: int

    @property
    def ntotal(self) -> int:
        return len(self.ids)

    def sa_code_size(self) -> int:
        """Bytes stored per row (FAISS's name), every stored per-row term included."""
        return self.code_size

    def add(self, x: np.ndarray) -> None:
        """Encode and add rows x (n, d); they get ids max_id + 1 .. max_id + n (0.. when empty)."""
        start = int(self.ids.max()) + 1 if self.ntotal else 0
        self.add_with_ids(x, np.arange(start, start + len(np.asarray(x)), dtype=np.int64))

    def add_with_ids(self, x: np.ndarray, ids: np.ndarray) -> None:
        raise NotImplementedError

    def reconstruct(self, key: int) -> np.ndarray:
        """Decoded row (d,) float32 of the vector stored under id `key`."""
        where = np.flatnonzero(self.ids == key)
        if len(where) == 0:
            raise KeyError(f"id {key} is not in the index")
        return self._decode_rows(where[:1])[0]

    def reconstruct_n(self, i0: int, ni: int) -> np.ndarray:
        """Decoded rows (ni, d) float32 at storage positions i0 .. i0 + ni - 1."""
        if i0 < 0 or ni < 0 or i0 + ni > self.ntotal:
            raise ValueError(f"rows {i0}..{i0 + ni - 1} out of range for ntotal={self.ntotal}")
        return self._decode_rows(np.arange(i0, i0 + ni))

    def _decode_rows(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _check_trained(self) -> None:
        if not self.is_trained:  # type: ignore[attr-defined]
            raise RuntimeError("index is not trained: call train(x) first")
