"""The IVF operating point: for each method at a byte budget, IVF + exact re-ranking (RFlat),
nprobe raised until recall@k reaches the target; recall and queries/s there, every method of a
budget timed round-robin in this run, speed relative to FAISS PQ at the same budget. All
indexes share one set of coarse centroids, so they differ only in how they code the rows."""
from __future__ import annotations

from typing import Any

import faiss
import numpy as np
from faiss.contrib.evaluation import knn_intersection_measure
from tqdm.auto import tqdm

from qetvec.bench.methods import build_ivf, ivf_layer
from qetvec.codebooks import train_kmeans
from qetvec.evaluation import threads, time_alternated

NPROBES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)  # then every list
BASELINE = "pq"  # speed ratios are against FAISS PQ at the same budget, when it runs


def sweep_nprobe(index: Any, nlist: int, queries: np.ndarray, truth: np.ndarray,
                 target: float) -> list[list[float]]:
    """[[nprobe, recall@k], ...] for nprobe in NPROBES below nlist, then nlist, up to the first
    whose recall reaches `target`; queries (nq, d) float32, truth (nq, k) int64 exact ids."""
    points = []
    for nprobe in [p for p in NPROBES if p < nlist] + [nlist]:
        ivf_layer(index).nprobe = nprobe
        points.append([nprobe, knn_intersection_measure(index.search(queries, truth.shape[1])[1], truth)])
        if points[-1][1] >= target:
            break
    return points


def run_ivf(methods: list[str], budgets: list[int], train: np.ndarray, base: np.ndarray, queries: np.ndarray,
            nlist: int, target: float = 0.9, k: int = 10, k_factor: float = 10.0,
            repeats: int = 3) -> list[dict[str, Any]]:
    """One row per (method, budget): the sweep, the operating nprobe, recall@k and queries/s
    (1 thread and all threads) there; skipped rows say why."""
    d = base.shape[1]
    truth = faiss.knn(queries, base, k)[1]
    centroids = train_kmeans(train, nlist, seed=0)
    rows: list[dict[str, Any]] = []
    for code_bytes in budgets:
        runs = []
        for method in tqdm(methods, desc=f"IVF @ {code_bytes} B", leave=False):
            try:
                index, spec = build_ivf(method, d, nlist, code_bytes, k_factor, centroids)
            except ValueError as err:
                rows.append({"method": method, "target_bytes": code_bytes, "skipped": str(err)})
                continue
            index.train(train)
            index.add(base)
            sweep = sweep_nprobe(index, nlist, queries, truth, target)
            ivf_layer(index).nprobe = sweep[-1][0]
            runs.append((index, {"method": method, "spec": spec, "target_bytes": code_bytes,
                                 "bytes_per_row": int(ivf_layer(index).code_size), "refine_bytes_per_row": 4 * d,
                                 "k_factor": k_factor, "nprobe": sweep[-1][0], f"recall@{k}": sweep[-1][1],
                                 "reached_target": sweep[-1][1] >= target, "sweep": sweep}))
        rows += _timed(runs, queries, k, repeats)
    return rows


def _timed(runs: list[tuple[Any, dict[str, Any]]], queries: np.ndarray, k: int,
           repeats: int) -> list[dict[str, Any]]:
    """The rows of one budget with queries/s, all indexes timed round-robin at their nprobe."""
    searches = [lambda index=index: index.search(queries, k) for index, _ in runs]
    base = next((i for i, (_, row) in enumerate(runs) if row["method"] == BASELINE), None)
    for label, n_threads in (("1thread", 1), ("all", faiss.omp_get_max_threads())):
        with threads(n_threads):
            seconds = time_alternated(searches, repeats)
        for (_, row), s in zip(runs, seconds):
            row[f"qps_{label}"] = len(queries) / s
            if base is not None:
                row[f"speed_ratio_{label}"] = seconds[base] / s
    return [row for _, row in runs]
