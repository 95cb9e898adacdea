"""Issue 10: IVF recall@10 and queries/s on GloVe-50, qetvec vs FAISS at equal code bytes.

GloVe-50: 1,000 held-out queries (exact top-10 from faiss.IndexFlatL2) against --n-base
database rows (default 200,000; the issue's 300,000 with --n-base 300000), IVF with
--nlist lists (flat coarse quantizer), everything trained on --n-train database rows.
Code bytes per row in the lists (ids, 8 bytes per row in both libraries, left out):

    10  FAISS  IVF,PQ10          8-bit PQ                (the equal-bytes recall reference)
    10  qetvec IVF,QET10x8_L0    levels 0: PQ by QET's codec
    10  qetvec IVF,QET11x5_L1    levels 1: 25 swap bits + 11 x 5-bit codes
    13  FAISS  IVF,PQ25x4fs      4-bit PQ, fast-scan     (FAISS's fastest index at this budget)
    13  qetvec IVF,QET13x8_L0    levels 0, 8-bit codes, qetvec's scan
    13  qetvec IVF,QET25x4_L0 fast-scan: qetvec's 4-bit codebooks and codes exported by
                                 qetvec_faiss.to_faiss_fast_scan, FAISS's fast-scan kernels;
                                 codes of the vectors, not residuals (by_residual=False),
                                 as FAISS's index_factory builds PQ25x4fs

each alone and with ",RFlat" (float vectors kept, k_factor 10: 200 more bytes per row,
same for both). For every nprobe, each qetvec index is timed against each FAISS baseline
of the same refine setting, alternately in the same process (median of --repeats), on
1 thread and on all threads.

    python benchmarks/bench_ivf.py [--n-base 100000] [--quick]
    # writes benchmarks/results/glove50-ivf/
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before faiss loads its OpenMP: see qetvec/__init__.py
import faiss  # noqa: E402
import numpy as np  # noqa: E402

import qetvec  # noqa: E402
from qetvec import data  # noqa: E402
from _common import write_rows_result  # noqa: E402  (benchmarks/ is on sys.path when a script runs)
from faiss.contrib.evaluation import knn_intersection_measure  # noqa: E402

from qetvec.evaluation import compare_timing, threads  # noqa: E402
from qetvec_faiss import to_faiss_fast_scan  # noqa: E402

K, K_FACTOR = 10, 10
NPROBES = [8, 16, 32, 64]


SPECS = [("faiss", "PQ10"), ("qetvec", "QET10x8_L0"), ("qetvec", "QET11x5_L1"),
         ("faiss", "PQ25x4fs"), ("qetvec", "QET13x8_L0")]
FAST_SCAN = "QET25x4_L0"  # built without residual (as FAISS's PQ25x4fs), searched through to_faiss_fast_scan


def indexes(d: int, nlist: int) -> dict[str, tuple[str, object]]:
    """name -> (library, untrained index) of SPECS and FAST_SCAN."""
    factory = {"faiss": faiss.index_factory, "qetvec": qetvec.index_factory}
    out = {f"IVF{nlist},{spec}": (lib, factory[lib](d, f"IVF{nlist},{spec}")) for lib, spec in SPECS}
    out[f"IVF{nlist},{FAST_SCAN}"] = ("qetvec", qetvec.IndexIVFQET(faiss.IndexFlatL2(d), d, nlist, 25, nbits=4,
                                                                  levels=0, by_residual=False))
    return out


def code_bytes(index: object) -> int:
    """Bytes per row of the codes stored in the lists: the width of qetvec's stored code
    array (MEASURING.md); FAISS's code_size (its fast-scan lists pack rows in blocks and
    report no per-row width)."""
    if isinstance(index, qetvec.IndexIVFQET):
        return index.lists.codes.shape[1]
    return faiss.extract_index_ivf(index).code_size


def fast_scan_export(index: qetvec.IndexIVFQET, base: np.ndarray) -> tuple[faiss.Index, faiss.Index]:
    """(FAISS fast-scan index of qetvec's codes, the same under exact re-ranking of
    K * K_FACTOR candidates against `base`, whose row i has id i)."""
    fast = to_faiss_fast_scan(index)
    vectors = faiss.IndexFlatL2(base.shape[1])
    vectors.add(base)
    with_refine = faiss.IndexRefine(fast, vectors)
    with_refine.k_factor = K_FACTOR
    return fast, with_refine


def refined(library: str, index: object) -> object:
    """Exact re-ranking of `index`'s best K * K_FACTOR; rows added through it reach `index`."""
    ref = faiss.IndexRefineFlat(index) if library == "faiss" else qetvec.IndexRefineFlat(index)
    ref.k_factor = K_FACTOR
    return ref


def set_nprobe(index: object, nprobe: int) -> None:
    if isinstance(index, qetvec.IndexIVFQET):
        index.nprobe = nprobe
    else:
        faiss.extract_index_ivf(index).nprobe = nprobe


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-base", type=int, default=200000, help="database rows (GloVe has 399,000 after queries)")
    parser.add_argument("--n-train", type=int, default=50000)
    parser.add_argument("--nlist", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="20,000 rows, 200 queries, nlist 128, nprobe 8 and 32")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/glove50-ivf"))
    args = parser.parse_args(argv)
    n_base, n_queries, n_train, nlist = args.n_base, 1000, args.n_train, args.nlist
    nprobes = NPROBES
    if args.quick:
        n_base, n_queries, n_train, nlist, nprobes = 20000, 200, 10000, 128, [8, 32]
    x = data.load("glove-50")
    queries, base = data.split(x, (n_queries, n_base))
    train = base[np.random.default_rng(0).permutation(len(base))[:n_train]]
    truth = faiss.knn(queries, base, K)[1]
    built = {name: (library, index, refined(library, index)) for name, (library, index)
             in indexes(x.shape[1], nlist).items()}
    for library, index, with_refine in built.values():
        with_refine.train(train)
        with_refine.add(base)  # adds the codes to `index` too
    fast_name = f"IVF{nlist},{FAST_SCAN}"
    built[fast_name + " fast-scan"] = ("qetvec", *fast_scan_export(built.pop(fast_name)[1], base))
    all_threads = faiss.omp_get_max_threads()
    rows = []
    for nprobe in nprobes:
        runs = {}  # method -> (library, searchable, bytes per row)
        for name, (library, index, with_refine) in built.items():
            set_nprobe(index, nprobe)
            runs[name] = (library, index, code_bytes(index))
            runs[name + ",RFlat"] = (library, with_refine, code_bytes(index) + 4 * x.shape[1])
        recall = {name: knn_intersection_measure(index.search(queries, K)[1], truth)
                  for name, (_, index, _) in runs.items()}
        for name, (library, index, nbytes) in runs.items():
            row = {"method": name, "bytes_per_row": nbytes, "nprobe": nprobe, "recall@10": recall[name]}
            if library == "faiss":
                rows.append(row)
                continue
            for base_name, (base_lib, baseline, _) in runs.items():
                if base_lib != "faiss" or runs[base_name][2] != nbytes or \
                        base_name.endswith("RFlat") != name.endswith("RFlat"):
                    continue
                out = {**row, "baseline": base_name, "baseline_recall@10": recall[base_name]}
                for label, n in (("1thread", 1), ("all", all_threads)):
                    with threads(n):
                        t = compare_timing(lambda: index.search(queries, K), lambda: baseline.search(queries, K),
                                           args.repeats)
                    out[f"qps_{label}"] = round(n_queries / t.ours)
                    out[f"baseline_qps_{label}"] = round(n_queries / t.baseline)
                    out[f"speed_ratio_{label}"] = round(t.baseline / t.ours, 3)
                rows.append(out)
    result = {"command": "python benchmarks/bench_ivf.py " + shlex.join(argv), "rows": rows,
              "setup": f"glove-50: {len(base)} rows, {n_queries} queries, nlist={nlist}, trained on {n_train} "
                       f"rows, k={K}, RFlat k_factor={K_FACTOR}; threads 1 and {all_threads} (all) on a "
                       f"{all_threads}-core shared dev box, busy; faiss {faiss.__version__}. speed_ratio = "
                       "qetvec QPS / baseline QPS, same run, alternated, median of "
                       f"{args.repeats}; bytes_per_row = code bytes in the lists (+ 200 float bytes with RFlat)."}
    print(write_rows_result(result, "IVF on GloVe-50 at equal code bytes per row", [
        "method", "bytes_per_row", "nprobe", "recall@10", "baseline", "baseline_recall@10", "qps_1thread",
        "baseline_qps_1thread", "speed_ratio_1thread", "qps_all", "baseline_qps_all", "speed_ratio_all"], args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
