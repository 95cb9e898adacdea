"""How a table's codec is trained: on a random sample of its rows, drawn the same way by
`create_table`, `convert_table` and the distributed encoder, so that all three train the same
codec from the same table."""
from __future__ import annotations

import numpy as np

from qetvec._validation import as_float_matrix, check_positive_int, check_seed
from qetvec.codec import Codec

from qetvec_lancedb.codec import MAX_NLIST, TableCodec, budget_codec, train_centroids
from qetvec_lancedb.errors import DimensionMismatchError


def check_training_options(nlist: int | None, train_rows: int, seed: int) -> tuple[int | None, int, int]:
    """nlist (None or 1..MAX_NLIST), train_rows (>= 1) and seed, checked by name before any
    row is read."""
    if nlist is not None:
        nlist = check_positive_int(nlist, "nlist", 1, MAX_NLIST)
    return nlist, check_positive_int(train_rows, "train_rows"), check_seed(seed)


def sample_positions(n: int, train_rows: int, seed: int) -> np.ndarray:
    """Sorted positions (r,) int64 of the training rows among a table's n rows (scan order):
    all of them if n <= train_rows, else train_rows drawn at random without replacement."""
    if n <= train_rows:
        return np.arange(n, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(n, train_rows, replace=False)).astype(np.int64)


def train_codec(x: np.ndarray, name: str, vector_column: str, codec: Codec | None,
                m: int | None, nbits: int, levels: int, stages: int, metric: str,
                nlist: int | None, seed: int, bytes_per_row: int | None = None) -> TableCodec:
    """The table codec of table `name`, trained on its sampled rows x (r, d) float32
    (`sample_positions`; options checked by `check_training_options`): `codec` (trained
    here, on residuals with IVF, if untrained), the codec `fit_codec` picks for
    `bytes_per_row` (`budget_codec`), or a new QETQuantizer(d, m, nbits, levels, stages);
    with nlist, IVF centroids first."""
    if len(x) == 0:
        raise ValueError(f"table {name!r}: data has no rows")
    x = as_float_matrix(x, f"vectors of {vector_column!r}")
    if bytes_per_row is not None:
        if codec is not None or m is not None:
            raise ValueError("give one of codec, m or bytes_per_row")
        codec = budget_codec(x.shape[1], bytes_per_row, metric, nlist, seed)
    if codec is None:
        if m is None:
            raise ValueError("give m (column groups per stage) or a codec")
        return TableCodec.train(x, m=m, nbits=nbits, levels=levels, stages=stages, metric=metric,
                                nlist=nlist, seed=seed)
    if codec.d != x.shape[1]:
        raise DimensionMismatchError(f"table {name!r}: vectors of {vector_column!r} have "
                                     f"{x.shape[1]} values, the codec expects d={codec.d}")
    if not codec.is_trained:  # trained here (on residuals with IVF)
        return TableCodec.train(x, codec=codec, metric=metric, nlist=nlist, seed=seed)
    if nlist is None:
        return TableCodec(codec, metric)
    return TableCodec(codec, metric, train_centroids(x, nlist, seed))  # a trained codec: on vectors
