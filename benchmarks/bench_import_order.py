"""Issue 21: qetvec's speed does not depend on whether `faiss` or `qetvec` is imported first.

Two subprocesses, started with OMP_WAIT_POLICY unset as a FAISS, LangChain or LlamaIndex
program is: one runs `import faiss; import qetvec`, the other `import qetvec; import faiss`.
Both build the same indexes on GloVe-50 (--n-train training rows, --n-base database rows,
held-out queries), then take turns: for every measurement the parent asks one, then the
other (which goes first alternates), so the two orders are timed pairwise under the same
machine load, one waiting (blocked on its pipe) while the other runs. Cells:

    train_ivf      IVF1024,QET10x8_L0,RFlat .train (coarse k-means + codebooks), all threads
    train_flat     QET10x8_L0 .train (codebooks), all threads
    ivf_t1/_t2     IVF1024,QET10x8_L0,RFlat search, nprobe 32, k 10, --ivf-queries queries,
                   on 1 / 2 threads
    flat_t1/_t2    QET10x8_L0 flat search, k 10, --flat-queries queries, 1 / 2 threads
    faiss_flat_t1  FAISS's own IndexFlatL2 search of the flat queries on 1 thread: no code
                   path depends on the order, so its ratio is the noise floor of the pairing
                   (two processes differ in more than their imports: memory placement, ...)
    faiss_flat_t2  the same on 2 threads: FAISS's OpenMP runtime reads its wait policy at
                   `import faiss` (qetvec, imported first, sets PASSIVE unless the environment
                   chose), so FAISS's own multi-threaded calls may depend on the order.

Reported per cell: the median of the pairwise ratios faiss-first / qetvec-first of wall time
(target for qetvec's cells: within 1.1x either way) and of CPU time (all the subprocess's
threads: a spinning thread burns it; on a machine busy with other work it is the steadier
measure), and the median wall times of each order.

    python benchmarks/bench_import_order.py [--repeats 7] [--quick]
    # writes benchmarks/results/import-order/
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ORDERS = {"faiss-first": ("faiss", "qetvec"), "qetvec-first": ("qetvec", "faiss")}
TRAIN_CELLS = ["train_ivf", "train_flat"]
SEARCH_CELLS = ["ivf_t1", "ivf_t2", "flat_t1", "flat_t2", "faiss_flat_t1", "faiss_flat_t2"]
IVF, FLAT, NPROBE, K = "IVF1024,QET10x8_L0,RFlat", "QET10x8_L0", 32, 10
TARGET = 1.1


def child(order: str, args: argparse.Namespace) -> None:
    """Import in `order`, build the indexes, then time one cell per line read from stdin
    (its seconds written to stdout) until stdin closes."""
    for name in ORDERS[order]:
        importlib.import_module(name)
    import faiss
    import numba
    import numpy as np

    import qetvec
    from qetvec import data
    from qetvec.evaluation import threads

    x = data.load("glove-50")
    queries, train, base = data.split(x, (args.ivf_queries, args.n_train, args.n_base))
    flat_queries = np.ascontiguousarray(queries[: args.flat_queries])
    cores = os.cpu_count() or 1
    with threads(cores):
        ivf, flat = qetvec.index_factory(x.shape[1], IVF), qetvec.index_factory(x.shape[1], FLAT)
        for index in (ivf, flat):
            index.train(train)
            index.add(base)
    ivf.nprobe = NPROBE
    exact = faiss.IndexFlatL2(x.shape[1])
    exact.add(base)

    def cell(n_threads: int, work: Callable[[], object]) -> Callable[[], tuple[float, float]]:
        def timed() -> tuple[float, float]:  # (wall seconds, CPU seconds of all the process's threads)
            with threads(n_threads):
                start, start_cpu = time.perf_counter(), time.process_time()
                work()
                return time.perf_counter() - start, time.process_time() - start_cpu
        return timed

    cells = {"train_ivf": cell(cores, lambda: qetvec.index_factory(x.shape[1], IVF).train(train)),
             "train_flat": cell(cores, lambda: qetvec.index_factory(x.shape[1], FLAT).train(train))}
    for n_threads in (1, 2):
        cells[f"ivf_t{n_threads}"] = cell(n_threads, lambda: ivf.search(queries, K))
        cells[f"flat_t{n_threads}"] = cell(n_threads, lambda: flat.search(flat_queries, K))
        cells[f"faiss_flat_t{n_threads}"] = cell(n_threads, lambda: exact.search(flat_queries, K))
    for name in SEARCH_CELLS:
        cells[name]()  # warm-up
    print(json.dumps({"ready": order, "faiss": faiss.__version__, "numba_layer": numba.threading_layer(),
                      "qetvec": qetvec.__file__}), flush=True)
    for line in sys.stdin:
        print(json.dumps(cells[line.strip()]()), flush=True)


class Child:
    """One subprocess of `child`, asked for one measurement at a time."""

    def __init__(self, order: str, argv: list[str]):
        env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
        self.proc = subprocess.Popen([sys.executable, __file__, "--child", order, *argv], env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.info: dict = {}

    def ready(self) -> dict:
        self.info = json.loads(self.proc.stdout.readline())
        return self.info

    def measure(self, cell: str) -> tuple[float, float]:
        self.proc.stdin.write(cell + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-train", type=int, default=50000, help="training rows (default: %(default)s)")
    parser.add_argument("--n-base", type=int, default=200000, help="database rows (default: %(default)s)")
    parser.add_argument("--ivf-queries", type=int, default=1000, help="queries per IVF search (default: %(default)s)")
    parser.add_argument("--flat-queries", type=int, default=100, help="queries per flat search (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=9, help="pairs per search cell (default: %(default)s)")
    parser.add_argument("--train-repeats", type=int, default=3, help="pairs per training cell (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="20k training and 50k database rows, 3 / 1 pairs")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "import-order",
                        help="output directory (default: benchmarks/results/import-order)")
    parser.add_argument("--child", choices=list(ORDERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.n_train, args.n_base, args.repeats, args.train_repeats = 20000, 50000, 3, 1
    if args.child:
        child(args.child, args)
        return
    child_argv = [f"--{key.replace('_', '-')}={getattr(args, key)}"
                  for key in ("n_train", "n_base", "ivf_queries", "flat_queries")]
    load_start = os.getloadavg()[0]
    children = {order: Child(order, child_argv) for order in ORDERS}
    for order, proc in children.items():  # both build at once: building is not measured
        print(order, "ready; qetvec from", Path(proc.ready().pop("qetvec")).parent, flush=True)
    times: dict[str, dict[str, list[tuple[float, float]]]] = {cell: {order: [] for order in ORDERS}
                                                              for cell in TRAIN_CELLS + SEARCH_CELLS}
    rounds = max(args.repeats, args.train_repeats)
    for r in range(rounds):
        turn = list(ORDERS) if r % 2 == 0 else list(ORDERS)[::-1]
        for cell in (TRAIN_CELLS if r < args.train_repeats else []) + (SEARCH_CELLS if r < args.repeats else []):
            for order in turn:
                times[cell][order].append(children[order].measure(cell))
        last = {cell: round(t["faiss-first"][-1][0] / t["qetvec-first"][-1][0], 2)
                for cell, t in times.items() if len(t["faiss-first"]) == r + 1}
        print(f"round {r + 1}/{rounds}, wall ratios:", last, flush=True)
    for proc in children.values():
        proc.close()
    rows = []
    for cell, t in times.items():
        ratio, cpu_ratio = (statistics.median(a[i] / b[i] for a, b in zip(t["faiss-first"], t["qetvec-first"]))
                            for i in (0, 1))
        rows.append({"cell": cell, "whose": "FAISS" if cell.startswith("faiss") else "qetvec",
                     "pairs": len(t["faiss-first"]),
                     "faiss_first_ms": round(statistics.median(w for w, _ in t["faiss-first"]) * 1e3),
                     "qetvec_first_ms": round(statistics.median(w for w, _ in t["qetvec-first"]) * 1e3),
                     "ratio": round(ratio, 3), "within_1.1x": 1 / TARGET <= ratio <= TARGET,
                     "cpu_ratio": round(cpu_ratio, 3), "cpu_within_1.1x": 1 / TARGET <= cpu_ratio <= TARGET})
    info = children["faiss-first"].info
    result = {
        "command": "python benchmarks/bench_import_order.py " + shlex.join(sys.argv[1:]),
        "setup": (f"GloVe-50, {args.n_train} training rows, {args.n_base} database rows, {args.ivf_queries} "
                  f"held-out queries (flat: the first {args.flat_queries}); {IVF} at nprobe {NPROBE} and {FLAT}, "
                  f"k {K}. One subprocess per import order (OMP_WAIT_POLICY unset), both alive, timed in turns "
                  f"(the first alternating); ratio = median over pairs of faiss-first / qetvec-first wall time "
                  f"(target {1 / TARGET:.2f}..{TARGET}), cpu_ratio the same of the CPU time of all the process's "
                  "threads (what spinning threads burn; less sensitive to other processes' load); ms: median wall "
                  f"time per order. Training on all {os.cpu_count()} threads. "
                  f"faiss {info['faiss']}, numba threading layer {info['numba_layer']}; {os.cpu_count()} cores, "
                  f"load average {load_start:.1f} at start, {os.getloadavg()[0]:.1f} at the end."),
        "rows": rows, "times_s": times,
    }
    sys.path.insert(0, str(Path(__file__).parent))
    from _common import write_rows_result

    print(write_rows_result(result, "qetvec's speed by import order", list(rows[0]), args.out))


if __name__ == "__main__":
    main()
