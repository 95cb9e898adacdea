"""Issues 5 and 13: qetvec's LanceDB adapter vs LanceDB's own IVF_PQ on GloVe-50, at equal
bytes per row, single queries and a 1,000-query batch.

Embedded LanceDB in a temporary directory. 399,000 rows (--quick: 50,000) with an `id`
column, 1,000 held-out queries (--quick: 200); exact neighbours from faiss.IndexFlatL2.
Both sides are IVF with the same number of partitions (256; --quick: 64) and residual
product-style codes at equal bytes per row: LanceDB IVF_PQ stores num_sub_vectors bytes
(num_bits=8); qetvec reads its bytes from the stored schema (`QETTable.bytes_per_row`: QET
code + 1-byte partition id), so QET6x12 (72 bits: 9 B + 1 B) faces PQ sub=10 and QET16x12
(192 bits: 24 B + 1 B) faces sub=25 (levels=0: the tree adds swap bits that did not pay off
on GloVe; 12-bit codebooks spend the code bits better than 8-bit ones at these sizes).
With --budget our tables are `create_table(..., bytes_per_row=B)` instead, B = LanceDB's
num_sub_vectors (10, 25): the code `fit_codec` picks for B stored bytes, partition id included.
Bytes on disk are measured too: LanceDB's index folder (`_indices`, codes and row ids) per
row, and ours: the table's data folder minus LanceDB's table of the same rows (our code
columns) plus the quantizer file, per row.

Timings (median of --repeats, alternated in the same run, as MEASURING.md asks):
- single queries: a Python loop of one-query searches returning ids (both APIs), per
  nprobe; the equal-recall ratio compares our QPS with LanceDB's QPS interpolated on its
  own nprobe curve at our recall;
- batch: one `QETTable.query(queries (1000, d))` call vs LanceDB's one-query loop (the batch
  is scored by matrix products, `qetvec.adc.search_decoded`: its recall is reported, equal to
  the single-query recall up to near-ties).
Both return the `id` column; ours comes from the adapter's per-version column cache, LanceDB
reads it with its search. The first search of our table (loading the code cache) is timed
apart ("first search").
Threads: whatever both libraries use by default on the machine (2 cores); OMP_WAIT_POLICY
defaults to PASSIVE here, as on a shared box OpenMP's spinning waits cost numba's parallel
scan up to 40x.

    python benchmarks/bench_lancedb.py [--quick] [--budget] [--repeats 3] [--train-rows N] [--out DIR]
    # -> benchmarks/results/glove50-lancedb[-budget][-quick]/ by default
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before numba / faiss load OpenMP

import argparse  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import faiss  # noqa: E402
import lancedb  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
from faiss.contrib.evaluation import knn_intersection_measure  # noqa: E402
from lancedb.index import IvfPq  # noqa: E402

import qetvec_lancedb  # noqa: E402
from qetvec import data  # noqa: E402
from _common import write_rows_result  # noqa: E402  (benchmarks/ is on sys.path when a script runs)
from qetvec.evaluation import compare_timing  # noqa: E402

COLUMNS = ["method", "bytes_per_row", "disk_bytes_per_row", "nprobe", "recall@10", "qps",
           "lancedb_qps_same_nprobe", "lancedb_recall_same_nprobe", "lancedb_qps_equal_recall",
           "speed_ratio_equal_recall", "batch_recall@10", "batch_qps", "batch_speedup_vs_lancedb_loop"]
CONFIGS = [(10, 6, 12), (25, 16, 12)]  # (LanceDB num_sub_vectors, QET m, nbits) at equal bytes


def folder_bytes(path: Path) -> int:
    """Bytes of all files under path (0 if it does not exist)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def arrow_rows(x: np.ndarray) -> pa.Table:
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1])
    return pa.table({"id": pa.array(np.arange(len(x), dtype=np.int64)), "vector": vectors})


def padded(results: list[np.ndarray], k: int = 10) -> np.ndarray:
    return np.stack([np.pad(r, (0, k - len(r)), constant_values=-1) for r in results])


def interpolate_qps(recall: float, curve: list[tuple[float, float]]) -> float | None:
    """LanceDB's QPS at `recall` on its (recall, qps) curve, linear between the nprobe
    points; None outside the curve's recall range."""
    pts = sorted(curve)
    if not pts[0][0] <= recall <= pts[-1][0]:
        return None
    return float(np.interp(recall, [r for r, _ in pts], [q for _, q in pts]))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--budget", action="store_true",
                        help="our tables by bytes_per_row (fit_codec's pick) instead of QET6x12 / QET16x12")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--train-rows", type=int, default=100_000,
                        help="rows our quantizer and centroids train on (create_table's train_rows)")
    args = parser.parse_args(argv)
    out_dir = args.out or Path("benchmarks/results/glove50-lancedb" + "-budget" * args.budget + "-quick" * args.quick)
    n_base, n_queries, nlist = (50000, 200, 64) if args.quick else (None, 1000, 256)
    nprobes = [1, 2, 5, 10, 20, 40]
    queries, base = data.split(data.load("glove-50"), (n_queries, n_base))
    truth = faiss.knn(queries, base, 10)[1]
    rows = arrow_rows(base)
    root = Path(tempfile.mkdtemp(prefix="qetvec-bench-lancedb-"))
    db = lancedb.connect(root)
    build_s: dict[str, float] = {}
    disk: dict[str, float] = {}
    disk_parts: dict[str, dict[str, float]] = {}
    codecs: dict[str, str] = {}
    pairs = []
    for sub, m, nbits in CONFIGS:
        native_label = f"LanceDB IVF_PQ sub={sub}"
        label = f"qetvec bytes_per_row={sub}" if args.budget else f"qetvec QET{m}x{nbits}_L0"
        codes = {"bytes_per_row": sub} if args.budget else {"m": m, "nbits": nbits, "levels": 0}
        start = time.perf_counter()
        native = db.create_table(f"ivfpq{sub}", rows)
        native.create_index("vector", config=IvfPq(num_partitions=nlist, num_sub_vectors=sub))
        build_s[native_label] = time.perf_counter() - start
        start = time.perf_counter()
        ours = qetvec_lancedb.create_table(db, f"qet{m}", rows, **codes, nlist=nlist,
                                           train_rows=args.train_rows, progress=False)
        build_s[label] = time.perf_counter() - start
        codecs[label] = repr(ours.codec.codec)  # the codec inside the table's IVF wrapper
        start = time.perf_counter()
        ours.query(queries[0], 10, columns=["id"])
        build_s[label + " first search (code cache load)"] = time.perf_counter() - start
        disk[native_label] = folder_bytes(root / f"ivfpq{sub}.lance" / "_indices") / len(base)
        disk_parts[label] = {
            "code_columns": (folder_bytes(root / f"qet{m}.lance" / "data")
                             - folder_bytes(root / f"ivfpq{sub}.lance" / "data")) / len(base),
            "quantizer_file": folder_bytes(root / f"qet{m}.qetvec") / len(base)}
        disk[label] = sum(disk_parts[label].values())
        pairs.append((native_label, native, sub, label, ours))

    last: dict[str, list[np.ndarray]] = {}

    def native_loop(table, nprobe):
        last["native"] = [table.search(q).nprobes(nprobe).limit(10).select(["id", "_distance"]).to_arrow()
                          ["id"].to_numpy() for q in queries]

    def our_loop(table, nprobe):
        last["ours"] = [table.query(q, 10, nprobe=nprobe, columns=["id"])["id"].to_numpy() for q in queries]

    def our_batch(table, nprobe):
        res = table.query(queries, 10, nprobe=nprobe, columns=["id"])
        owner = res["query_index"].to_numpy()
        last["batch"] = np.split(res["id"].to_numpy(), np.searchsorted(owner, np.arange(1, n_queries)))

    out = []
    for native_label, native, sub, label, ours in pairs:
        points = []
        for nprobe in nprobes:
            t = compare_timing(lambda: our_loop(ours, nprobe), lambda: native_loop(native, nprobe), args.repeats)
            points.append({"method": label, "bytes_per_row": ours.bytes_per_row,
                           "disk_bytes_per_row": round(disk[label], 2), "nprobe": nprobe,
                           "recall@10": knn_intersection_measure(padded(last["ours"]), truth), "qps": n_queries / t.ours,
                           "lancedb_qps_same_nprobe": n_queries / t.baseline,
                           "lancedb_recall_same_nprobe": knn_intersection_measure(padded(last["native"]), truth)})
            if nprobe == 20:
                b = compare_timing(lambda: our_batch(ours, nprobe), lambda: native_loop(native, nprobe), args.repeats)
                points[-1].update({"batch_recall@10": knn_intersection_measure(padded(last["batch"]), truth),
                                   "batch_qps": n_queries / b.ours, "batch_speedup_vs_lancedb_loop": b.baseline / b.ours})
            print(points[-1], flush=True)
        curve = [(p["lancedb_recall_same_nprobe"], p["lancedb_qps_same_nprobe"]) for p in points]
        out += [{"method": native_label, "bytes_per_row": sub, "disk_bytes_per_row": round(disk[native_label], 2),
                 "nprobe": p["nprobe"],
                 "recall@10": p["lancedb_recall_same_nprobe"], "qps": p["lancedb_qps_same_nprobe"]} for p in points]
        for p in points:
            equal = interpolate_qps(p["recall@10"], curve)
            p.update(lancedb_qps_equal_recall=equal, speed_ratio_equal_recall=None if equal is None else p["qps"] / equal)
        out += points
    result = {"command": "python benchmarks/bench_lancedb.py " + shlex.join(argv), "rows": out,
              "build_seconds": build_s, "disk_bytes_per_row_parts": disk_parts, "codecs": codecs,
              "setup": f"glove-50: {len(base)} rows, {n_queries} held-out queries, {nlist} partitions, k=10, "
                       f"lancedb {lancedb.__version__}; qetvec trained on {min(args.train_rows, len(base))} rows; "
                       "2-core shared dev box, busy (other engineers' jobs); "
                       f"threads: library defaults (2 cores), OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}; "
                       f"median of {args.repeats} alternated repeats. speed_ratio_equal_recall > 1: qetvec faster "
                       "than LanceDB IVF_PQ at the same recall (LanceDB's QPS interpolated on its nprobe curve); "
                       "batch: one (nq, d) query call vs LanceDB's one-query loop at the same nprobe; "
                       "bytes_per_row from the stored schemas; disk_bytes_per_row: LanceDB's index folder "
                       "(codes + row ids) per row, ours: our code columns on disk + the quantizer file, per row"}
    print(write_rows_result(result, "LanceDB on GloVe-50", COLUMNS, out_dir))
    shutil.rmtree(root, ignore_errors=True)  # both tables of every budget (hundreds of MB)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
