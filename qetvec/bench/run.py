"""Measurement runs: one row (a dict) per (method, byte budget), never silently dropped:
codec MSE and encode rate, the Gaussian bounds beside them, flat search, and the matrix-mode
line."""
from __future__ import annotations

import time
from typing import Any

import faiss
import numpy as np
from faiss.contrib.evaluation import knn_intersection_measure
from tqdm.auto import tqdm

from qetvec.bench import audit
from qetvec.bench.methods import build_codec, build_index
from qetvec.bench.rate_distortion import gaussian_rd_bound, iid_gaussian_bound
from qetvec.bench.sizing import DISTANCE_ONLY
from qetvec.evaluation import bits_per_row, compare_timing, relative_mse, threads


UNTIMED = ("rq", "rq-beam32", "lsq")  # FAISS flat search decodes every row: minutes per timing at 400k rows


def _skipped(method: str, code_bytes: int, err: Exception | str) -> dict[str, Any]:
    return {"method": method, "target_bytes": code_bytes, "skipped": str(err)}


def _setting(settings: dict[str, Any], method: str, code_bytes: int) -> Any:
    """settings["<method>@<bytes>"], else settings["<method>"], else None."""
    return settings.get(f"{method}@{code_bytes}", settings.get(method))


def run_codecs(methods: list[str], budgets: list[int], train: np.ndarray, test: np.ndarray,
               encode_rate: bool, repeats: int = 3, train_rows: dict[str, int] | None = None,
               skip: dict[str, str] | None = None,
               fit_options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Relative MSE on held-out `test` rows for each method at each byte budget.

    A method is built to fit each budget (`build_codec`); a code that fits several budgets
    (a fixed-size one) is trained once and listed at the smallest ("target_bytes"). Bytes per
    row are read from the encoded array. `train_rows` caps a method's training rows (the
    first N of `train`) and `skip` skips it with a reason, both keyed "<method>@<bytes>" or
    "<method>" (every budget); `fit_options` bound "auto"'s search (`build_codec`).
    Optionally the encode rate (rows/s, 1 thread and all) beside faiss.ProductQuantizer at
    the same code size, timed alternately in this run (QET only).
    """
    train_rows, skip = train_rows or {}, skip or {}
    rows, done = [], set()
    for code_bytes in sorted(budgets):
        for method in tqdm(methods, desc=f"codecs @ {code_bytes} B", leave=False):
            reason = _setting(skip, method, code_bytes)
            if reason is not None:
                rows.append(_skipped(method, code_bytes, reason))
                continue
            try:
                codec, spec = build_codec(method, train.shape[1], code_bytes, fit_options)
            except ValueError as err:
                rows.append(_skipped(method, code_bytes, err))
                continue
            if (method, spec) in done:
                continue
            done.add((method, spec))
            rows.append(_measure(codec, method, spec, code_bytes, train[: _setting(train_rows, method, code_bytes)],
                                 test))
            if encode_rate and method.startswith("qet"):
                rows[-1].update(_encode_rates(codec, train, test, code_bytes, repeats))
    return rows


def _measure(codec: Any, method: str, spec: str, code_bytes: int, train: np.ndarray,
             test: np.ndarray) -> dict[str, Any]:
    """Train `codec` on `train`, encode and decode `test`: one result row."""
    start, start_cpu = time.perf_counter(), time.process_time()
    codec.train(train)
    train_s, train_cpu_s = time.perf_counter() - start, time.process_time() - start_cpu
    codes = codec.sa_encode(test)
    if codes.shape[1] > code_bytes:
        raise RuntimeError(f"{method} ({spec}) wrote {codes.shape[1]} bytes per row, more than {code_bytes}")
    row = {"method": method, "spec": spec, "target_bytes": code_bytes, "bytes_per_row": int(codes.shape[1]),
           "bits_per_row": bits_per_row(codes), "mse": relative_mse(test, codec.sa_decode(codes)),
           "mse_meaningful": method not in DISTANCE_ONLY, "n_train": len(train), "train_s": train_s,
           "train_cpu_s": train_cpu_s}
    if hasattr(codec, "details"):
        row.update(codec.details())
    return row


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


def run_bounds(x: np.ndarray, budgets: list[int]) -> list[dict[str, Any]]:
    """The Gaussian rate-distortion bound of x's covariance and the i.i.d. bound at each
    budget, as relative MSE (codes only: R = 8 * bytes / d bits per element)."""
    d = x.shape[1]
    return [{"target_bytes": b, "bits_per_element": 8 * b / d, "gaussian_rd_bound": gaussian_rd_bound(x, 8 * b / d),
             "iid_bound": iid_gaussian_bound(8 * b / d)} for b in sorted(budgets)]


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
