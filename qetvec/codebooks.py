"""Codebooks: k-means training and nearest-codeword assignment (both through FAISS), and
codebook quantization (CQO): round-to-nearest scalar quantization of codebook entries, one
(low, step) pair per stage, so stored and used codebooks are the same numbers."""
from __future__ import annotations

import warnings

import faiss
import numpy as np

MIN_POINTS_PER_CENTROID = 39  # FAISS's own warning threshold for k-means


def train_kmeans(x: np.ndarray, k: int, seed: int, niter: int = 25) -> np.ndarray:
    """Codebook of k centroids (k, dsub) float32 for rows x (n, dsub) float32.

    FAISS defaults otherwise (at most 256 points per centroid are sampled), the same
    settings `faiss.ProductQuantizer` trains with."""
    if k == 1:
        return x.mean(axis=0, keepdims=True, dtype=np.float64).astype(np.float32)
    kmeans = faiss.Kmeans(x.shape[1], k, niter=niter, seed=seed, verbose=False)
    kmeans.train(np.ascontiguousarray(x))
    return np.ascontiguousarray(kmeans.centroids, dtype=np.float32)


def check_training_size(n: int, k: int, name: str = "x") -> None:
    """Refuse fewer rows than centroids; warn below FAISS's 39 points per centroid."""
    if n < k:
        raise ValueError(f"{name} has {n} rows, fewer than the {k} codewords to train")
    if n < MIN_POINTS_PER_CENTROID * k:
        warnings.warn(f"{name} has {n} rows for {k} codewords (< {MIN_POINTS_PER_CENTROID} per "
                      "codeword): codebooks will be poorly trained", stacklevel=3)


def assign(x: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Index (n,) int64 of the nearest codeword (L2) in codebook (k, dsub) for rows x (n, dsub)."""
    if len(codebook) == 1:
        return np.zeros(len(x), dtype=np.int64)
    _, idx = faiss.knn(np.ascontiguousarray(x), np.ascontiguousarray(codebook), 1)
    return idx[:, 0]


def quantize_codebook(codebooks: np.ndarray, bits: int) -> tuple[np.ndarray, float, float]:
    """Scalar-quantize all entries of `codebooks` (any shape) to `bits` bits.

    Returns (levels uint16 same shape, low, step); entries are low + levels * step."""
    low, high = float(codebooks.min()), float(codebooks.max())
    step = (high - low) / (2 ** bits - 1) if high > low else 1.0
    levels = np.clip(np.rint((codebooks - low) / step), 0, 2 ** bits - 1).astype(np.uint16)
    return levels, low, step


def dequantize_codebook(levels: np.ndarray, low: float, step: float) -> np.ndarray:
    """float32 codebooks from `quantize_codebook`'s output, bit-identical on every reload."""
    return (np.float32(low) + levels.astype(np.float32) * np.float32(step)).astype(np.float32)
