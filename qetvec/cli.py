"""`qetvec bench`: what do I get for my bytes? QET vs FAISS codecs on real data.

    qetvec bench --quick                       # < 3 minutes on 2 cores, GloVe-50
    qetvec bench --bytes 10 16 25 --methods qet-L0S1 qet-L1S1 qet-L1S2 pq opq rq lsq
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import faiss

from tqdm.auto import tqdm

from qetvec import data
from qetvec.bench.audit import AUDIT_MATRICES, audit_matrix, claim_check, run_matrix
from qetvec.bench.methods import check_method
from qetvec.bench.report import write_audit, write_reports
from qetvec.bench.run import run_codecs, run_search

QUICK = dict(n_train=10000, n_eval=10000, n_base=50000, n_queries=100, bytes=[10, 16],
             methods=["qet-L0S1", "qet-L1S1", "qet-L1S2", "pq"])
FULL = dict(n_train=100000, n_eval=100000, n_base=-1, n_queries=1000, bytes=[10, 16, 25, 32],
            methods=["qet-L0S1", "qet-L1S1", "qet-L2S1", "qet-L0S2", "qet-L1S2", "qet-L2S2",
                     "pq", "opq", "rq", "lsq", "rabitq"])


def _method(name: str) -> str:
    try:
        return check_method(name)
    except ValueError as err:  # argparse shows ArgumentTypeError's message, not ValueError's
        raise argparse.ArgumentTypeError(str(err)) from err


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qetvec", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser("bench", help="benchmark QET against FAISS baselines on real data")
    bench.add_argument("--dataset", default="glove-50", choices=data.NAMES)
    bench.add_argument("--quick", action="store_true", help="small run, under 3 minutes")
    bench.add_argument("--bytes", type=int, nargs="+", help="bytes per row to compare at")
    bench.add_argument("--methods", nargs="+", type=_method,
                       help="qet-L<levels>S<stages>, pq, opq, rq, lsq, rabitq")
    bench.add_argument("--metrics", nargs="+", default=["mse", "recall", "encode"],
                       choices=["mse", "recall", "encode"], help="recall includes queries/s")
    bench.add_argument("--n-train", type=int, help="rows to train codebooks on")
    bench.add_argument("--n-eval", type=int, help="held-out rows for MSE")
    bench.add_argument("--n-base", type=int, help="database rows for search (-1: all the rest)")
    bench.add_argument("--n-queries", type=int, help="held-out queries for recall")
    bench.add_argument("--out", type=Path, default=Path("bench-results"), help="output directory")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--repeats", type=int, default=3, help="timing repetitions (median reported)")
    audit = sub.add_parser("audit", help="matrix-mode and vector-mode audit of the paper's claims")
    audit.add_argument("--datasets", nargs="+", default=list(AUDIT_MATRICES), choices=list(AUDIT_MATRICES))
    audit.add_argument("--bits-per-element", type=float, nargs="+", default=[2.0, 3.0, 4.0])
    audit.add_argument("--vector", action="store_true", help="also run vector mode (bytes per row)")
    audit.add_argument("--niter", type=int, default=20, help="k-means iterations")
    audit.add_argument("--no-search", action="store_true",
                       help="skip the best-configuration search (best-qet / best-no-tree)")
    audit.add_argument("--out", type=Path, default=Path("audit-results"))
    return parser


def audit(args: argparse.Namespace) -> dict:
    """Matrix-mode (and optionally vector-mode) audit; returns the result dict."""
    result: dict = {"command": args.command_line, "matrices": {
        name: AUDIT_MATRICES[name][0] for name in args.datasets}, "matrix": [], "vector": []}
    for name in tqdm(args.datasets, desc="datasets"):
        result["matrix"] += run_matrix(name, args.bits_per_element, args.niter, search=not args.no_search)
        if args.vector:
            x = audit_matrix(name)
            train, test = data.split(x, (6144, 2048))
            d = x.shape[1]
            budgets = sorted({max(2, d // 8), max(4, d // 4)})
            for row in run_codecs(["qet-L0S1", "qet-L1S1", "qet-L1S2", "pq", "opq", "rq"], budgets,
                                  train, test, encode_rate=False):
                result["vector"].append({"dataset": name, **row})
    result["claims"] = claim_check(result["matrix"])
    return result


def bench(args: argparse.Namespace) -> dict:
    """Run the requested measurements; return the result dict written by the reports."""
    preset = QUICK if args.quick else FULL
    opt = {key: getattr(args, key) if getattr(args, key) is not None else preset[key] for key in preset}
    x = data.load(args.dataset)
    queries, train, evaluation = data.split(x, (opt["n_queries"], opt["n_train"], opt["n_eval"]), args.seed)
    queries, rest = data.split(x, (opt["n_queries"], None), args.seed)  # same queries, every other row
    base = rest if opt["n_base"] < 0 else rest[: opt["n_base"]]
    result = {
        "dataset": args.dataset, "command": args.command_line,
        "setup": (f"{args.dataset} {x.shape}: codebooks trained on {len(train)} rows; MSE on {len(evaluation)} "
                  f"other rows; search over {len(base)} rows with {len(queries)} held-out queries "
                  f"(exact neighbours: faiss.IndexFlatL2). Threads: 1 and {faiss.omp_get_max_threads()}. "
                  "bits/row read from the encoded arrays; speed ratios > 1 mean qetvec is faster."),
        "options": opt, "threads_all": faiss.omp_get_max_threads(), "faiss_version": faiss.__version__,
    }
    start = time.perf_counter()
    if "mse" in args.metrics or "encode" in args.metrics:
        result["codecs"] = run_codecs(opt["methods"], opt["bytes"], train, evaluation, "encode" in args.metrics,
                                      args.repeats)
    if "recall" in args.metrics:
        result["search"] = run_search(opt["methods"], opt["bytes"], train, base, queries, repeats=args.repeats)
    result["seconds"] = time.perf_counter() - start
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    args.command_line = "qetvec " + shlex.join(argv)
    if args.command == "audit":
        paths = write_audit(audit(args), args.out)
    else:
        paths = write_reports(bench(args), args.out)
    for path in paths:
        print(f"wrote {path}")
    print((args.out / "result.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
