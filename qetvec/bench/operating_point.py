"""The IVF trade-off: for each method at a byte budget, IVF + exact re-ranking (RFlat) swept
over nprobe; recall@k and queries/s at every nprobe (every index of a budget timed
round-robin at that nprobe, in this run), and queries/s at the target recall interpolated
along each index's Pareto front (`qetvec.bench.tradeoff`), so that methods are compared at
equal recall. All indexes share one set of coarse centroids (except behind a learned
transform such as OPQ), so they differ only in how they code the rows."""
from __future__ import annotations

from typing import Any

import faiss
import numpy as np
from faiss.contrib.evaluation import knn_intersection_measure
from tqdm.auto import tqdm

from qetvec.bench.methods import AUTO, build_ivf, is_qetvec, ivf_layer, ivf_methods
from qetvec.bench.tradeoff import qps_at_recall
from qetvec.codebooks import train_kmeans
from qetvec.evaluation import threads, time_alternated

NPROBES = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)  # then every list
THREADS = ("1thread", "all")
PLATEAU = 0.005  # recall@k gained from one swept nprobe to the next below which a curve has levelled off


def nprobe_grid(nlist: int) -> list[int]:
    """The swept nprobe values: NPROBES below nlist, then nlist (every list)."""
    return [p for p in NPROBES if p < nlist] + [nlist]


def run_ivf(methods: list[str], budgets: list[int], train: np.ndarray, base: np.ndarray, queries: np.ndarray,
            nlist: int, target: float = 0.9, k: int = 10, k_factor: float = 10.0, repeats: int = 3,
            fit_options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per (method, budget) of `ivf_methods`: its factory string, bytes per row in
    the lists, the sweep ("curve": nprobe, recall@k, queries/s on 1 thread and on all) and
    queries/s at recall `target` with the ratios of `compare_at_recall`; skipped rows say why."""
    d = base.shape[1]
    truth = faiss.knn(queries, base, k)[1]
    centroids = train_kmeans(train, nlist, seed=0)
    rows: list[dict[str, Any]] = []
    for code_bytes in budgets:
        built = []
        for method in tqdm(ivf_methods(methods, d, code_bytes), desc=f"IVF @ {code_bytes} B", leave=False):
            try:
                index, spec = build_ivf(method, d, nlist, code_bytes, k_factor, centroids, fit_options)
            except ValueError as err:
                rows.append({"method": method, "target_bytes": code_bytes, "skipped": str(err)})
                continue
            index.train(train)
            index.add(base)
            if is_qetvec(method) and ivf_layer(index).searcher.units is not None:
                ivf_layer(index).precompute_rows = True  # memory for speed, as FAISS's precomputed tables
            built.append((index, _describe(index, method, spec, code_bytes, d, k_factor)))
        sweep(built, nlist, queries, truth, repeats, target)
        rows += compare_at_recall([row for _, row in built], target)
    return rows


def _describe(index: Any, method: str, spec: str, code_bytes: int, d: int, k_factor: float) -> dict[str, Any]:
    """The row of a trained index: what it is and what it stores per row (in the lists, and
    in memory: lists, float vectors and any precomputed row entries, ids aside)."""
    layer = ivf_layer(index)
    precomputed = getattr(layer, "precomputed_bytes_per_row", 0)  # FAISS's indexes: none
    row = {"method": method, "spec": spec, "target_bytes": code_bytes, "library": "qetvec" if is_qetvec(method)
           else "faiss", "bytes_per_row": int(layer.code_size), "refine_bytes_per_row": 4 * d, "k_factor": k_factor,
           "memory_bytes_per_row": int(layer.code_size) + 4 * d + precomputed}
    if method == AUTO:
        row["codec"] = repr(layer.codec)
        row["winner"] = layer.codec.report_winner
    return row


def sweep(built: list[tuple[Any, dict[str, Any]]], nlist: int, queries: np.ndarray, truth: np.ndarray,
          repeats: int, target: float) -> None:
    """Fill each row's "curve" with [nprobe, recall@k, qps_1thread, qps_all] over the nprobe
    grid, the indexes still swept timed round-robin at each nprobe (median of `repeats`). An
    index leaves the sweep after the first nprobe at which it reached `target` or gained less
    than PLATEAU recall over the nprobe before (larger nprobes cost the most and add nothing
    to the comparison at `target`)."""
    k = truth.shape[1]
    for _, row in built:
        row["curve"] = []
    active = list(built)
    for nprobe in nprobe_grid(nlist):
        if not active:
            break
        for index, _ in active:
            ivf_layer(index).nprobe = nprobe
        searches = [lambda index=index: index.search(queries, k) for index, _ in active]
        seconds = {}
        for label, n_threads in zip(THREADS, (1, faiss.omp_get_max_threads())):
            with threads(n_threads):
                seconds[label] = time_alternated(searches, repeats)
        for i, (index, row) in enumerate(active):
            recall = knn_intersection_measure(index.search(queries, k)[1], truth)
            row["curve"].append([nprobe, recall, *(len(queries) / seconds[label][i] for label in THREADS)])
        active = [(index, row) for index, row in active if not _settled(row["curve"], target)]


def _settled(curve: list[list[float]], target: float) -> bool:
    """Whether a sweep's last point reached `target` or gained < PLATEAU over the one before."""
    return curve[-1][1] >= target or (len(curve) > 1 and curve[-1][1] - curve[-2][1] < PLATEAU)


def compare_at_recall(rows: list[dict[str, Any]], target: float) -> list[dict[str, Any]]:
    """Add to each row of one budget its best recall, the smallest swept nprobe reaching
    `target`, its queries/s at recall `target` on each thread count (interpolated along its
    Pareto front), and its ratios to FAISS's fastest index at that recall
    ("vs_best_faiss_<threads>"; "best_faiss_<threads>" names it) and to FAISS IVF-PQ
    ("vs_pq_<threads>")."""
    for row in rows:
        row["max_recall"] = max(point[1] for point in row["curve"])
        row["nprobe_at_target"] = next((point[0] for point in row["curve"] if point[1] >= target), None)
        for i, label in enumerate(THREADS):
            row[f"qps_at_target_{label}"] = qps_at_recall([(p[1], p[2 + i]) for p in row["curve"]], target)
    for label in THREADS:
        key = f"qps_at_target_{label}"
        reached = [r for r in rows if r["library"] == "faiss" and r[key] is not None]
        best = max(reached, key=lambda r: r[key], default=None)
        pq = next((r for r in reached if r["method"] == "pq"), None)
        for row in (r for r in rows if r[key] is not None):
            if best is not None:
                row[f"best_faiss_{label}"] = best["method"]
                row[f"vs_best_faiss_{label}"] = row[key] / best[key]
            if pq is not None:
                row[f"vs_pq_{label}"] = row[key] / pq[key]
    return rows
