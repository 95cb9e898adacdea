"""Metric names as FAISS users pass them ("l2", "ip" or faiss.METRIC_*), and thread count."""
from __future__ import annotations

import faiss
import numba

_METRICS = {"l2": faiss.METRIC_L2, "ip": faiss.METRIC_INNER_PRODUCT,
            faiss.METRIC_L2: faiss.METRIC_L2, faiss.METRIC_INNER_PRODUCT: faiss.METRIC_INNER_PRODUCT}


def metric_type(metric: str | int) -> int:
    """faiss.METRIC_L2 or faiss.METRIC_INNER_PRODUCT for "l2" / "ip" or those constants."""
    key = metric.lower() if isinstance(metric, str) else metric
    if key not in _METRICS:
        raise ValueError(f"metric must be 'l2', 'ip', faiss.METRIC_L2 or faiss.METRIC_INNER_PRODUCT, got {metric!r}")
    return _METRICS[key]


def use_faiss_thread_count() -> None:
    """Run numba kernels on as many threads as FAISS would (faiss.omp_set_num_threads),
    so one setting pins both libraries, as benchmarks need."""
    numba.set_num_threads(max(1, min(faiss.omp_get_max_threads(), numba.config.NUMBA_NUM_THREADS)))
