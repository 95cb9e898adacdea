"""How a table's codec is trained: on a random sample of its rows, drawn the same way by
`create_table`, `convert_table` and the distributed encoder, so that all three train the same
codec from the same table."""
from __future__ import annotations

import numpy as np

from qetvec import QETQuantizer
from qetvec._validation import as_float_matrix, check_positive_int

from qetvec_lancedb.codec import MAX_NLIST, TableCodec, nearest_partitions, train_centroids
from qetvec_lancedb.errors import DimensionMismatchError


def sample_positions(n: int, train_rows: int, seed: int) -> np.ndarray:
    """Sorted positions (r,) int64 of the training rows among a table's n rows (scan order):
    all of them if n <= train_rows, else train_rows drawn at random without replacement."""
    train_rows = check_positive_int(train_rows, "train_rows")
    if n <= train_rows:
        return np.arange(n, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(n, train_rows, replace=False)).astype(np.int64)


def train_codec(x: np.ndarray, name: str, vector_column: str, quantizer: QETQuantizer | None,
                m: int | None, nbits: int, levels: int, stages: int, metric: str,
                nlist: int | None, seed: int) -> TableCodec:
    """The codec of table `name`, trained on its sampled rows x (r, d) float32
    (`sample_positions`): `quantizer` (trained here if untrained) or a new
    QETQuantizer(d, m, nbits, levels, stages); with nlist, IVF centroids first."""
    if nlist is not None:
        nlist = check_positive_int(nlist, "nlist", 1, MAX_NLIST)
    if len(x) == 0:
        raise ValueError(f"table {name!r}: data has no rows")
    x = as_float_matrix(x, f"vectors of {vector_column!r}")
    if quantizer is None:
        if m is None:
            raise ValueError("give m (column groups per stage) or a QETQuantizer")
        return TableCodec.train(x, m=m, nbits=nbits, levels=levels, stages=stages, metric=metric,
                                nlist=nlist, seed=seed)
    if quantizer.d != x.shape[1]:
        raise DimensionMismatchError(f"table {name!r}: vectors of {vector_column!r} have "
                                     f"{x.shape[1]} values, the quantizer expects d={quantizer.d}")
    if nlist is None:
        return TableCodec(quantizer if quantizer.is_trained else quantizer.train(x), metric)
    centroids = train_centroids(x, nlist, seed)
    if not quantizer.is_trained:  # trained here: on residuals; a given trained one: on vectors
        quantizer.train(x - centroids[nearest_partitions(x, centroids, metric, 1)[:, 0]])
        return TableCodec(quantizer, metric, centroids, by_residual=True)
    return TableCodec(quantizer, metric, centroids)
