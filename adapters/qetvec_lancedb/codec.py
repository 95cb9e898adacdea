"""`TableCodec`: everything that turns a table's vectors into stored columns, in one file.

It holds the trained `QETQuantizer`, the metric, and optionally IVF centroids (nlist, d) of a
FAISS coarse quantizer. It is registered with `qetvec.io`, so `write_index` stores all of it
in one checksummed file per table version (see `qetvec_lancedb.store`).
"""
from __future__ import annotations

import faiss
import numpy as np

from qetvec import QETQuantizer
from qetvec.io import register

from qetvec_lancedb.errors import DimensionMismatchError, NotTrainedError

METRICS = ("l2", "dot")
MAX_NLIST = 65536  # partition ids are stored as uint16


@register("LanceTableCodec")
class TableCodec:
    """A trained quantizer + metric ("l2": squared L2; "dot": 1 - <q, x>, as LanceDB) + IVF.

    Per row it produces: code uint8 (code_size,); for L2 with several stages the squared
    norm of the reconstruction as float32 (the ADC scan needs it); with IVF the partition id
    as uint16. `bytes_per_row` counts all three."""

    def __init__(self, quantizer: QETQuantizer, metric: str = "l2",
                 centroids: np.ndarray | None = None):
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        if not quantizer.is_trained:
            raise NotTrainedError(f"{quantizer} is not trained: call train(x) first or pass training data")
        if centroids is not None and (centroids.ndim != 2 or centroids.shape[1] != quantizer.d):
            raise DimensionMismatchError(f"IVF centroids have shape {centroids.shape}, expected (nlist, {quantizer.d})")
        self.quantizer = quantizer
        self.metric = metric
        self.centroids = None if centroids is None else np.ascontiguousarray(centroids, np.float32)
        self.stores_norm = metric == "l2" and len(quantizer.stages) > 1

    @classmethod
    def train(cls, x: np.ndarray, *, m: int, nbits: int = 8, levels: int = 1, stages: int = 1,
              metric: str = "l2", nlist: int | None = None, seed: int = 0) -> "TableCodec":
        """Train a quantizer (and nlist IVF centroids if nlist) on rows x (n, d) float32."""
        quantizer = QETQuantizer(x.shape[1], m, nbits=nbits, levels=levels, stages=stages, seed=seed)
        return cls(quantizer.train(x), metric, train_centroids(x, nlist, seed) if nlist else None)

    @property
    def d(self) -> int:
        return self.quantizer.d

    @property
    def nlist(self) -> int | None:
        return None if self.centroids is None else len(self.centroids)

    @property
    def bytes_per_row(self) -> int:
        """Stored bytes per row: code + norm (L2, several stages) + partition id (IVF)."""
        return self.quantizer.code_size + 4 * self.stores_norm + 2 * (self.centroids is not None)

    def encode(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Columns for rows x (n, d) float32: "code" uint8 (n, code_size), and "norm" float32
        (n,) if stores_norm, "part" uint16 (n,) if IVF."""
        out = {"code": self.quantizer.encode(x)}
        if self.stores_norm:
            out["norm"] = (self.quantizer.decode(out["code"]) ** 2).sum(1, dtype=np.float32)
        if self.centroids is not None:
            out["part"] = self.probe(x, 1)[:, 0].astype(np.uint16)
        return out

    def probe(self, x: np.ndarray, nprobe: int) -> np.ndarray:
        """The nprobe partitions (n, nprobe) int64 nearest to rows x (n, d) under the metric."""
        metric = faiss.METRIC_L2 if self.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        _, parts = faiss.knn(x, self.centroids, min(nprobe, len(self.centroids)), metric=metric)
        return parts

    def _state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta, arrays = self.quantizer._state()
        if self.centroids is not None:
            arrays = {**arrays, "ivf_centroids": self.centroids}
        return {"quantizer": meta, "metric": self.metric}, arrays

    @classmethod
    def _from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "TableCodec":
        centroids = arrays.pop("ivf_centroids", None)
        return cls(QETQuantizer._from_state(meta["quantizer"], arrays), meta["metric"], centroids)


def train_centroids(x: np.ndarray, nlist: int, seed: int) -> np.ndarray:
    """nlist k-means centroids (nlist, d) float32 of rows x (n, d), via faiss.Kmeans."""
    if not 1 <= nlist <= min(MAX_NLIST, len(x)):
        raise ValueError(f"nlist must be in 1..min({MAX_NLIST}, training rows={len(x)}), got {nlist}")
    kmeans = faiss.Kmeans(x.shape[1], nlist, niter=20, seed=seed)
    kmeans.train(x)
    return kmeans.centroids
