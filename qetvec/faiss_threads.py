"""FAISS calls made by qetvec, run without FAISS's OpenMP team: import order cannot matter.

FAISS (its wheel bundles its own OpenMP runtime) and numba (another one) each keep a thread
pool. An OpenMP runtime reads its wait policy once, when it loads: FAISS's at `import faiss`.
Under FAISS's default policy its idle workers spin after every parallel region, and on a
busy machine they spin on the cores the other threads need: when qetvec ran FAISS's team,
its IVF training took 2.2x as long and its 2-thread IVF search 1.25x with faiss imported
first (2 shared cores, `benchmarks/results/import-order/before/`). No API changes the policy
once the runtime has loaded, so qetvec never starts FAISS's team: the few FAISS calls on its
paths (IVF probes and assignment, k-means assignment, LanceDB partitions) run on FAISS's
serial path, split by rows over a pool of Python threads that wait passively, as many as
FAISS would use (`faiss.omp_get_max_threads()` of the calling thread, the count that also
sizes numba's team: `qetvec.metric`). FAISS releases the GIL in these calls and searches are
thread-safe on a constant index, so the split runs in parallel and returns FAISS's results.
"""
from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Callable, Iterator

import faiss
import numpy as np

MIN_ROWS_PER_THREAD = 64  # fewer rows per slice: the hand-off costs more than the work

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


@contextlib.contextmanager
def faiss_serial() -> Iterator[None]:
    """FAISS on one OpenMP thread in the calling thread inside the block (no team starts),
    the thread's count restored after. OpenMP's thread count is per calling thread, so
    other threads are unaffected."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def search(index: faiss.Index, x: np.ndarray, k: int,
           params: faiss.SearchParameters | None = None) -> tuple[np.ndarray, np.ndarray]:
    """index.search(x, k, params=params): (D float32 (n, k), I int64 (n, k)) for rows x (n, d)
    float32, computed as FAISS computes them, without FAISS's OpenMP team."""
    return _by_rows(lambda part: index.search(part, k, params=params), x, k)


def knn(x: np.ndarray, y: np.ndarray, k: int, metric: int = faiss.METRIC_L2) -> tuple[np.ndarray, np.ndarray]:
    """faiss.knn(x, y, k, metric): the k rows of y (ny, d) float32 nearest to each row of x
    (n, d) float32, (D float32 (n, k), I int64 (n, k)), without FAISS's OpenMP team."""
    y = np.ascontiguousarray(y, np.float32)
    return _by_rows(lambda part: faiss.knn(part, y, k, metric=metric), x, k)


def _by_rows(call: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], x: np.ndarray,
             k: int) -> tuple[np.ndarray, np.ndarray]:
    """call(slice) over row slices of x on FAISS's serial path: the calling thread takes the
    first slice, pool threads the others; results concatenated in row order."""
    x = np.ascontiguousarray(x, np.float32)
    threads = max(1, min(faiss.omp_get_max_threads(), len(x) // MIN_ROWS_PER_THREAD))
    if threads == 1:  # one slice: no split, no pool (a single query pays the count switch only)
        with faiss_serial():
            return call(x)
    bounds = np.linspace(0, len(x), threads + 1).astype(np.int64)
    parts = [x[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    futures: list[Future] = [_executor(threads - 1).submit(call, part) for part in parts[1:]]
    try:
        with faiss_serial():
            first = call(parts[0])
    finally:
        wait(futures)  # no slice outlives the call, even when the first one failed
    results = [first, *(f.result() for f in futures)]
    return (np.concatenate([r[0] for r in results]).reshape(len(x), k),
            np.concatenate([r[1] for r in results]).reshape(len(x), k))


def _executor(workers: int) -> ThreadPoolExecutor:
    """The shared pool, grown to at least `workers` threads; each of its threads runs FAISS
    on one OpenMP thread."""
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < workers:
            if _pool is not None:
                _pool.shutdown(wait=False)  # its threads finish their tasks and exit
            _pool_size = max(workers, os.cpu_count() or 1)
            _pool = ThreadPoolExecutor(_pool_size, thread_name_prefix="qetvec-faiss",
                                       initializer=faiss.omp_set_num_threads, initargs=(1,))
        return _pool


def _forget_pool() -> None:
    """After fork, the child has none of the parent's pool threads: start a new pool."""
    global _pool, _pool_size, _lock
    _pool, _pool_size, _lock = None, 0, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)
