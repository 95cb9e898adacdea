"""Issue 3: recall@10 and scan speed of IndexQET vs FAISS IndexPQ at equal bytes per row.

GloVe-50: 1,000 held-out queries against the other 399,000 rows (exact neighbours from
faiss.IndexFlatL2), codebooks trained on 100,000 of those rows. Speed is queries/s of
`search` on the whole batch, timed alternately with faiss.IndexPQ(50, 10, 8) (10 B) and
(50, 25, 8) (25 B) in the same run, 1 thread and all threads; codes scanned per second =
queries/s x 399,000. FAISS RQ is left out here: training and encoding 399,000 rows at
25 bytes took over 30 minutes on the 2-core machine; its MSE at equal bits is in
bench_codecs.py. Add `--methods ... rq` to include it (recall only: FAISS searches RQ
codes by decoding them).

    python benchmarks/bench_flat.py            # writes benchmarks/results/glove50-flat-core/
"""
import sys

from qetvec.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--metrics", "flat", "--n-queries", "1000", "--n-base", "-1",
                   "--n-train", "100000", "--bytes", "10", "25", "--methods", "qet-L0S1", "qet-L1S1", "pq",
                   "--out", "benchmarks/results/glove50-flat-core", *sys.argv[1:]]))
