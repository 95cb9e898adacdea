"""Measurement rules: relative MSE (and the relative error of inner products with queries)
on held-out rows, bits/row read from the codes, timings alternated in one process. Exact
neighbours and recall@k are FAISS's own (`faiss.knn`,
`faiss.contrib.evaluation.knn_intersection_measure`)."""
from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import faiss
import numba
import numpy as np


def relative_mse(x: np.ndarray, x_hat: np.ndarray) -> float:
    """mean_i ||x_i - x_hat_i||^2 / mean_i ||x_i - mean(X)||^2 for x, x_hat (n, d) (of one
    shape: a broadcast x_hat would give a number without meaning)."""
    if np.ndim(x) != 2 or np.shape(x) != np.shape(x_hat):
        raise ValueError(f"x and x_hat must be (n, d) arrays of one shape, got {np.shape(x)} and {np.shape(x_hat)}")
    x64 = np.asarray(x, np.float64)
    err = ((x64 - x_hat) ** 2).sum(1).mean()
    return float(err / ((x64 - x64.mean(0)) ** 2).sum(1).mean())


def relative_ip_error(x: np.ndarray, x_hat: np.ndarray, queries: np.ndarray) -> float:
    """mean over rows i and queries q of <q, x_i - x_hat_i>^2, divided by the mean of
    <q, x_i - mean(X)>^2, for x, x_hat (n, d) and queries (nq, d): the error of the scores an
    index computes from x_hat, relative to the spread of the true scores. Identity queries
    give `relative_mse`."""
    if np.ndim(x) != 2 or np.shape(x) != np.shape(x_hat):
        raise ValueError(f"x and x_hat must be (n, d) arrays of one shape, got {np.shape(x)} and {np.shape(x_hat)}")
    if np.ndim(queries) != 2 or np.shape(queries)[1] != np.shape(x)[1] or not len(queries):
        raise ValueError(f"queries must be a non-empty (nq, {np.shape(x)[1]}) array, got {np.shape(queries)}")
    x64, q64 = np.asarray(x, np.float64), np.asarray(queries, np.float64)
    moment = q64.T @ q64  # sum over queries of q q^T: <q, e>^2 summed over q is e^T moment e
    err, spread = x64 - x_hat, x64 - x64.mean(0)
    return float(((err @ moment) * err).sum() / ((spread @ moment) * spread).sum())


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


def time_alternated(fns: Sequence[Callable[[], object]], repeats: int = 5) -> list[float]:
    """Median seconds of each of `fns`, called round-robin `repeats` times (after one warm-up
    call each): same process, same machine state for all of them."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, sink in zip(fns, times):
            start = time.perf_counter()
            fn()
            sink.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def compare_timing(ours: Callable[[], object], baseline: Callable[[], object], repeats: int = 5) -> Timing:
    """Medians of `ours` and `baseline` timed alternately (`time_alternated`)."""
    return Timing(*time_alternated([ours, baseline], repeats))
