"""`qetvec bench`: what do I get for my bytes? QET vs FAISS on real data, same run.

    qetvec bench --quick          # ~160 CPU s (2-4 min on 2 cores), GloVe-50: MSE, IVF recall vs queries/s, matrix line
    qetvec bench --bytes 10 16 25 --methods auto qet-L1S1 pq opq rq --ivf-methods auto qet-L1S1 pq

Needs the ``bench`` extra (GloVe-50 data, matplotlib): pip install "qetvec[bench]".
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Iterator

import faiss

from tqdm.auto import tqdm

from qetvec import __version__, data
from qetvec._optional import MissingExtraError, require_extra
from qetvec.bench.audit import AUDIT_MATRICES, audit_matrix, auto_summary, claim_check, run_matrix
from qetvec.bench.methods import check_method
from qetvec.bench.operating_point import PLATEAU, nprobe_grid, run_ivf
from qetvec.bench.report import write_audit, write_reports
from qetvec.bench.run import run_bounds, run_codecs, run_matrix_line, run_search

METRICS = ("mse", "encode", "ivf", "matrix", "flat")
FIXED_SIZE = ["rabitq", "sqtqmse1", "sqtqmse2", "sqtqmse3", "sqtqmse4", "eden2", "sq4"]  # FAISS codes of one size each
# bytes per row: 10 and 25 are FAISS PQ10x8 / PQ25x8 on d = 50; at 25 every FAISS code of FIXED_SIZE fits.
# --quick bounds fit_codec's search (candidates trained on 5,000 rows, beam 4), leaves OPQ out (never
# FAISS's best code on GloVe-50 at these budgets, 30-60 CPU seconds of training each), RQ out of the
# IVF run (its training would come twice) and RQ25x8 out of the MSE run (below); the full run has them.
RQ25_REASON = ("not in --quick: 48 CPU s of training, and worse than PQ25x8 at 25 B "
               "(held-out MSE 0.0146 vs 0.0122 in a --quick run with it)")
QUICK = dict(n_train=10000, n_eval=10000, n_base=50000, n_queries=300, bytes=[10, 25], nlist=256,
             methods=["auto", "qet-L1S1", "pq", "rq", *FIXED_SIZE, "sqtqmse1-norm", "sqtqmse2-norm",
                      "sqtqmse3-norm"],
             ivf_methods=["auto", "qet-L1S1", "pq", *FIXED_SIZE], fit_sample_rows=5000, fit_beam=4,
             skip=[("rq@25", RQ25_REASON)], metrics=["mse", "ivf", "matrix"])
FULL = dict(n_train=100000, n_eval=100000, n_base=-1, n_queries=1000, bytes=[10, 16, 25, 32], nlist=1024,
            methods=["auto", "qet-L0S1", "qet-L1S1", "qet-L2S1", "qet-L1S2", "pq", "opq", "rq", "lsq", *FIXED_SIZE,
                     "rabitq2", "rabitq3", "rabitq4", "eden3", "eden4", "sqtqmse1-norm", "sqtqmse2-norm",
                     "sqtqmse3-norm", "sqtqmse4-norm"],
            ivf_methods=["auto", "qet-L1S1", "qet-L2S1", "pq", "opq", "rq", *FIXED_SIZE, "rabitq2", "rabitq3",
                         "rabitq4", "eden3", "eden4"], fit_sample_rows=50000, fit_beam=8, skip=[],
            metrics=["mse", "encode", "ivf", "matrix"])


def _method(name: str) -> str:
    try:
        return check_method(name)
    except ValueError as err:  # argparse shows ArgumentTypeError's message, not ValueError's
        raise argparse.ArgumentTypeError(str(err)) from err


def _preset(key: str) -> str:
    """"(default: <full run's value>; --quick: <quick run's value>)" for a preset option."""
    def shown(value: object) -> str:
        if isinstance(value, list):
            return " ".join("=".join(v) if isinstance(v, tuple) else str(v) for v in value) or "none"
        return str(value)
    return f"(default: {shown(FULL[key])}; --quick: {shown(QUICK[key])})"


def _assignment(text: str) -> tuple[str, str]:
    """"KEY=VALUE" -> (KEY, VALUE), KEY a method or "<method>@<bytes>"."""
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise argparse.ArgumentTypeError(f"expected METHOD[@BYTES]=VALUE, got {text!r}")
    _method(key.partition("@")[0])
    return key, value


def _train_rows(text: str) -> tuple[str, int]:
    key, value = _assignment(text)
    if not value.isdigit() or int(value) == 0:
        raise argparse.ArgumentTypeError(f"training rows must be a positive integer, got {value!r}")
    return key, int(value)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qetvec", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser("bench", help="benchmark QET against FAISS baselines on real data")
    bench.add_argument("--dataset", default="glove-50", choices=data.NAMES,
                       help="real dataset to measure on (default: %(default)s)")
    bench.add_argument("--quick", action="store_true",
                       help="small run, about 160 CPU seconds, 2-4 minutes on 2 cores (the --quick values below)")
    bench.add_argument("--bytes", type=int, nargs="+", help=f"bytes per row to compare at {_preset('bytes')}")
    bench.add_argument("--methods", nargs="+", type=_method,
                       help="qet-L<levels>S<stages>, auto (qetvec.fit_codec), or a FAISS code: pq, opq, rq, "
                            "rq-beam32, lsq, rabitq, rabitq2-4, sqtqmse1-4, sqtqmse1-4-norm, eden2-4, sq4, sq8 "
                            f"(see qetvec/bench/sizing.py) {_preset('methods')}")
    bench.add_argument("--ivf-methods", nargs="+", type=_method,
                       help="methods of the IVF run (with exact re-ranking), of those above that have an IVF "
                            "index; of a family of fixed-size FAISS codes (sqtqmse1-4, ...) the largest that fits "
                            f"each budget {_preset('ivf_methods')}")
    bench.add_argument("--fit-families", nargs="+", metavar="PREFIX",
                       help="auto: fit_codec's candidate families, by name prefix, e.g. pq qet pca rq "
                            "(default: every family)")
    bench.add_argument("--fit-sample-rows", type=int,
                       help=f"auto: rows fit_codec trains each candidate on {_preset('fit_sample_rows')}")
    bench.add_argument("--fit-beam", type=int,
                       help=f"auto: beam width of residual-stage candidates {_preset('fit_beam')}")
    bench.add_argument("--fit-max-work", type=float,
                       help="auto: fit_codec's max_work, the training cost above which it skips a "
                            "residual-stage candidate (default: qetvec.fit.MAX_WORK)")
    bench.add_argument("--metrics", nargs="+", choices=METRICS,
                       help="mse: held-out MSE; encode: encode rate; ivf: IVF + RFlat recall@10 and queries/s "
                            "at the operating point; matrix: the matrix-mode line; flat: flat-scan recall and speed "
                            f"{_preset('metrics')}")
    bench.add_argument("--n-train", type=int, help=f"rows to train codebooks on {_preset('n_train')}")
    bench.add_argument("--train-rows", nargs="+", type=_train_rows, default=[], metavar="METHOD[@BYTES]=N",
                       help="mse: train this method (at these bytes) on only the first N training rows "
                            "(default: every training row)")
    bench.add_argument("--skip", nargs="+", type=_assignment, metavar="METHOD[@BYTES]=REASON",
                       help="mse: do not run this method (at these bytes); the reason goes into the table "
                            f"{_preset('skip')}")
    bench.add_argument("--n-eval", type=int, help=f"held-out rows for MSE {_preset('n_eval')}")
    bench.add_argument("--n-base", type=int, help=f"database rows for search, -1: all the rest {_preset('n_base')}")
    bench.add_argument("--n-queries", type=int, help=f"held-out queries for recall {_preset('n_queries')}")
    bench.add_argument("--nlist", type=int, help=f"IVF lists {_preset('nlist')}")
    bench.add_argument("--target-recall", type=float, default=0.9,
                       help="IVF: raise nprobe until recall@10 >= this (default: %(default)s)")
    bench.add_argument("--k-factor", type=float, default=10.0,
                       help="IVF: re-rank k_factor * 10 candidates exactly (default: %(default)s)")
    bench.add_argument("--matrix-bits", type=float, default=2.0,
                       help="matrix line: bits per matrix element (default: %(default)s)")
    bench.add_argument("--matrix-rows", type=int, default=8192,
                       help="matrix line: rows of the matrix (default: %(default)s)")
    bench.add_argument("--out", type=Path, default=Path("bench-results"),
                       help="directory for result.json, result.md and the plots (default: %(default)s)")
    bench.add_argument("--seed", type=int, default=0,
                       help="seed of the random split into queries, training, held-out and database rows "
                            "(default: %(default)s)")
    bench.add_argument("--repeats", type=int, default=3,
                       help="timing repetitions, median reported (default: %(default)s)")
    audit = sub.add_parser("audit", help="matrix-mode and vector-mode audit of the paper's claims")
    audit.add_argument("--datasets", nargs="+", default=list(AUDIT_MATRICES), choices=list(AUDIT_MATRICES),
                       metavar="DATASET", help=f"matrices to audit, of {' '.join(AUDIT_MATRICES)} (default: all; "
                                               "the minilm-* ones need the 'minilm' extra)")
    audit.add_argument("--bits-per-element", type=float, nargs="+", default=[2.0, 3.0, 4.0],
                       help="budgets to audit at, in bits per matrix element, codebooks included (default: 2 3 4)")
    audit.add_argument("--vector", action="store_true", help="also run vector mode (bytes per row)")
    audit.add_argument("--niter", type=int, default=20, help="k-means iterations (default: %(default)s)")
    audit.add_argument("--no-search", action="store_true",
                       help="skip the best-configuration search (best-qet / best-no-tree)")
    audit.add_argument("--out", type=Path, default=Path("audit-results"),
                       help="directory for result.json, result.md and the plots (default: %(default)s)")
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
    result["auto_summary"] = auto_summary(result["claims"])
    return result


def bench(args: argparse.Namespace) -> dict:
    """Run the requested measurements; return the result dict written by the reports."""
    preset = QUICK if args.quick else FULL
    opt = {key: getattr(args, key) if getattr(args, key) is not None else preset[key] for key in preset}
    opt.update(target_recall=args.target_recall, k_factor=args.k_factor, train_rows=dict(args.train_rows),
               skip=dict(opt["skip"]))
    fit_options = dict(sample_rows=opt["fit_sample_rows"], beam=opt["fit_beam"])
    if args.fit_families:
        fit_options["families"] = opt["fit_families"] = args.fit_families
    if args.fit_max_work is not None:
        fit_options["max_work"] = opt["fit_max_work"] = args.fit_max_work
    x = data.load(args.dataset)
    queries, train, evaluation = data.split(x, (opt["n_queries"], opt["n_train"], opt["n_eval"]), args.seed)
    queries, rest = data.split(x, (opt["n_queries"], None), args.seed)  # same queries, every other row
    base = rest if opt["n_base"] < 0 else rest[: opt["n_base"]]
    opt["repeats"] = args.repeats
    result = {
        "dataset": args.dataset, "command": args.command_line, "dimension": x.shape[1],
        "setup": (f"{args.dataset} {x.shape}, split at random (seed {args.seed}): codes trained on {len(train)} "
                  f"rows; MSE on {len(evaluation)} other rows; search over {len(base)} rows with {len(queries)} "
                  f"held-out queries (exact neighbours: faiss.knn). IVF: nlist={opt['nlist']} (one set of coarse "
                  f"centroids for every index), exact re-ranking of {opt['k_factor']:g} x 10 candidates (every "
                  f"index keeps the float vectors, {4 * x.shape[1]} B/row beyond its lists), nprobe swept over "
                  f"{', '.join(map(str, nprobe_grid(opt['nlist'])))} each index until it reaches recall@10 "
                  f"{opt['target_recall']:g} or levels off (gains < {PLATEAU} from one nprobe to the next). "
                  f"auto = qetvec.fit_codec with its candidates "
                  f"trained on {opt['fit_sample_rows']} rows and beam {opt['fit_beam']}"
                  + (f", families {' '.join(args.fit_families)}" if args.fit_families else "")
                  + (f", max_work {args.fit_max_work:.3g}" if args.fit_max_work is not None else "")
                  + f". Threads: 1 and {faiss.omp_get_max_threads()}; faiss {faiss.__version__}."),
        "options": opt, "threads_all": faiss.omp_get_max_threads(), "faiss_version": faiss.__version__,
        "machine": f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start",
    }
    start = time.perf_counter()
    metrics, parts = opt["metrics"], {}
    if "mse" in metrics or "encode" in metrics:
        with _timed(parts, "mse"):
            result["codecs"] = run_codecs(opt["methods"], opt["bytes"], train, evaluation, "encode" in metrics,
                                          args.repeats, opt["train_rows"], opt["skip"], fit_options)
            result["bounds"] = run_bounds(evaluation, opt["bytes"])
            sizes = [r["bytes_per_row"] for r in result["codecs"] if "skipped" not in r] + opt["bytes"]
            result["bound_curve"] = run_bounds(evaluation, list(range(min(sizes), max(sizes) + 1)))
    if "ivf" in metrics:
        with _timed(parts, "ivf"):
            result["ivf"] = run_ivf(opt["ivf_methods"], opt["bytes"], train, base, queries, opt["nlist"],
                                    opt["target_recall"], k_factor=opt["k_factor"], repeats=args.repeats,
                                    fit_options=fit_options)
    if "matrix" in metrics:
        with _timed(parts, "matrix"):
            matrix = data.split(x, (args.matrix_rows,), args.seed)[0]
            result["matrix"] = run_matrix_line(matrix, args.matrix_bits)
    if "flat" in metrics:
        with _timed(parts, "flat"):
            result["search"] = run_search(opt["methods"], opt["bytes"], train, base, queries, repeats=args.repeats)
    result["seconds"] = time.perf_counter() - start
    result["seconds_by_part"] = parts
    result["machine"] += f", {os.getloadavg()[0]:.1f} at the end"
    return result


@contextlib.contextmanager
def _timed(parts: dict[str, dict[str, float]], name: str) -> Iterator[None]:
    """Record the wall and CPU (this process, all threads) seconds of a part of the run."""
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    parts[name] = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}


def check_extras(args: argparse.Namespace) -> None:
    """Raise MissingExtraError before any work when the run needs an extra that is not
    installed (a run would otherwise fail at its first MiniLM matrix, or at its plots)."""
    require_extra("bench", f"qetvec {args.command}")  # GloVe-50, plots
    if args.command == "bench" and args.dataset.startswith("minilm"):
        require_extra("minilm", f"qetvec bench --dataset {args.dataset}")
    if args.command == "audit" and any(name.startswith("minilm") for name in args.datasets):
        require_extra("minilm", "qetvec audit of the MiniLM matrices", "--datasets glove-50 to audit GloVe-50 alone")


def main(argv: list[str] | None = None) -> int:
    """Run `qetvec bench` / `qetvec audit`; 0 on success, 1 with one line on stderr when an
    extra is missing."""
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    args.command_line = "qetvec " + shlex.join(argv)
    try:
        check_extras(args)
        if args.command == "audit":
            paths = write_audit(audit(args), args.out)
        else:
            paths = write_reports(bench(args), args.out)
    except MissingExtraError as err:
        print(f"qetvec: error: {err}", file=sys.stderr)
        return 1
    for path in paths:
        print(f"wrote {path}")
    print((args.out / "result.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
