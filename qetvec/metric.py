"""Metric names as FAISS users pass them ("l2", "ip" or faiss.METRIC_*), and thread counts."""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator

import faiss
import numba
from threadpoolctl import ThreadpoolController

_METRICS = {"l2": faiss.METRIC_L2, "ip": faiss.METRIC_INNER_PRODUCT,
            faiss.METRIC_L2: faiss.METRIC_L2, faiss.METRIC_INNER_PRODUCT: faiss.METRIC_INNER_PRODUCT}


def metric_type(metric: str | int) -> int:
    """faiss.METRIC_L2 or faiss.METRIC_INNER_PRODUCT for "l2" / "ip" or those constants."""
    key = metric.lower() if isinstance(metric, str) else metric
    if key not in _METRICS:
        raise ValueError(f"metric must be 'l2', 'ip', faiss.METRIC_L2 or faiss.METRIC_INNER_PRODUCT, got {metric!r}")
    return _METRICS[key]


PARALLEL_MIN_ROWS = 1024  # row-parallel kernels run fewer rows on one thread (see `serial_if`)


@contextlib.contextmanager
def serial_if(small: bool) -> Iterator[None]:
    """Run the numba kernels called inside on one thread when `small`: a parallel region's
    start and barrier cost more than a small batch's work (a one-row add: ~50 us against ~2).
    numba's thread count is per calling thread, so concurrent callers are unaffected. (One
    parallel build per kernel: a second, serial build of the same Python function would share
    its on-disk cache entry and load the parallel one.)"""
    if not small:
        yield
        return
    before = numba.get_num_threads()
    if before == 1:  # already serial (an outer serial_if): setting it costs more than the work
        yield
        return
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def use_faiss_thread_count() -> None:
    """Run numba kernels on as many threads as FAISS would (faiss.omp_set_num_threads),
    so one setting pins both libraries, as benchmarks need."""
    numba.set_num_threads(max(1, min(faiss.omp_get_max_threads(), numba.config.NUMBA_NUM_THREADS)))


_blas: ThreadpoolController | None = None
_blas_lock = threading.Lock()


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """Run the BLAS calls (numpy's matmul) inside on at most n threads, as the numba kernels
    beside them, restored after (threadpoolctl; ~20 us). The limit is process-wide, so
    callers on several Python threads take turns: interleaved, one could restore the
    other's limit instead of the user's."""
    global _blas
    with _blas_lock:
        if _blas is None:
            _blas = ThreadpoolController().select(user_api="blas")
        with _blas.limit(limits=n):
            yield
