"""Issue 18: held-out relative MSE at equal (or fewer) bytes per row, qetvec vs every FAISS code
that fits, beside the Gaussian rate-distortion bounds, on two real datasets:

    glove-50        GloVe 6B 50-d word vectors: train on 50,000 rows, evaluate on 20,000
                    others; 8, 10, 16, 25 bytes per row
    minilm-stdlib   384-d MiniLM sentence embeddings of the standard library's docstrings and
                    comments (database rows): train on 10,000 rows, evaluate on 5,000 others;
                    24, 48, 96, 192 bytes per row

Methods (qetvec/bench/sizing.py and methods.py): "auto" = `qetvec.fit_codec(x_train,
bytes_per_row=B, metric=None, beam=32)` (`--fit-beam 32`: its residual stages encoded with
FAISS's RQ beam-32 width, trained with beam 8; the first committed full tables ran at `qetvec
bench`'s preset beam 8, as their command lines say), QET settings
qet-L<levels>S<stages>, and the FAISS codes PQ, OPQ+PQ, RQ (default beam 5 and beam 32), LSQ,
RaBitQ 1-4 bits (MSE reported but not meaningful: its sa_decode does not reconstruct),
SQtqmse1-4 as FAISS builds it (no norm stored: it assumes unit-norm rows) and as TurboQuant
applies it (random rotation of x/|x|, |x| stored as float16, its 2 bytes counted), EDEN2-4,
SQ4 / SQ8. Every code is trained on the same rows in the same run; bytes per row are read
from the codes.

Training caps (RUNS[...]["train_rows"] / ["skip"]): a FAISS trainer that would take more than
about 200 CPU seconds trains on fewer rows (its table row says so), or is skipped with the
reason in the table, so that both datasets run in about an hour on 2 shared cores (the same
reason sets the training rows of every code, fit_codec's included: 50,000 and 10,000; on a
bigger machine raise n_train and the caps). The caps come
from CPU seconds measured on one thread
(FAISS 1.15.1, a machine shared with other jobs; wall time on 2 free cores is about half):
    glove-50, 5,000 rows: RQ10x8 11.7 s, RQ25x8 30.6 s, RQ10x8 beam 32 23.5 s, OPQ10 13.9 s,
        OPQ25 26.8 s; LSQ10x8 on 2,000 rows 40.2 s
    384-d, 5,000 rows: RQ4x8 7.5 s (1.9 s per 8-bit stage), RQ2x8 beam 32 8.5 s (4.3 s per
        stage), OPQ24 36.2 s; LSQ4x8 on 1,000 rows 3.8 s
RQ's cost grows with rows x stages (x beam), LSQ's with rows x M^2 (2e-4 to 2.4e-4 CPU s per
row per M^2 measured on both datasets); each cap keeps the estimate near 200 CPU s, and never
below 10,000 rows (FAISS's 39 rows per codeword for 256 codewords): a code still over about
400 CPU s at that floor is skipped with its estimate. These are extrapolations: check a cap against the
train_cpu_s column of the first full run.

    python benchmarks/bench_codecs.py                    # both datasets
    python benchmarks/bench_codecs.py glove-50           # one of them
    python benchmarks/bench_codecs.py glove-50 --bytes 10 25   # some of its budgets
Writes benchmarks/results/<dataset>-codecs/ (result.md, result.json, mse_vs_bytes.png), or
<dataset>-codecs-<budgets>/ for some budgets (--out: another folder).
"""
import argparse

from qetvec.cli import main

METHODS = ["auto", "qet-L0S1", "qet-L1S1", "qet-L2S1", "qet-L0S2", "qet-L1S2", "qet-L2S2",
           "pq", "opq", "rq", "rq-beam32", "lsq", "rabitq", "rabitq2", "rabitq3", "rabitq4",
           "sqtqmse1", "sqtqmse2", "sqtqmse3", "sqtqmse4",
           "sqtqmse1-norm", "sqtqmse2-norm", "sqtqmse3-norm", "sqtqmse4-norm",
           "eden2", "eden3", "eden4", "sq4", "sq8"]

RUNS = {
    "glove-50": dict(bytes=[8, 10, 16, 25], n_train=50_000, n_eval=20_000, out="glove50-codecs",
                     train_rows={"rq@25": 32_000,  # ~200 CPU s
                                 "rq-beam32@10": 42_000, "rq-beam32@16": 26_000, "rq-beam32@25": 17_000,
                                 "lsq@8": 10_000, "lsq@10": 10_000},  # ~130 / 200 CPU s: the 10,000-row floor
                     skip={"lsq@16": "estimated 515 CPU s on 10,000 rows (rows x M^2 scaling)",
                           "lsq@25": "estimated 1,250 CPU s on 10,000 rows (rows x M^2 scaling)"}),
    "minilm-stdlib": dict(bytes=[24, 48, 96, 192], n_train=10_000, n_eval=5_000, out="minilm-stdlib-codecs",
                          train_rows={},
                          skip={"rq@192": "estimated 730 CPU s on 10,000 rows (1.9 s per stage per 5,000 rows)",
                                "rq-beam32@96": "estimated 830 CPU s on 10,000 rows (4.3 s per stage per 5,000 rows)",
                                "rq-beam32@192": "estimated 1,650 CPU s on 10,000 rows (4.3 s per stage per 5,000 rows)",
                                "lsq": "estimated 1,380 CPU s at 24 B on 10,000 rows, growing with M^2 (rows x M^2 "
                                       "scaling)"}),
}


def arguments(dataset: str, budgets: list[int] | None = None, out: str | None = None) -> list[str]:
    """The `qetvec bench` command line of one dataset's run (at `budgets`, default all of its
    own; into `out`, default benchmarks/results/<its folder>, with -<budgets> appended when
    only some budgets run)."""
    run = RUNS[dataset]
    if out is None:
        suffix = "" if budgets is None or sorted(budgets) == run["bytes"] else "-" + "-".join(map(str, budgets))
        out = f"benchmarks/results/{run['out']}{suffix}"
    args = ["bench", "--dataset", dataset, "--metrics", "mse", "--fit-beam", "32", "--bytes", *map(str, budgets or run["bytes"]),
            "--n-train", str(run["n_train"]), "--n-eval", str(run["n_eval"]), "--methods", *METHODS,
            "--out", out]
    if run["train_rows"]:
        args += ["--train-rows", *(f"{key}={rows}" for key, rows in run["train_rows"].items())]
    if run["skip"]:
        args += ["--skip", *(f"{key}={reason}" for key, reason in run["skip"].items())]
    return args


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="*", help=f"some of {', '.join(RUNS)} (default: all of them)")
    parser.add_argument("--bytes", type=int, nargs="+", help="budgets to run (default: each dataset's own)")
    parser.add_argument("--out", help="result folder (one dataset only; default: benchmarks/results/<dataset>-codecs, "
                                      "with -<budgets> appended when --bytes picks some budgets)")
    options = parser.parse_args()
    if set(options.datasets) - set(RUNS):
        parser.error(f"unknown dataset(s) {sorted(set(options.datasets) - set(RUNS))}: choose from {list(RUNS)}")
    if options.out and len(options.datasets) != 1:
        parser.error("--out needs exactly one dataset")
    for name in options.datasets or list(RUNS):
        main(arguments(name, options.bytes, options.out))
