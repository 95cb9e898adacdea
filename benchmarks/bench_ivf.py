"""Issue 4: recall@10 vs queries/s of IVF indexes on GloVe-50, qetvec vs FAISS, same run.

399,000 database rows, 1,000 held-out queries (exact neighbours: faiss.IndexFlatL2),
everything trained on 100,000 of the database rows, nlist = 1024, flat coarse quantizer.
At each budget (bytes per row of the codes stored in the inverted lists; ids, 8 bytes per
row, are stored by both and left out) and each nprobe,
every index searches the whole query batch; qetvec and FAISS are timed alternately
(median of --repeats), 1 thread and all threads. Refine (RFlat) rows keep the float vectors
and are labelled with their real bytes per row: they are not an equal-memory comparison.

    python benchmarks/bench_ivf.py [--quick]   # writes benchmarks/results/glove50-ivf/
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import faiss
import numpy as np
from faiss.contrib.evaluation import knn_intersection_measure
from tqdm.auto import tqdm

import qetvec
from qetvec import data
from qetvec.bench.sizing import config_for_code_size
from qetvec.evaluation import compare_timing, threads

from _common import write_rows_result  # benchmarks/ is on sys.path when a script runs

NPROBES = [1, 4, 16, 64]


def qet_ivf(d: int, nlist: int, code_bytes: int, levels: int, refine: bool = False):
    """qetvec IVF at code_bytes per row, 4 of which hold the stored L2 term beta."""
    cfg = config_for_code_size(d, code_bytes - 4, levels, 1)
    index = qetvec.IndexIVFQET(faiss.IndexFlatL2(d), d, nlist, cfg["m"], cfg["nbits"], cfg["levels"])
    spec = f"IVF{nlist},QET{cfg['m']}x{cfg['nbits'][0]}_L{levels}"
    return (qetvec.IndexRefineFlat(index, k_factor=4), spec + ",RFlat(k_factor=4)") if refine else (index, spec)


def faiss_ivf(d: int, spec: str):
    return faiss.index_factory(d, spec), spec


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="50,000 rows, 200 queries, nlist 256")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/glove50-ivf"))
    args = parser.parse_args(argv)
    n_base, n_queries, n_train, nlist = (50000, 200, 20000, 256) if args.quick else (None, 1000, 100000, 1024)
    x = data.load("glove-50")
    queries, base = data.split(x, (n_queries, None if n_base is None else n_base))
    train = base[np.random.default_rng(0).permutation(len(base))[:n_train]]
    truth = faiss.knn(queries, base, 10)[1]
    d = x.shape[1]
    # (budget bytes, FAISS baseline, qetvec contenders): FAISS's own code sizes, then QET at equal bytes
    plans = [
        (10, faiss_ivf(d, f"IVF{nlist},PQ10"), [qet_ivf(d, nlist, 10, 0), qet_ivf(d, nlist, 10, 1)]),
        (25, faiss_ivf(d, f"IVF{nlist},PQ25"), [qet_ivf(d, nlist, 25, 0), qet_ivf(d, nlist, 25, 1),
                                               qet_ivf(d, nlist, 25, 1, refine=True)]),
        (25, faiss_ivf(d, f"IVF{nlist},PQ50x4fs"), []),
        (15, faiss_ivf(d, f"IVF{nlist},RaBitQ"), [qet_ivf(d, nlist, 15, 0), qet_ivf(d, nlist, 15, 1)]),
    ]
    rows = []
    for budget, (ref, ref_spec), contenders in tqdm(plans, desc="budgets"):
        for index, _ in [(ref, ref_spec), *contenders]:
            index.train(train)
            index.add(base)
        for nprobe in tqdm(NPROBES, desc=f"{ref_spec} nprobe", leave=False):
            ref.nprobe = nprobe
            row = {"budget": budget, "method": ref_spec, "bytes_per_row": faiss.extract_index_ivf(ref).code_size,
                   "nprobe": nprobe, "recall@10": knn_intersection_measure(ref.search(queries, 10)[1], truth)}
            rows.append(row)
            for index, spec in contenders:
                index.nprobe = nprobe
                out = {"budget": budget, "method": spec, "bytes_per_row": index.code_size, "nprobe": nprobe,
                       "recall@10": knn_intersection_measure(index.search(queries, 10)[1], truth), "baseline": ref_spec}
                for label, n in (("1thread", 1), ("all", faiss.omp_get_max_threads())):
                    with threads(n):
                        t = compare_timing(lambda: index.search(queries, 10), lambda: ref.search(queries, 10),
                                           args.repeats)
                    out[f"qps_{label}"] = n_queries / t.ours
                    out[f"baseline_qps_{label}"] = n_queries / t.baseline
                    out[f"speed_ratio_{label}"] = t.baseline / t.ours
                rows.append(out)
    result = {"command": "python benchmarks/bench_ivf.py " + shlex.join(argv), "rows": rows,
              "setup": f"glove-50: {len(base)} rows, {n_queries} queries, nlist={nlist}, trained on {n_train}, "
                       f"threads 1 and {faiss.omp_get_max_threads()}, faiss {faiss.__version__}"}
    print(write_rows_result(result, "IVF on GloVe-50", ["method", "bytes_per_row", "nprobe", "recall@10",
                            "qps_1thread", "baseline_qps_1thread", "speed_ratio_1thread", "qps_all",
                            "speed_ratio_all"], args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
