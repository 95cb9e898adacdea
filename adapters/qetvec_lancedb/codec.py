"""`TableCodec`: everything that turns a table's vectors into stored columns, in one file.

It holds the trained vector codec (any `qetvec.codec.Codec`: a `QETQuantizer`, a
`qetvec.fit_codec` result...), the metric, and optionally IVF centroids (nlist, d)
trained by k-means (`qetvec.codebooks.train_kmeans`). With IVF, rows are encoded by their
residual to the partition centroid (x - c_p, as LanceDB's IVF_PQ and FAISS's IVFPQ do), so
the code bits spend their precision inside the partition. It is registered with
`qetvec.io`, so `write_index` stores all of it in one checksummed file (see
`qetvec_lancedb.store`).
"""
from __future__ import annotations

import faiss
import numpy as np

from qetvec import QETQuantizer, faiss_threads
from qetvec._validation import as_float_matrix, check_bool, check_positive_int
from qetvec.codebooks import train_kmeans
from qetvec.codec import Codec, codec_state, stored_codec
from qetvec.fit import FitCodec
from qetvec.io import register

from qetvec_lancedb.errors import DimensionMismatchError, NotTrainedError

METRICS = ("l2", "dot")
MAX_NLIST = 65536  # partition ids are stored as uint16 at most


@register("LanceTableCodec")
class TableCodec:
    """A trained codec + metric ("l2": squared L2; "dot": 1 - <q, x>, as LanceDB) + IVF.

    Per row it produces: code uint8 (code_size,) of x, or of x - c_p with IVF (by_residual);
    for L2 over overlapping units (`Codec.per_row_norm`) and no residual the squared norm of
    the reconstruction as float32 (the ADC scan needs it); with IVF the partition id p as
    `part_dtype` (uint8 for nlist <= 256, else uint16). `bytes_per_row` counts all three."""

    def __init__(self, codec: Codec, metric: str = "l2",
                 centroids: np.ndarray | None = None, by_residual: bool = False):
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        if not isinstance(codec, Codec):
            raise TypeError(f"codec must be a qetvec.codec.Codec, got {type(codec).__name__}")
        if not codec.is_trained:
            raise NotTrainedError(f"{codec} is not trained: call train(x) first or pass training data")
        if centroids is not None and (centroids.ndim != 2 or centroids.shape[1] != codec.d
                                      or not 1 <= len(centroids) <= MAX_NLIST):
            raise DimensionMismatchError(f"IVF centroids have shape {centroids.shape}, expected "
                                         f"(nlist, {codec.d}) with 1 <= nlist <= {MAX_NLIST}")
        if by_residual and centroids is None:
            raise ValueError("by_residual needs IVF centroids")
        self.codec = codec
        self.metric = metric
        self.centroids = None if centroids is None else np.ascontiguousarray(centroids, np.float32)
        self.by_residual = by_residual
        # overlapping units, L2, no residual: the scan needs ||x_hat||^2 per row, stored (residual
        # L2 derives its per-row term from the codes instead: `residual_norms`)
        self.stores_norm = metric == "l2" and codec.per_row_norm and not by_residual

    @classmethod
    def train(cls, x: np.ndarray, *, codec: Codec | None = None, m: int | None = None, nbits: int = 8,
              levels: int = 1, stages: int = 1, metric: str = "l2", nlist: int | None = None,
              seed: int = 0) -> "TableCodec":
        """Train nlist IVF centroids (if nlist) and then `codec` (default: a new
        QETQuantizer(d, m, nbits, levels, stages)) on the residuals of rows x (n, d) float32
        to their nearest centroid (on x itself without IVF)."""
        if codec is None:
            codec = QETQuantizer(x.shape[1], m, nbits=nbits, levels=levels, stages=stages, seed=seed)
        if nlist is None:
            return cls(codec.train(x), metric)
        centroids = train_centroids(x, nlist, seed)
        parts = nearest_partitions(x, centroids, metric, 1)[:, 0]
        return cls(codec.train(x - centroids[parts]), metric, centroids, by_residual=True)

    @property
    def d(self) -> int:
        return self.codec.d

    @property
    def nlist(self) -> int | None:
        return None if self.centroids is None else len(self.centroids)

    @property
    def part_dtype(self) -> np.dtype:
        """uint8 when partition ids fit in one byte, else uint16."""
        return np.dtype(np.uint8 if (self.nlist or 0) <= 256 else np.uint16)

    @property
    def bytes_per_row(self) -> int:
        """Stored bytes per row: code + norm (L2, several stages) + partition id (IVF)."""
        part = self.part_dtype.itemsize if self.centroids is not None else 0
        return self.codec.code_size + 4 * self.stores_norm + part

    def encode(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Columns for rows x (n, d) float32: "code" uint8 (n, code_size), and "norm" float32
        (n,) if stores_norm, "part" part_dtype (n,) if IVF. Refuses NaN / inf (ValueError)
        before assigning partitions."""
        x = as_float_matrix(x, "vectors", self.d)
        out: dict[str, np.ndarray] = {}
        if self.centroids is not None:
            out["part"] = self.probe(x, 1)[:, 0].astype(self.part_dtype)
        residual = x - self.centroids[out["part"]] if self.by_residual else x
        out["code"] = self.codec.encode(residual)
        if self.stores_norm:
            out["norm"] = (self.codec.decode(out["code"]) ** 2).sum(1, dtype=np.float32)
        return out

    def decode(self, codes: np.ndarray, parts: np.ndarray | None) -> np.ndarray:
        """Reconstructions float32 (n, d) of codes uint8 (n, code_size) in partitions (n,)."""
        x = self.codec.decode(codes)
        return x + self.centroids[parts] if self.by_residual else x

    def residual_norms(self, codes: np.ndarray) -> np.ndarray:
        """||r_hat||^2 (n,) float32 of residual codes uint8 (n, code_size): the per-row term
        of L2 over several stages (`qetvec.adc`), derived from the codes, not stored."""
        norms = np.empty(len(codes), np.float32)
        for a in range(0, len(codes), 65536):
            norms[a:a + 65536] = (self.codec.decode(codes[a:a + 65536]) ** 2).sum(1)
        return norms

    def probe(self, x: np.ndarray, nprobe: int) -> np.ndarray:
        """The nprobe partitions (n, min(nprobe, nlist)) int64 nearest to rows x (n, d)."""
        return nearest_partitions(x, self.centroids, self.metric, nprobe)

    def _state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta, arrays = codec_state(self.codec)
        if self.centroids is not None:
            arrays = {**arrays, "ivf_centroids": self.centroids}
        return {"codec": meta, "metric": self.metric, "by_residual": self.by_residual}, arrays

    @classmethod
    def _from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "TableCodec":
        centroids = arrays["ivf_centroids"] if "ivf_centroids" in arrays else None
        if centroids is not None and (centroids.dtype != np.float32 or not np.isfinite(centroids).all()):
            raise ValueError(f"ivf_centroids must be finite float32, got {centroids.dtype}")
        by_residual = check_bool(meta.get("by_residual", False), "by_residual")  # files before residual encoding: False
        return cls(stored_codec(meta, arrays), meta["metric"], centroids, by_residual)


def budget_codec(d: int, bytes_per_row: int, metric: str, nlist: int | None, seed: int = 0) -> FitCodec:
    """The codec chosen at training time for `bytes_per_row` stored bytes per row: the
    partition id (IVF) is paid first; a norm column is stored only for L2 over residual stages
    without IVF (with IVF it is derived from the codes), so only then does `fit_codec` charge
    candidates with residual stages for it."""
    part = 0 if nlist is None else (1 if nlist <= 256 else 2)
    code = check_positive_int(bytes_per_row, "bytes_per_row") - part
    if code < 1:
        raise ValueError(f"bytes_per_row={bytes_per_row} leaves no code bytes after the {part}-byte partition id")
    return FitCodec(d, code, "l2" if metric == "l2" and nlist is None else None, seed=seed)


def train_centroids(x: np.ndarray, nlist: int, seed: int) -> np.ndarray:
    """nlist k-means centroids (nlist, d) float32 of rows x (n, d) float32."""
    x = as_float_matrix(x, "training vectors")
    nlist = check_positive_int(nlist, "nlist", 1, MAX_NLIST)
    if nlist > len(x):
        raise ValueError(f"nlist={nlist} exceeds the {len(x)} training rows")
    return train_kmeans(x, nlist, seed)


def nearest_partitions(x: np.ndarray, centroids: np.ndarray, metric: str, nprobe: int) -> np.ndarray:
    """Indices (n, min(nprobe, nlist)) int64 of the centroids (nlist, d) nearest to rows x
    (n, d) float32: smallest L2, or largest inner product for "dot"."""
    kind = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    _, parts = faiss_threads.knn(x, centroids, min(nprobe, len(centroids)), kind)
    return parts
