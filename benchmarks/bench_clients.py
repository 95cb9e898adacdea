"""Issues 11 and 21: per-call costs FAISS clients rely on, qetvec vs FAISS in the same run.

1. latency   single-query search (ann-benchmarks' and LangChain's call pattern), qetvec
             vs FAISS holding the same codebooks and codes (`qetvec_faiss.to_faiss`), at
             25k, 100k and 400k GloVe-50 rows, on 1 thread and on all cores:
             IVF1024,QET10x8_L0 at nprobe 1 vs IndexIVFPQ, and flat QET10x8_L0 vs IndexPQ
             (10-byte codes), microseconds per query; then LangChain's `FAISS` store: 200
             `similarity_search` calls (k=4) of a flat 20k-row store over each index.
             Each query's two calls back to back, every call's time the median of
             --repeats rounds. Target: every ratio <= 1.5.
             `same_ids`: share of returned ids equal to FAISS's (its ADC adds the table
             terms in another order, so near-ties may differ).
2. adds      one-row `add` calls (LlamaIndex's pattern) into a flat index: qetvec
             QET10x8_L0 vs FAISS IndexPQ(50, 10, 8) holding the same codebooks. Target:
             within 3x FAISS's time; time per row of the last fifth vs the first fifth
             shows whether the cost grows with n.
3. bulk      --batches batches of 1,000 rows (GloVe repeated with noise) into IVF1024:
             seconds per batch must stay flat (linear total); FAISS IVF-PQ alongside,
             alternated batch by batch.

Adds and bulk run on 1 thread (busy shared machines give steadier single-thread numbers).
`--metric ip` runs the latency part with inner product.

    python benchmarks/bench_clients.py [--quick]        # writes benchmarks/results/clients/
    python benchmarks/bench_clients.py --parts latency  # writes benchmarks/results/clients-latency/
"""
from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import faiss
import numpy as np

import qetvec
from qetvec import data
from qetvec._optional import require
from qetvec.evaluation import Timing, threads
from qetvec.io import deserialize, serialize
from qetvec_faiss.export import to_faiss

from _common import write_rows_result  # benchmarks/ is on sys.path when a script runs

NLIST = 1024
PARTS = ("latency", "adds", "bulk")


def trained_pair(train: np.ndarray, spec_qet: str, spec_faiss: str,
                 metric: str = "l2") -> tuple[bytes, faiss.Index]:
    """(serialized empty trained qetvec index, empty trained FAISS index)."""
    ours = qetvec.index_factory(train.shape[1], spec_qet, metric)
    ours.train(train)
    theirs = faiss.index_factory(train.shape[1], spec_faiss, ours.metric_type)
    theirs.train(train)
    return serialize(ours), theirs


def trained(train: np.ndarray, spec: str, metric: str = "l2") -> bytes:
    """A serialized empty trained qetvec index (every copy starts from the same codebooks)."""
    index = qetvec.index_factory(train.shape[1], spec, metric)
    index.train(train)
    return serialize(index)


def thread_counts() -> list[int]:
    """1 thread, then every core of the machine."""
    return sorted({1, os.cpu_count() or 1})


def per_call_alternated(ours: Callable[[Any], object], theirs: Callable[[Any], object], items: list,
                        repeats: int) -> Timing:
    """Seconds of ours(item) and theirs(item) summed over items, each call's time the median
    of `repeats` rounds; the two are called back to back for every item of every round (after
    one warm-up round), so both see the same machine state even on a busy machine."""
    times = np.empty((2, repeats + 1, len(items)))
    for r in range(repeats + 1):
        for i, item in enumerate(items):
            for side, fn in enumerate((ours, theirs)):
                start = time.perf_counter()
                fn(item)
                times[side, r, i] = time.perf_counter() - start
    ours_s, theirs_s = np.median(times[:, 1:], axis=1).sum(axis=1)
    return Timing(float(ours_s), float(theirs_s))


def same_ids(ours, theirs, singles: list[np.ndarray], k: int) -> float:
    """Share of the ids of single-query searches on which the two indexes agree."""
    return float(np.mean([np.array_equal(ours.search(q, k)[1], theirs.search(q, k)[1]) for q in singles]))


def latency_rows(base: np.ndarray, queries: np.ndarray, train: np.ndarray, sizes: list[int],
                 repeats: int, metric: str) -> list[dict]:
    """Microseconds per single-query search, IVF at nprobe 1 and flat, qetvec vs FAISS
    holding the same codes, per size and thread count."""
    blobs = {"IVF1024 nprobe=1": trained(train, f"IVF{NLIST},QET10x8_L0", metric),
             "flat": trained(train, "QET10x8_L0", metric)}
    singles = [q[None] for q in queries]
    rows = []
    for n in sizes:
        for kind, blob in blobs.items():
            ours = deserialize(blob)
            ours.add(base[:n])
            if kind != "flat":
                ours.nprobe = 1
            theirs = to_faiss(ours)
            agree = same_ids(ours, theirs, singles, 10)
            for n_threads in thread_counts():
                with threads(n_threads):
                    t = per_call_alternated(lambda q: ours.search(q, 10), lambda q: theirs.search(q, 10),
                                            singles, repeats)
                rows.append({"test": f"single query, {kind} ({metric})", "rows": n, "threads": n_threads,
                             "qetvec_us": 1e6 * t.ours / len(singles), "faiss_us": 1e6 * t.baseline / len(singles),
                             "ratio": t.ratio, "same_ids": agree})
    return rows


def lookup_embeddings(vectors: np.ndarray):
    """LangChain embeddings mapping text "w<i>" to row i of vectors (n, d): the timing is
    the store's and the index's, not a model's."""
    embeddings = require("langchain_core.embeddings", "clients")

    class LookupEmbeddings(embeddings.Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [self.embed_query(t) for t in texts]

        def embed_query(self, text: str) -> list[float]:
            return vectors[int(text[1:])].tolist()

    return LookupEmbeddings()


def langchain_rows(base: np.ndarray, queries: np.ndarray, train: np.ndarray, n_docs: int,
                   repeats: int) -> list[dict]:
    """Seconds of len(queries) `similarity_search` calls through LangChain's FAISS store
    over a flat n_docs-row qetvec IndexQET and over FAISS's IndexPQ with the same codebooks."""
    stores = require("langchain_community.vectorstores.faiss", "clients")
    docstore = require("langchain_community.docstore.in_memory", "clients")
    blob = trained(train, "QET10x8_L0")
    embeddings = lookup_embeddings(np.concatenate([base[:n_docs], queries]))
    texts = [f"w{i}" for i in range(n_docs)]
    asked = [f"w{n_docs + j}" for j in range(len(queries))]
    ours, theirs = (stores.FAISS(embeddings, index, docstore.InMemoryDocstore(), {})
                    for index in (deserialize(blob), to_faiss(deserialize(blob))))
    for store in (ours, theirs):
        store.add_texts(texts, ids=texts)
    rows = []
    for n_threads in thread_counts():
        with threads(n_threads):
            t = per_call_alternated(ours.similarity_search, theirs.similarity_search, asked, repeats)
        rows.append({"test": f"LangChain: {len(asked)} similarity_search (k=4), flat store, s",
                     "rows": n_docs, "threads": n_threads, "qetvec": t.ours, "faiss": t.baseline,
                     "ratio": t.ratio})
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
    parser.add_argument("--repeats", type=int, default=5, help="alternated timings per cell (median)")
    parser.add_argument("--batches", type=int, default=None, help="bulk batches (default 1000, quick 100)")
    parser.add_argument("--metric", choices=["l2", "ip"], default="l2", help="metric of the latency part")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated parts to run")
    parser.add_argument("--out", type=Path, default=None,
                        help="result folder (default benchmarks/results/clients, or clients-<parts> for some parts)")
    args = parser.parse_args(argv)
    parts = args.parts.split(",")
    if set(parts) - set(PARTS):
        parser.error(f"--parts: unknown {sorted(set(parts) - set(PARTS))}, choose from {list(PARTS)}")
    out = args.out or Path("benchmarks/results/" + ("clients" if set(parts) == set(PARTS) else "clients-" + "-".join(parts)))
    n_train, n_queries, n_adds = (20000, 100, 5000) if args.quick else (50000, 200, 20000)
    batches = args.batches or (100 if args.quick else 1000)
    x = data.load("glove-50")
    queries, base = data.split(x, (n_queries, None))
    base = base[np.random.default_rng(0).permutation(len(base))]
    train = base[:n_train]
    sizes = [25000, 100000, len(base)]
    rows = []
    if "latency" in parts:
        rows += latency_rows(base, queries, train, sizes, args.repeats, args.metric)
        rows += langchain_rows(base, queries, train, 20000, args.repeats)
    with threads(1):
        if "adds" in parts:
            rows += add_rows(base, train, n_adds, args.repeats)
        if "bulk" in parts:
            rows += bulk_rows(base, train, batches)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    result = {"command": "python benchmarks/bench_clients.py " + shlex.join(argv), "rows": rows,
              "setup": f"glove-50 ({len(base)} rows + {n_queries} queries), trained on {n_train} rows, "
                       f"nlist={NLIST}, faiss {faiss.__version__}, {os.cpu_count()} cores; load average at "
                       f"the end {load} (a shared machine: only same-run ratios mean anything)"}
    print(write_rows_result(result, "FAISS-client costs on GloVe-50", [
        "test", "rows", "threads", "qetvec_us", "faiss_us", "ratio", "same_ids", "qetvec", "faiss",
        "first_tenth_s_per_batch", "last_tenth_s_per_batch", "last/first", "total_s", "final_rows"], out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
