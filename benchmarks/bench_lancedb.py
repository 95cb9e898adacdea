"""Issue 5: qetvec's LanceDB adapter vs LanceDB's own IVF_PQ / IVF_SQ / IVF_RQ on GloVe-50.

Embedded LanceDB in a temporary directory. 399,000 rows (--quick: 50,000) with an `id`
column, 1,000 held-out queries (--quick: 200); exact neighbours from faiss.IndexFlatL2.
Both sides are IVF with the same number of partitions and the same nprobe, searched the
way users call them: one query at a time in a Python loop, returning ids and distances.
Loops are timed alternately in the same run (median of --repeats). Bytes per row: LanceDB
IVF_PQ stores num_sub_vectors bytes (num_bits=8); qetvec reads it from its code columns
(`QETTable.bytes_per_row`: QET code + partition id).

    python benchmarks/bench_lancedb.py [--quick]   # writes benchmarks/results/glove50-lancedb/
"""
from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

import faiss
import lancedb
from lancedb.index import IvfPq, IvfRq, IvfSq
import numpy as np
import pyarrow as pa
import qetvec_lancedb
from faiss.contrib.evaluation import knn_intersection_measure
from tqdm.auto import tqdm

from qetvec import data
from qetvec.evaluation import compare_timing

from _common import write_rows_result  # benchmarks/ is on sys.path when a script runs


def arrow_rows(x: np.ndarray) -> pa.Table:
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1])
    return pa.table({"id": pa.array(np.arange(len(x), dtype=np.int64)), "vector": vectors})


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/glove50-lancedb"))
    args = parser.parse_args(argv)
    n_base, n_queries, nlist = (50000, 200, 64) if args.quick else (None, 1000, 256)
    queries, base = data.split(data.load("glove-50"), (n_queries, n_base))
    truth = faiss.knn(queries, base, 10)[1]
    rows = arrow_rows(base)
    db = lancedb.connect(tempfile.mkdtemp(prefix="qetvec-bench-lancedb-"))
    natives, skipped = {}, []
    for label, config, code_bytes in [("IVF_PQ sub=10", IvfPq(num_partitions=nlist, num_sub_vectors=10), 10),
                                      ("IVF_PQ sub=25", IvfPq(num_partitions=nlist, num_sub_vectors=25), 25),
                                      ("IVF_RQ", IvfRq(num_partitions=nlist), None),
                                      ("IVF_SQ", IvfSq(num_partitions=nlist), 50)]:
        table = db.create_table(label.replace(" ", "_").replace("=", ""), rows)
        try:
            table.create_index("vector", config=config)
        except ValueError as err:  # e.g. IVF_RQ needs d % 8 == 0
            skipped.append({"method": f"LanceDB {label}", "target_bytes": code_bytes, "skipped": str(err)})
            continue
        natives[label] = (table, code_bytes)
    ours = {label: (qetvec_lancedb.create_table(db, f"qet_{i}", rows, m=m, levels=levels, nlist=nlist), cb)
            for i, (label, m, levels, cb) in enumerate([("qetvec QET10x8_L0", 10, 0, 10),
                                                        ("qetvec QET25x8_L0", 25, 0, 25),
                                                        ("qetvec QET21x8_L1", 21, 1, 25)])}

    def native_loop(table, nprobe):
        return [table.search(q).nprobes(nprobe).limit(10).select(["id"]).to_arrow()["id"].to_numpy() for q in queries]

    def our_loop(table, nprobe):
        return [table.search(q, 10, nprobe=nprobe, columns=["id"])["id"].to_numpy() for q in queries]

    def ids(results):
        return np.stack([np.pad(r, (0, 10 - len(r)), constant_values=-1) for r in results])

    out = []
    for nprobe in tqdm([5, 20, 50], desc="nprobe"):
        for label, (table, code_bytes) in natives.items():
            out.append({"method": f"LanceDB {label}", "bytes_per_row": code_bytes, "nprobe": nprobe,
                        "recall@10": knn_intersection_measure(ids(native_loop(table, nprobe)), truth)})
        reference = natives["IVF_PQ sub=10"][0]
        for label, (table, _) in ours.items():
            t = compare_timing(lambda: our_loop(table, nprobe), lambda: native_loop(reference, nprobe), args.repeats)
            out.append({"method": label, "bytes_per_row": table.bytes_per_row, "nprobe": nprobe,
                        "recall@10": knn_intersection_measure(ids(our_loop(table, nprobe)), truth),
                        "qps": n_queries / t.ours, "lancedb_ivfpq10_qps": n_queries / t.baseline,
                        "speed_ratio": t.baseline / t.ours})
    out += skipped
    result = {"command": "python benchmarks/bench_lancedb.py " + shlex.join(argv), "rows": out,
              "setup": f"glove-50: {len(base)} rows, {n_queries} single-query searches, {nlist} partitions, "
                       f"lancedb {lancedb.__version__}; speed ratio > 1: qetvec faster than LanceDB IVF_PQ sub=10"}
    print(write_rows_result(result, "LanceDB on GloVe-50", ["method", "bytes_per_row", "nprobe", "recall@10",
                            "qps", "lancedb_ivfpq10_qps", "speed_ratio"], args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
