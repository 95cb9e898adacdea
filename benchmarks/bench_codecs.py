"""Issue 18: held-out relative MSE at equal (or fewer) bytes per row, qetvec vs every FAISS code
that fits, beside the Gaussian rate-distortion bounds, on two real datasets:

    glove-50        GloVe 6B 50-d word vectors: train on 100,000 rows, evaluate on 100,000
                    others; 8, 10, 16, 25 bytes per row
    minilm-stdlib   384-d MiniLM sentence embeddings of the standard library's docstrings and
                    comments (database rows): train on 50,000 rows, evaluate on 20,000 others;
                    24, 48, 96, 192 bytes per row

Methods (qetvec/bench/sizing.py and methods.py): "auto" = `qetvec.fit_codec(x_train,
bytes_per_row=B)` (skipped, with the reason, where qetvec has no fit_codec yet), QET settings
qet-L<levels>S<stages>, and the FAISS codes PQ, OPQ+PQ, RQ (default beam 5 and beam 32), LSQ,
RaBitQ 1-4 bits (MSE reported but not meaningful: its sa_decode does not reconstruct),
SQtqmse1-4 as FAISS builds it (no norm stored: it assumes unit-norm rows) and as TurboQuant
applies it (random rotation of x/|x|, |x| stored as float16, its 2 bytes counted), EDEN2-4,
SQ4 / SQ8. Every code is trained on the same rows in the same run; bytes per row are read
from the codes.

Training caps (CAPS): a FAISS trainer that would take more than about 15 minutes on this
2-core machine trains on fewer rows, or is skipped with the reason in the table; each is
listed below with the measurement behind it.

    python benchmarks/bench_codecs.py                    # both datasets
    python benchmarks/bench_codecs.py glove-50           # one of them
Writes benchmarks/results/<dataset>-codecs/ (result.md, result.json, mse_vs_bytes.png).
"""
import sys

from qetvec.cli import main

METHODS = ["auto", "qet-L0S1", "qet-L1S1", "qet-L2S1", "qet-L0S2", "qet-L1S2", "qet-L2S2",
           "pq", "opq", "rq", "rq-beam32", "lsq", "rabitq", "rabitq2", "rabitq3", "rabitq4",
           "sqtqmse1", "sqtqmse2", "sqtqmse3", "sqtqmse4",
           "sqtqmse1-norm", "sqtqmse2-norm", "sqtqmse3-norm", "sqtqmse4-norm",
           "eden2", "eden3", "eden4", "sq4", "sq8"]

RUNS = {
    "glove-50": dict(bytes=[8, 10, 16, 25], n_train=100_000, n_eval=100_000, out="glove50-codecs",
                     train_rows={}, skip={}),
    "minilm-stdlib": dict(bytes=[24, 48, 96, 192], n_train=50_000, n_eval=20_000, out="minilm-stdlib-codecs",
                          train_rows={}, skip={}),
}


def arguments(dataset: str) -> list[str]:
    """The `qetvec bench` command line of one dataset's run."""
    run = RUNS[dataset]
    args = ["bench", "--dataset", dataset, "--metrics", "mse", "encode", "--bytes", *map(str, run["bytes"]),
            "--n-train", str(run["n_train"]), "--n-eval", str(run["n_eval"]), "--methods", *METHODS,
            "--out", f"benchmarks/results/{run['out']}"]
    if run["train_rows"]:
        args += ["--train-rows", *(f"{key}={rows}" for key, rows in run["train_rows"].items())]
    if run["skip"]:
        args += ["--skip", *(f"{key}={reason}" for key, reason in run["skip"].items())]
    return args


if __name__ == "__main__":
    for name in sys.argv[1:] or list(RUNS):
        main(arguments(name))
