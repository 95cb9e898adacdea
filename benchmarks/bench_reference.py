"""qetvec's matrix mode beside the authors' reference QET, on the same matrices and budgets.

The reference (github.com/QET-release/QET-release, MIT, numpy + scipy) is imported from a
checkout you point to; its code is not part of qetvec. Both run with their defaults (2 stages,
tree depths 3 / 0, 70% / 30% of the budget after swap records, 10-bit codebooks, M groups of
4 columns) on one thread, alternated, `--repeats` times; relative MSE = ||X - X_hat||^2 /
||X - mean(X)||^2 on the matrix itself (the QEM setting). Time = fit + encode + decode, as
CPU seconds of the process (both sides run on one thread, so CPU time is their single-thread
time and, unlike wall time, does not count the waits of a busy shared machine); wall time
is recorded beside it.

With `--auto`, the same run also times `compress_matrix(x, budget)` (method "auto": the budget
search over every method) against the reference, compress (reference: fit + encode) and
decode (reference: decode) separately, in the same alternated loop, and reports decode
throughput in rows per second (rows of the matrix as given).

    git clone <QET-release> /tmp/QET-release
    python benchmarks/bench_reference.py --reference /tmp/QET-release
    # writes benchmarks/results/reference-side-by-side/
    python benchmarks/bench_reference.py --reference /tmp/QET-release --auto \
        --matrices minilm-ffn-in minilm-kcache-layer --bits-per-element 4 --out benchmarks/results/auto-speed
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
import time
import warnings
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"  # one thread for both sides, set before numpy loads BLAS

import faiss  # noqa: E402
import numba  # noqa: E402
import numpy as np  # noqa: E402

from qetvec import compress_matrix  # noqa: E402
from qetvec.bench.audit import AUDIT_MATRICES, audit_matrix  # noqa: E402
from _common import write_rows_result  # noqa: E402  (benchmarks/ is on sys.path when a script runs)
from qetvec.evaluation import relative_mse  # noqa: E402

MATRICES = ["minilm-ffn-in", "minilm-ffn-out", "minilm-kcache-layer", "minilm-vcache-layer",
            "minilm-tokens"]  # real matrices of `qetvec.bench.audit.AUDIT_MATRICES`


def load_reference(checkout: Path):
    """The reference's `qet` module, imported as package `qet_reference` from `checkout`
    (its modules use relative imports, so the folder is loaded as a package)."""
    spec = importlib.util.spec_from_loader("qet_reference", loader=None, is_package=True)
    package = importlib.util.module_from_spec(spec)
    package.__path__ = [str(checkout)]
    sys.modules["qet_reference"] = package
    return importlib.import_module("qet_reference.qet")


def timed(run, *args) -> tuple[np.ndarray, float, float]:
    """(run(*args), CPU seconds, wall seconds)."""
    cpu, wall = time.process_time(), time.perf_counter()
    out = run(*args)
    return out, time.process_time() - cpu, time.perf_counter() - wall


def run_ours(x: np.ndarray, budget: int, m: int) -> np.ndarray:
    return compress_matrix(x, budget, m).decode()


def run_reference(qet, x: np.ndarray, budget: int, m: int) -> np.ndarray:
    model = qet.QET(M=m, MemorySize=budget).fit(x)
    return model.decode(*model.encode(x))


def reference_compress(qet, x: np.ndarray, budget: int, m: int):
    model = qet.QET(M=m, MemorySize=budget).fit(x)
    return model, model.encode(x)


def auto_row(qet, name: str, x: np.ndarray, budget: int, m: int, repeats: int) -> dict:
    """compress_matrix(method="auto") vs the reference: compress and decode CPU seconds
    (median of `repeats`, alternated), decode rows per second, relative MSE."""
    auto_c, auto_d, ref_c, ref_d = [], [], [], []
    for _ in range(repeats):
        cm, cpu, _ = timed(compress_matrix, x, budget)
        auto_c.append(cpu)
        auto_hat, cpu, _ = timed(cm.decode)
        auto_d.append(cpu)
        (model, codes), cpu, _ = timed(reference_compress, qet, x, budget, m)
        ref_c.append(cpu)
        ref_hat, cpu, _ = timed(model.decode, *codes)
        ref_d.append(cpu)
    med = lambda v: float(np.median(v))  # noqa: E731
    return {"matrix": f"{name} ({AUDIT_MATRICES[name][0]})", "budget_bytes": budget, "auto_method": cm.report[0]["method"],
            "auto_mse": relative_mse(x, auto_hat), "reference_mse": relative_mse(x, ref_hat),
            "auto_compress_cpu_s": med(auto_c), "reference_compress_cpu_s": med(ref_c),
            "compress_time_ratio": med(auto_c) / med(ref_c),
            "auto_decode_cpu_s": med(auto_d), "reference_decode_cpu_s": med(ref_d),
            "decode_time_ratio": med(auto_d) / med(ref_d),
            "auto_decode_rows_per_s": len(x) / med(auto_d), "reference_decode_rows_per_s": len(x) / med(ref_d)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, required=True, help="checkout of QET-release")
    parser.add_argument("--bits-per-element", type=float, nargs="+", default=[2.0, 3.0, 4.0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--matrices", nargs="+", default=MATRICES, choices=list(AUDIT_MATRICES))
    parser.add_argument("--auto", action="store_true",
                        help="time compress_matrix(method='auto') against the reference instead of QET's defaults")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/reference-side-by-side"))
    args = parser.parse_args(argv)
    qet = load_reference(args.reference)
    numba.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    warnings.simplefilter("ignore")  # few rows per codeword is the regime being measured
    rows = []
    for name in args.matrices:
        x = audit_matrix(name)
        n, d = x.shape
        m = d // 4
        for bpe in args.bits_per_element:
            budget = int(bpe * n * d / 8)
            if args.auto:
                compress_matrix(x[:512], max(4096, budget // 8))  # JIT warm-up, not timed
                rows.append(auto_row(qet, name, x, budget, m, args.repeats) | {"bits_per_element": bpe})
                print(rows[-1], flush=True)
                continue
            run_ours(x, budget, m)  # JIT and cache warm-up, not timed
            ours, ref = [], []
            for _ in range(args.repeats):
                ours.append(timed(run_ours, x, budget, m))
                ref.append(timed(run_reference, qet, x, budget, m))
            ours_mse, ref_mse = relative_mse(x, ours[0][0]), relative_mse(x, ref[0][0])
            cpu = lambda runs: float(np.median([r[1] for r in runs]))  # noqa: E731
            wall = lambda runs: float(np.median([r[2] for r in runs]))  # noqa: E731
            row = {"matrix": f"{name} ({AUDIT_MATRICES[name][0]})", "bits_per_element": bpe, "budget_bytes": budget, "M": m,
                   "reference_mse": ref_mse, "qetvec_mse": ours_mse, "mse_ratio": ours_mse / ref_mse,
                   "reference_cpu_s": cpu(ref), "qetvec_cpu_s": cpu(ours),
                   "cpu_time_ratio": cpu(ours) / cpu(ref), "wall_time_ratio": wall(ours) / wall(ref)}
            rows.append(row)
            print(f"{name} @ {bpe}: MSE {ours_mse:.4f} vs {ref_mse:.4f} ({row['mse_ratio']:.3f}x), "
                  f"CPU {cpu(ours):.3f}s vs {cpu(ref):.3f}s ({row['cpu_time_ratio']:.3f}x)", flush=True)
    timing = ("compress (ours: compress_matrix(x, budget), the whole search; reference: fit + encode) "
              "and decode timed separately" if args.auto else "time = fit + encode + decode")
    result = {"command": "python benchmarks/bench_reference.py " + " ".join(argv or sys.argv[1:]),
              "setup": (f"One thread each (numba, FAISS, BLAS), median of {args.repeats} alternated runs, CPU "
                        f"seconds; {timing}; relative MSE on the matrix itself. Reference at its defaults "
                        "(depths 3/0, 70/30 split, 10-bit codebooks, M = d/4). Machine: "
                        f"{os.cpu_count()}-core shared dev box, load average {os.getloadavg()[0]:.1f} at the end."),
              "rows": rows}
    print(write_rows_result(result, "qetvec vs the reference QET implementation", list(rows[0]), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
