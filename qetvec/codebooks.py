"""Codebooks: k-means training and nearest-codeword assignment, and codebook quantization
(CQO): round-to-nearest scalar quantization of codebook entries, one (low, step) pair per
stage, so stored and used codebooks are the same numbers, bit-packed when stored.

A stage's m group codebooks are trained and used together (`train_group_codebooks`,
`assign_group_codes`, numba kernels in `qetvec._codebook_kernels`); `train_kmeans` serves
single large problems such as IVF coarse centroids, the same algorithm with FAISS's exact
search as its assignment step (`qetvec.faiss_threads`)."""
from __future__ import annotations

import warnings

import numba
import numpy as np

from qetvec import _codebook_kernels, faiss_threads
from qetvec.metric import PARALLEL_MIN_ROWS, serial_if

MIN_POINTS_PER_CENTROID = 39  # FAISS's own warning threshold for k-means
MAX_POINTS_PER_CENTROID = 256  # FAISS's training sample cap per centroid
BLAS_MIN_WIDTH = 16  # fewer groups than threads, this wide: `train_kmeans` (FAISS's BLAS search)


def train_kmeans(x: np.ndarray, k: int, seed: int, niter: int = 25) -> np.ndarray:
    """Codebook of k centroids (k, d) float32 for rows x (n, d) float32 (n >= k).

    `train_group_codebooks`' algorithm and settings for one group (FAISS's: at most 256 rows
    per centroid sampled, k distinct random rows as initial centroids, `niter` Lloyd
    iterations, empty clusters split), each assignment being FAISS's exact nearest-centroid
    search (`qetvec.faiss_threads.knn`, BLAS, on as many threads as FAISS would use)."""
    if k == 1:
        return x.mean(axis=0, keepdims=True, dtype=np.float64).astype(np.float32)
    rng = np.random.default_rng(seed)
    sample = np.ascontiguousarray(x[_training_rows(len(x), k, rng)], dtype=np.float32)
    centroids = sample[rng.choice(len(sample), k, replace=False)]
    codes = np.full(len(sample), -1, np.int64)
    for _ in range(niter):
        nearest = faiss_threads.knn(sample, centroids, 1)[1][:, 0]
        if np.array_equal(nearest, codes):  # no row moved: later iterations change nothing
            break
        codes = nearest
        _codebook_kernels.update_centroids(sample, codes, centroids)
    return centroids


def _training_rows(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted rows (<= 256 k,) int64 of n that k-means trains on: all, or a seeded sample."""
    if n > MAX_POINTS_PER_CENTROID * k:
        return np.sort(rng.choice(n, MAX_POINTS_PER_CENTROID * k, replace=False)).astype(np.int64)
    return np.arange(n, dtype=np.int64)


def train_group_codebooks(y: np.ndarray, bounds: np.ndarray, ksubs: int | np.ndarray, seed: int,
                          niter: int = 25) -> np.ndarray:
    """k-means codebooks (m, k_max, w_max) float32 of the m column groups of y (n, d) float32,
    group g being columns bounds[g]:bounds[g + 1] with ksubs[g] codewords (one int: the same
    for every group), zero-padded past each group's codewords and width.

    FAISS's settings: at most 256 * k_max training rows (one seeded sample shared by the
    groups), k distinct random rows as each group's initial centroids, `niter` Lloyd iterations.
    Fewer groups than threads (or one group on one thread), each at least BLAS_MIN_WIDTH wide
    (full-width residual stages), are trained by `train_kmeans` one after the other, with
    BLAS, which parallelizes within a group."""
    n, m = len(y), len(bounds) - 1
    ksubs = np.broadcast_to(np.asarray(ksubs, np.int64), (m,))
    k_max = int(ksubs.max())
    rng = np.random.default_rng(seed)
    rows = _training_rows(n, k_max, rng)
    if k_max == 1:
        books = np.zeros((m, 1, int(np.diff(bounds).max())), np.float32)
        for g, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
            books[g, 0, : b - a] = y[rows, a:b].mean(axis=0, dtype=np.float64)
        return books
    init = np.zeros((m, k_max), np.int64)
    for g, k in enumerate(ksubs):
        init[g, :k] = rng.choice(len(rows), k, replace=False)
    if (m == 1 or m < numba.get_num_threads()) and np.diff(bounds).min() >= BLAS_MIN_WIDTH:
        books = np.zeros((m, k_max, int(np.diff(bounds).max())), np.float32)  # few wide groups:
        for g, (a, b, k) in enumerate(zip(bounds[:-1], bounds[1:], ksubs)):  # BLAS, parallel within
            books[g, :k, : b - a] = train_kmeans(np.ascontiguousarray(y[rows, a:b]), int(k), seed + g, niter)
        return books
    return _codebook_kernels.kmeans_groups(np.ascontiguousarray(y, dtype=np.float32), rows,
                                           bounds.astype(np.int64), np.ascontiguousarray(ksubs), init, niter)


def decode_group_codes(codes: np.ndarray, bounds: np.ndarray, books: np.ndarray) -> np.ndarray:
    """Rows (n, d) float32 of codes (n, m): row i's group g is books[g, codes[i, g]] (the
    group's own columns of it)."""
    with serial_if(len(codes) < PARALLEL_MIN_ROWS):
        return _codebook_kernels.gather_groups(np.ascontiguousarray(codes), bounds.astype(np.int64), books)


def assign_group_codes(y: np.ndarray, bounds: np.ndarray, books: np.ndarray,
                       ksubs: np.ndarray | None = None) -> np.ndarray:
    """Codes (n, m) int64: nearest codeword (L2) of each group of y (n, d) in books
    (m, k_max, w_max), group g's codewords being the first ksubs[g] (default: all k_max)."""
    m, k_max = books.shape[:2]
    ksubs = np.full(m, k_max, np.int64) if ksubs is None else np.ascontiguousarray(ksubs, np.int64)
    if k_max == 1:
        return np.zeros((len(y), m), dtype=np.int64)
    y = np.ascontiguousarray(y, dtype=np.float32)
    if len(y) < _codebook_kernels.FEW_POINTS:
        return _codebook_kernels.assign_few_rows(y, bounds.astype(np.int64), books, ksubs)
    with serial_if(len(y) < PARALLEL_MIN_ROWS):
        return _codebook_kernels.assign_groups(y, bounds.astype(np.int64), books, ksubs)


def check_training_size(n: int, k: int, name: str = "x", warn: bool = True) -> None:
    """Refuse fewer rows than centroids; warn (if `warn`) below FAISS's 39 points per centroid."""
    if n < k:
        raise ValueError(f"{name} has {n} rows, fewer than the {k} codewords to train")
    if warn and n < MIN_POINTS_PER_CENTROID * k:
        warnings.warn(f"{name} has {n} rows for {k} codewords (< {MIN_POINTS_PER_CENTROID} per "
                      "codeword): codebooks will be poorly trained", stacklevel=3)


def quantize_codebook(codebooks: np.ndarray, bits: int) -> tuple[np.ndarray, float, float]:
    """Scalar-quantize all entries of `codebooks` (any shape) to `bits` bits.

    Returns (levels uint16 same shape, low, step); entries are low + levels * step, low and
    step being float32 values (stored as such, so a reload is bit-identical)."""
    low, high = float(np.float32(codebooks.min())), float(codebooks.max())
    step = float(np.float32((high - low) / (2 ** bits - 1))) if high > low else 1.0
    levels = np.clip(np.rint((codebooks - low) / step), 0, 2 ** bits - 1).astype(np.uint16)
    return levels, low, step


def dequantize_codebook(levels: np.ndarray, low: float, step: float) -> np.ndarray:
    """float32 codebooks from `quantize_codebook`'s output, bit-identical on every reload."""
    return (np.float32(low) + levels.astype(np.float32) * np.float32(step)).astype(np.float32)


def pack_uints(values: np.ndarray, bits: int) -> np.ndarray:
    """Bit-pack unsigned values (any shape, each < 2**bits) LSB first into
    ceil(values.size * bits / 8) bytes, uint8 (the layout of `qetvec.layout`'s streams)."""
    flat = values.reshape(-1).astype(np.uint32)
    planes = ((flat[:, None] >> np.arange(bits, dtype=np.uint32)) & 1).astype(np.uint8)
    return np.packbits(planes.reshape(-1), bitorder="little")


def unpack_uints(packed: np.ndarray, count: int, bits: int) -> np.ndarray:
    """Inverse of `pack_uints`: `count` values (count,) uint32."""
    planes = np.unpackbits(packed, count=count * bits, bitorder="little").reshape(count, bits)
    return (planes.astype(np.uint32) << np.arange(bits, dtype=np.uint32)).sum(axis=1, dtype=np.uint32)
