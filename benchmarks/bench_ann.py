"""Issue 18: ANN search with the best code for the bytes, against FAISS's IVF indexes at equal bytes.

For each budget B (bytes stored per row in the inverted lists, ids aside): qetvec's
`IVF{nlist},Auto{B}` (`qetvec.fit_codec` on the IVF residuals, every stored byte counted:
code and any per-row norm) beside every FAISS IVF index whose list codes take at most B
bytes: PQ (M dividing d, 8-bit codes), RaBitQ with 1, 2 and 4 bits (its per-vector factors
included), SQ4, SQ8, TurboQuant (SQtqmse1-4) and EDEN (EDEN2-4). All share one set of
coarse centroids. Reported:

  * recall@10 without re-ranking for every nprobe of the sweep (the equal-bytes comparison);
  * with exact re-ranking (RFlat, k_factor 10, the float vectors kept by both), the smallest
    nprobe of the sweep reaching recall@10 >= 0.9, for qetvec and for FAISS IVF-PQ (the
    index users reach for at this budget), and their queries/s on 1 thread and on all
    threads, timed alternately in one process (median of --repeats): qetvec as built, then
    with `precompute_rows` (rows' table entries and list terms in memory), each with the
    bytes per row it holds in memory beside FAISS's (code, id, float vector; and the
    precomputed columns).

    python benchmarks/bench_ann.py --dataset glove-50 --bytes 8 10 16 25
    python benchmarks/bench_ann.py --dataset minilm-stdlib --bytes 24 48 96 192

`--faiss-codes` narrows the FAISS codes compared beside IVF-PQ (the operating-point
baseline, always built), e.g. `--faiss-codes` alone for the speed rows only.
`--objective ranking` builds `Auto{B}_rank` instead: fit_codec's candidates ranked by the
error of the inner products a search computes rather than by MSE.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from faiss.contrib.evaluation import knn_intersection_measure

import qetvec
from _common import write_rows_result  # benchmarks/ is on sys.path when a script runs
from qetvec import data
from qetvec.bench.sizing import pq_shape
from qetvec.evaluation import compare_timing, threads

K, K_FACTOR, TARGET = 10, 10, 0.9
NPROBES = [1, 2, 4, 8, 16, 32, 64, 128]
FAISS_CODES = ["RaBitQ", "RaBitQ2", "RaBitQ4", "SQ4", "SQ8", "SQtqmse1", "SQtqmse2", "SQtqmse3",
               "SQtqmse4", "EDEN2", "EDEN3", "EDEN4"]
DATASETS = {"glove-50": ("glove-50", None), "minilm-stdlib": ("minilm-stdlib", "minilm-stdlib-queries")}


def load(name: str, n_queries: int, n_base: int) -> tuple[np.ndarray, np.ndarray]:
    """(queries (nq, d), base (n, d)) float32 of a dataset; queries never in the base."""
    base_name, query_name = DATASETS[name]
    x = data.load(base_name)
    if query_name is None:
        queries, base = data.split(x, (n_queries, n_base))
        return queries, base
    return data.load(query_name)[:n_queries], x[:n_base]


def faiss_specs(d: int, budget: int, nlist: int, codes: list[str]) -> list[str]:
    """FAISS IVF factory strings whose list codes take at most `budget` bytes: PQ, then
    each of `codes` (names of FAISS_CODES) that fits."""
    specs = []
    shape = pq_shape(d, budget)
    if shape is not None:
        specs.append(f"IVF{nlist},PQ{shape[0]}x{shape[1]}")
    for code in codes:
        spec = f"IVF{nlist},{code}"
        if faiss.extract_index_ivf(faiss.index_factory(d, spec)).code_size <= budget:
            specs.append(spec)
    return specs


def list_bytes(index: Any) -> int:
    """Bytes per row in the inverted lists: qetvec's stored code array width (MEASURING.md),
    FAISS's code_size."""
    if isinstance(index, qetvec.IndexIVFQET):
        return index.lists.codes.shape[1]
    return faiss.extract_index_ivf(index).code_size


def ivf_layer(index: Any) -> Any:
    return index if isinstance(index, qetvec.IndexIVFQET) else faiss.extract_index_ivf(index)


def build(spec: str, d: int, centroids: np.ndarray, train: np.ndarray, base: np.ndarray) -> tuple[Any, Any, float]:
    """(IVF index, the same with exact re-ranking, train + add seconds) of a factory string,
    qetvec's ("Auto" codes) or FAISS's, over the shared coarse `centroids`."""
    start = time.perf_counter()
    qet = "Auto" in spec
    index = (qetvec.index_factory if qet else faiss.index_factory)(d, spec)
    ivf_layer(index).quantizer.add(centroids)
    refine = qetvec.IndexRefineFlat(index) if qet else faiss.IndexRefineFlat(index)
    refine.k_factor = K_FACTOR
    refine.train(train)
    refine.add(base)
    return index, refine, time.perf_counter() - start


def search(index: Any, queries: np.ndarray, nprobe: int) -> np.ndarray:
    """Ids (nq, K) of `index` (an IVF index or one under re-ranking) at `nprobe`."""
    inner = getattr(index, "base_index", None) or getattr(index, "base", None) or index
    ivf_layer(inner).nprobe = nprobe
    return index.search(queries, K)[1]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="glove-50", help="(default: %(default)s)")
    parser.add_argument("--bytes", type=int, nargs="+", default=[8, 10, 16, 25], help="(default: %(default)s)")
    parser.add_argument("--n-base", type=int, default=200_000, help="database rows (default: %(default)s)")
    parser.add_argument("--n-train", type=int, default=100_000, help="training rows, from the base (default: %(default)s)")
    parser.add_argument("--n-queries", type=int, default=1000, help="(default: %(default)s)")
    parser.add_argument("--nlist", type=int, default=1024, help="(default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions (default: %(default)s)")
    parser.add_argument("--faiss-codes", nargs="*", choices=FAISS_CODES, default=FAISS_CODES,
                        help="FAISS codes beside IVF-PQ (default: all)")
    parser.add_argument("--objective", choices=["mse", "ranking"], default="mse",
                        help="fit_codec's objective for qetvec's Auto code (default: %(default)s)")
    parser.add_argument("--out", type=Path, help="(default: benchmarks/results/<dataset>-ann)")
    args = parser.parse_args(argv)
    queries, base = load(args.dataset, args.n_queries, args.n_base)
    n, d = base.shape
    train = base[np.sort(np.random.default_rng(0).permutation(n)[:args.n_train])]
    truth = faiss.knn(queries, base, K)[1]
    kmeans = faiss.Kmeans(d, args.nlist, niter=20, seed=1)
    kmeans.train(train)
    centroids = kmeans.centroids
    rows = []
    for budget in args.bytes:
        built = {}
        auto = f"IVF{args.nlist},Auto{budget}" + ("_rank" if args.objective == "ranking" else "")
        for spec in [auto] + faiss_specs(d, budget, args.nlist, args.faiss_codes):
            built[spec] = build(spec, d, centroids, train, base)
            print(f"{budget} B: {spec} built in {built[spec][2]:.0f} s", flush=True)
        recall = {spec: {p: knn_intersection_measure(search(index, queries, p), truth) for p in NPROBES}
                  for spec, (index, _, _) in built.items()}
        refined = {spec: {p: knn_intersection_measure(search(refine, queries, p), truth) for p in NPROBES}
                   for spec, (_, refine, _) in built.items()}
        for spec, (index, _, seconds) in built.items():
            codec = index.codec if isinstance(index, qetvec.IndexIVFQET) else None
            row = {"budget": budget, "method": spec, "bytes_per_row": list_bytes(index), "build_s": round(seconds),
                   "codec": repr(codec) if codec is not None else spec.split(",")[1]}
            row.update({f"nprobe {p}": round(recall[spec][p], 4) for p in NPROBES})
            rows.append(row)
        rows.extend(_operating_point(budget, built, refined, queries, args.repeats))
    result = {"command": "python benchmarks/bench_ann.py " + shlex.join(argv), "rows": rows,
              "setup": f"{args.dataset}: {n} base rows, {len(queries)} queries (never in the base), nlist "
                       f"{args.nlist} (one set of k-means centroids for all), codecs trained on {len(train)} base "
                       f"rows, k={K}; RFlat k_factor {K_FACTOR}; faiss {faiss.__version__}, "
                       f"{faiss.omp_get_max_threads()} threads. Columns 'nprobe p': recall@10 at nprobe p, no re-ranking. "
                       "Operating-point rows: smallest nprobe with recall@10 >= 0.9 under RFlat, QPS on 1 and all "
                       f"threads, qetvec and FAISS IVF-PQ alternated, median of {args.repeats}; '_pre': qetvec with "
                       "precompute_rows; 'mem_per_row': bytes per row in memory (code, row term, id, float vector; "
                       "'_pre': and the precomputed entries and term), FAISS's in 'baseline_mem_per_row'."}
    out = args.out or Path(f"benchmarks/results/{args.dataset}-ann")
    print(write_rows_result(result, f"ANN on {args.dataset}: the best code for the bytes vs FAISS IVF indexes",
                            ["budget", "method", "bytes_per_row", *[f"nprobe {p}" for p in NPROBES], "nprobe_at_0.9",
                             "recall_at_0.9", "qps_1thread", "baseline_qps_1thread", "speed_ratio_1thread",
                             "qps_all", "baseline_qps_all", "speed_ratio_all", "qps_1thread_pre",
                             "speed_ratio_1thread_pre", "qps_all_pre", "speed_ratio_all_pre", "mem_per_row",
                             "mem_per_row_pre", "baseline_mem_per_row"], out))
    return 0


def _operating_point(budget: int, built: dict, refined: dict, queries: np.ndarray, repeats: int) -> list[dict]:
    """Rows of qetvec vs FAISS IVF-PQ under RFlat at the smallest nprobe reaching TARGET."""
    ours = next(s for s in built if "Auto" in s)
    pq = next((s for s in built if ",PQ" in s), None)
    if pq is None:
        return [{"budget": budget, "method": ours + ",RFlat", "note": "no FAISS IVF-PQ fits this budget"}]
    point = {s: next((p for p in NPROBES if refined[s][p] >= TARGET), None) for s in (ours, pq)}
    if None in point.values():
        return [{"budget": budget, "method": s + ",RFlat", "note": f"recall@10 < {TARGET} at every nprobe"}
                for s, p in point.items() if p is None]
    out = {"budget": budget, "method": ours + ",RFlat", "baseline": pq + ",RFlat",
           "nprobe_at_0.9": point[ours], "recall_at_0.9": round(refined[ours][point[ours]], 4),
           "baseline_nprobe": point[pq], "baseline_recall": round(refined[pq][point[pq]], 4)}
    index, d = built[ours][0], queries.shape[1]
    row_bytes = index.code_size + 8 + 4 * d  # code and row term, id, float vector
    out["baseline_mem_per_row"] = faiss.extract_index_ivf(built[pq][0]).code_size + 8 + 4 * d
    for suffix in ("", "_pre"):
        index.precompute_rows = suffix == "_pre"
        for label, n in (("1thread", 1), ("all", faiss.omp_get_max_threads())):
            with threads(n):
                t = compare_timing(lambda: search(built[ours][1], queries, point[ours]),
                                   lambda: search(built[pq][1], queries, point[pq]), repeats)
            out[f"qps_{label}{suffix}"] = round(len(queries) / t.ours)
            out[f"baseline_qps_{label}"] = round(len(queries) / t.baseline)  # the last of two runs
            out[f"speed_ratio_{label}{suffix}"] = round(t.baseline / t.ours, 3)
        out[f"mem_per_row{suffix}"] = row_bytes + index.precomputed_bytes_per_row
    index.precompute_rows = False
    return [out]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
