"""Measurement runs: one row (a dict) per (method, byte budget), never silently dropped:
codec MSE and encode rate, flat search, and the matrix-mode line."""
from __future__ import annotations

import time
from typing import Any

import faiss
import numpy as np
from faiss.contrib.evaluation import knn_intersection_measure
from tqdm.auto import tqdm

from qetvec.bench import audit
from qetvec.bench.methods import build_codec, build_index
from qetvec.evaluation import bits_per_row, compare_timing, relative_mse, threads


UNTIMED = ("rq", "lsq")  # FAISS flat search decodes every row: minutes per timing at 400k rows


def _skipped(method: str, code_bytes: int, err: Exception) -> dict[str, Any]:
    return {"method": method, "target_bytes": code_bytes, "skipped": str(err)}


def run_codecs(methods: list[str], budgets: list[int], train: np.ndarray, test: np.ndarray,
               encode_rate: bool, repeats: int = 3) -> list[dict[str, Any]]:
    """Relative MSE on held-out `test` rows for each method at each byte budget; bits/row read
    from the encoded array; optionally encode rate (rows/s, 1 thread and all) beside
    faiss.ProductQuantizer at the same code size, timed alternately in this run."""
    rows = []
    for code_bytes in budgets:
        for method in tqdm(methods, desc=f"codecs @ {code_bytes} B", leave=False):
            try:
                codec, spec = build_codec(method, train.shape[1], code_bytes)
            except ValueError as err:
                rows.append(_skipped(method, code_bytes, err))
                continue
            start = time.perf_counter()
            codec.train(train)
            train_s = time.perf_counter() - start
            codes = codec.sa_encode(test)
            row = {"method": method, "spec": spec, "target_bytes": code_bytes,
                   "bits_per_row": bits_per_row(codes), "mse": relative_mse(test, codec.sa_decode(codes)),
                   "train_s": train_s}
            if encode_rate and method.startswith("qet"):
                row.update(_encode_rates(codec, train, test, code_bytes, repeats))
            rows.append(row)
    return rows


def _encode_rates(codec: Any, train: np.ndarray, test: np.ndarray, code_bytes: int,
                  repeats: int) -> dict[str, Any]:
    """QET encode rows/s vs faiss.ProductQuantizer.compute_codes with code_bytes 8-bit groups
    (any dimension split FAISS accepts is irrelevant to speed: M = code_bytes if it divides d)."""
    d = train.shape[1]
    m = next(m for m in range(code_bytes, 0, -1) if d % m == 0)
    pq = faiss.ProductQuantizer(d, m, 8)
    pq.train(train)
    out: dict[str, Any] = {"encode_baseline": f"faiss.ProductQuantizer({d}, {m}, 8)"}
    for label, n_threads in (("1thread", 1), ("all", faiss.omp_get_max_threads())):
        with threads(n_threads):
            t = compare_timing(lambda: codec.sa_encode(test), lambda: pq.compute_codes(test), repeats)
        out[f"encode_rows_per_s_{label}"] = len(test) / t.ours
        out[f"encode_baseline_rows_per_s_{label}"] = len(test) / t.baseline
        out[f"encode_ratio_{label}"] = t.baseline / t.ours  # ours/baseline throughput
    return out


def run_search(methods: list[str], budgets: list[int], train: np.ndarray, base: np.ndarray,
               queries: np.ndarray, k: int = 10, repeats: int = 3) -> list[dict[str, Any]]:
    """Recall@k and queries/s (1 thread and all threads) of flat indexes over `base`,
    each timed alternately with FAISS IndexPQ at the same code size in this run."""
    truth = faiss.knn(queries, base, k)[1]
    rows = []
    for code_bytes in budgets:
        reference = _reference_pq(base.shape[1], code_bytes, train, base)
        for method in tqdm(methods, desc=f"search @ {code_bytes} B", leave=False):
            try:
                index, spec = build_index(method, base.shape[1], code_bytes)
            except ValueError as err:
                rows.append(_skipped(method, code_bytes, err))
                continue
            index.train(train)
            index.add(base)
            row = {"method": method, "spec": spec, "target_bytes": code_bytes,
                   "bytes_per_row": int(index.sa_code_size()),
                   f"recall@{k}": knn_intersection_measure(index.search(queries, k)[1], truth)}
            if method in UNTIMED:
                row["qps_note"] = "not timed: FAISS searches this codec by decoding every row"
            else:
                row.update(_qps(index, reference, queries, k, repeats))
            rows.append(row)
    return rows


def _reference_pq(d: int, code_bytes: int, train: np.ndarray, base: np.ndarray) -> tuple[Any, str] | None:
    """faiss.IndexPQ with code_bytes 8-bit groups when code_bytes divides d, else None."""
    if d % code_bytes:
        return None
    index = faiss.IndexPQ(d, code_bytes, 8)
    index.train(train)
    index.add(base)
    return index, f"IndexPQ({d}, {code_bytes}, 8)"


def _qps(index: Any, reference: tuple[Any, str] | None, queries: np.ndarray, k: int,
         repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, n_threads in (("1thread", 1), ("all", faiss.omp_get_max_threads())):
        with threads(n_threads):
            if reference is None:
                t = compare_timing(lambda: index.search(queries, k), lambda: None, repeats)
                out[f"qps_{label}"] = len(queries) / t.ours
                continue
            t = compare_timing(lambda: index.search(queries, k), lambda: reference[0].search(queries, k), repeats)
        out[f"qps_{label}"] = len(queries) / t.ours
        out[f"baseline_qps_{label}"] = len(queries) / t.baseline
        out[f"speed_ratio_{label}"] = t.baseline / t.ours
        out["speed_baseline"] = reference[1]
    return out


def run_matrix_line(x: np.ndarray, bits_per_element: float) -> dict[str, Any]:
    """Matrix mode on one real matrix x (n, d) float32 at a whole-matrix budget: relative MSE
    of QET, of the best configuration without the tree and of PQ with float codebooks, from
    `qetvec.bench.audit.matrix_line`."""
    return {"shape": list(x.shape), "bits_per_element": bits_per_element,
            **audit.matrix_line(x, bits_per_element)}
