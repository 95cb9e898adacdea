"""Measurement by the rules of shared/MEASURING.md: relative MSE on held-out rows, recall@k
against exact neighbours, bits/row read from the codes, timings alternated in one process."""
from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import faiss
import numba
import numpy as np


def relative_mse(x: np.ndarray, x_hat: np.ndarray) -> float:
    """mean_i ||x_i - x_hat_i||^2 / mean_i ||x_i - mean(X)||^2 for x, x_hat (n, d)."""
    x64 = x.astype(np.float64)
    err = ((x64 - x_hat) ** 2).sum(1).mean()
    return float(err / ((x64 - x64.mean(0)) ** 2).sum(1).mean())


def exact_knn(xb: np.ndarray, xq: np.ndarray, k: int, metric: int = faiss.METRIC_L2) -> np.ndarray:
    """Exact top-k ids (nq, k) int64 from faiss.IndexFlatL2 / IndexFlatIP."""
    index = faiss.IndexFlatL2(xb.shape[1]) if metric == faiss.METRIC_L2 else faiss.IndexFlatIP(xb.shape[1])
    index.add(xb)
    return index.search(xq, k)[1]


def recall_at_k(I: np.ndarray, truth: np.ndarray, k: int) -> float:
    """mean over queries of |returned top-k ∩ exact top-k| / k; -1 padding never matches."""
    hits = [len(set(row[:k][row[:k] >= 0]) & set(t[:k])) for row, t in zip(I, truth)]
    return float(np.mean(hits)) / k


def bits_per_row(codes: np.ndarray) -> int:
    """8 * bytes of one row's stored code, read from a uint8 (n, code_size) array."""
    if codes.dtype != np.uint8 or codes.ndim != 2:
        raise ValueError(f"codes must be a 2-D uint8 array, got {codes.dtype} {codes.shape}")
    return 8 * codes.shape[1]


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Pin FAISS (OpenMP) and numba to n threads inside the block, restore them after."""
    old_faiss, old_numba = faiss.omp_get_max_threads(), numba.get_num_threads()
    faiss.omp_set_num_threads(n)
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(old_faiss)
        numba.set_num_threads(old_numba)


@dataclass(frozen=True)
class Timing:
    """Median seconds of ours and of the baseline, and ours / baseline."""

    ours: float
    baseline: float

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline


def compare_timing(ours: Callable[[], object], baseline: Callable[[], object], repeats: int = 5) -> Timing:
    """Time `ours` and `baseline` alternately `repeats` times each (after one warm-up call
    each) and return the medians: same process, same machine state, as MEASURING.md asks."""
    ours(), baseline()
    t_ours, t_base = [], []
    for _ in range(repeats):
        for fn, sink in ((ours, t_ours), (baseline, t_base)):
            start = time.perf_counter()
            fn()
            sink.append(time.perf_counter() - start)
    return Timing(statistics.median(t_ours), statistics.median(t_base))
