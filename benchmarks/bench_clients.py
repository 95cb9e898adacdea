"""Issue 11: per-call costs FAISS clients rely on, qetvec vs FAISS in the same run.

1. latency   single-query search at nprobe 1 on 25k, 100k and 400k GloVe-50 rows:
             qetvec IVF1024,QET10x8_L0 vs FAISS IVF1024,PQ10 (ann-benchmarks' call pattern),
             microseconds per query, alternated (median of --repeats). Target: qetvec's
             largest / smallest within 1.5x.
2. adds      one-row `add` calls (LlamaIndex's pattern) into a flat index: qetvec
             QET10x8_L0 vs FAISS IndexPQ(50, 10, 8) holding the same codebooks. Target:
             within 3x FAISS's time; time per row of the last fifth vs the first fifth
             shows whether the cost grows with n.
3. bulk      --batches batches of 1,000 rows (GloVe repeated with noise) into IVF1024:
             seconds per batch must stay flat (linear total); FAISS IVF-PQ alongside,
             alternated batch by batch.

Everything runs on 1 thread (busy shared machines give steadier single-thread numbers).
`--metric ip` runs the latency part with inner product, where IVF codes carry no per-row
float32 term (L2 stores beta per row, copied on each search until the scan no longer needs it).

    python benchmarks/bench_clients.py [--quick]   # writes benchmarks/results/clients/
    python benchmarks/bench_clients.py --metric ip --parts latency --out benchmarks/results/clients-ip-latency
"""
from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path

import faiss
import numpy as np

import qetvec
from qetvec import data
from qetvec.evaluation import compare_timing, threads
from qetvec.io import deserialize, serialize
from qetvec_faiss.export import to_faiss

from _common import write_rows_result  # benchmarks/ is on sys.path when a script runs

NLIST = 1024


def trained_pair(train: np.ndarray, spec_qet: str, spec_faiss: str,
                 metric: str = "l2") -> tuple[bytes, faiss.Index]:
    """(serialized empty trained qetvec index, empty trained FAISS index)."""
    ours = qetvec.index_factory(train.shape[1], spec_qet, metric)
    ours.train(train)
    theirs = faiss.index_factory(train.shape[1], spec_faiss, ours.metric_type)
    theirs.train(train)
    return serialize(ours), theirs


def latency_rows(base: np.ndarray, queries: np.ndarray, train: np.ndarray, sizes: list[int],
                 repeats: int, metric: str) -> list[dict]:
    blob, theirs_empty = trained_pair(train, f"IVF{NLIST},QET10x8_L0", f"IVF{NLIST},PQ10", metric)
    rows = []
    for n in sizes:
        ours, theirs = deserialize(blob), faiss.clone_index(theirs_empty)
        ours.add(base[:n])
        theirs.add(base[:n])
        ours.nprobe = theirs.nprobe = 1
        singles = [q[None] for q in queries]
        t = compare_timing(lambda: [ours.search(q, 10) for q in singles],
                           lambda: [theirs.search(q, 10) for q in singles], repeats)
        rows.append({"test": f"latency nprobe=1 ({metric})", "rows": n, "qetvec_us": 1e6 * t.ours / len(singles),
                     "faiss_us": 1e6 * t.baseline / len(singles), "ratio": t.ratio})
    for side in ("qetvec_us", "faiss_us"):
        rows.append({"test": "latency largest/smallest", "rows": f"{sizes[-1]}/{sizes[0]}",
                     side: rows[len(sizes) - 1][side] / rows[0][side]})
    return rows


def timed_one_row_adds(index, x: np.ndarray) -> list[float]:
    """Seconds of each one-row add of x's rows, in order."""
    out = []
    for row in x:
        start = time.perf_counter()
        index.add(row[None])
        out.append(time.perf_counter() - start)
    return out


def add_rows(base: np.ndarray, train: np.ndarray, n_adds: int, repeats: int) -> list[dict]:
    flat = qetvec.index_factory(base.shape[1], "QET10x8_L0")
    flat.train(train)
    blob = serialize(flat)
    x = base[:n_adds]
    ours_runs, theirs_runs = [], []
    for _ in range(repeats):  # alternated: a fresh qetvec index, then a fresh FAISS one
        ours_runs.append(timed_one_row_adds(deserialize(blob), x))
        theirs_runs.append(timed_one_row_adds(to_faiss(deserialize(blob)), x))
    ours = min(ours_runs, key=sum)
    theirs = min(theirs_runs, key=sum)
    fifth = n_adds // 5
    total_ours = statistics.median(sum(r) for r in ours_runs)
    total_theirs = statistics.median(sum(r) for r in theirs_runs)
    return [{"test": f"{n_adds} one-row adds (s)", "qetvec": total_ours, "faiss": total_theirs,
             "ratio": total_ours / total_theirs},
            {"test": "one-row add, last fifth / first fifth (per row)",
             "qetvec": sum(ours[-fifth:]) / sum(ours[:fifth]),
             "faiss": sum(theirs[-fifth:]) / sum(theirs[:fifth])}]


def bulk_rows(x: np.ndarray, train: np.ndarray, batches: int) -> list[dict]:
    blob, theirs = trained_pair(train, f"IVF{NLIST},QET10x8_L0", f"IVF{NLIST},PQ10")
    ours = deserialize(blob)
    rng = np.random.default_rng(0)
    t_ours, t_theirs = [], []
    for b in range(batches):
        rows = x[rng.integers(0, len(x), 1000)]
        batch = (rows + rng.normal(0, 0.05, rows.shape)).astype(np.float32)
        for index, sink in ((ours, t_ours), (theirs, t_theirs)):
            start = time.perf_counter()
            index.add(batch)
            sink.append(time.perf_counter() - start)
    tenth = max(1, batches // 10)
    out = []
    for name, t in (("qetvec", t_ours), ("faiss", t_theirs)):
        first, last = statistics.median(t[:tenth]), statistics.median(t[-tenth:])
        out.append({"test": f"bulk {batches}x1000 rows, {name}", "first_tenth_s_per_batch": first,
                    "last_tenth_s_per_batch": last, "last/first": last / first, "total_s": sum(t),
                    "final_rows": ours.ntotal})
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="train on 20k rows, 100 queries, 5,000 one-row adds, 100 bulk batches")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", type=int, default=None, help="bulk batches (default 1000, quick 100)")
    parser.add_argument("--metric", choices=["l2", "ip"], default="l2", help="metric of the latency part")
    parser.add_argument("--parts", default="latency,adds,bulk", help="comma-separated parts to run")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/clients"))
    args = parser.parse_args(argv)
    n_train, n_queries, n_adds = (20000, 100, 5000) if args.quick else (50000, 200, 20000)
    batches = args.batches or (100 if args.quick else 1000)
    x = data.load("glove-50")
    queries, base = data.split(x, (n_queries, None))
    base = base[np.random.default_rng(0).permutation(len(base))]
    train = base[:n_train]
    sizes = [25000, 100000, len(base)]
    parts, rows = args.parts.split(","), []
    with threads(1):
        if "latency" in parts:
            rows += latency_rows(base, queries, train, sizes, args.repeats, args.metric)
        if "adds" in parts:
            rows += add_rows(base, train, n_adds, args.repeats)
        if "bulk" in parts:
            rows += bulk_rows(base, train, batches)
    result = {"command": "python benchmarks/bench_clients.py " + shlex.join(argv), "rows": rows,
              "setup": f"glove-50 ({len(base)} rows + {n_queries} queries), trained on {n_train} rows, "
                       f"nlist={NLIST}, 1 thread, faiss {faiss.__version__}; 2-core shared dev box, busy"}
    print(write_rows_result(result, "FAISS-client costs on GloVe-50", [
        "test", "rows", "qetvec_us", "faiss_us", "ratio", "qetvec", "faiss", "first_tenth_s_per_batch",
        "last_tenth_s_per_batch", "last/first", "total_s", "final_rows"], args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
