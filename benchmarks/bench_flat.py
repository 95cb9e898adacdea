"""Issue 10: flat scan of IndexQET vs FAISS IndexPQ, recall@10 and queries/s at equal bytes.

GloVe-50: 1,000 held-out queries against --n-base database rows (default 200,000 on the
2-core dev box; -1 for all 399,000), exact neighbours from faiss.IndexFlatL2, codebooks
trained on --n-train (default 50,000) of those rows. Methods at 10 and 25 bytes per row:
QET levels 0 (PQ by QET's codec), QET levels 1, FAISS IndexPQ. Speed is queries/s of
`search` on the whole batch, timed alternately with faiss.IndexPQ(50, 10, 8) (10 B) and
(50, 25, 8) (25 B) in the same run, on 1 thread and on all threads.

    python benchmarks/bench_flat.py [--n-base -1 --n-train 100000]
    # writes benchmarks/results/glove50-flat-core/
"""
import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before faiss loads its OpenMP: see qetvec/__init__.py
from qetvec.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench", "--metrics", "flat", "--n-queries", "1000", "--n-base", "200000",
                   "--n-train", "50000", "--bytes", "10", "25", "--methods", "qet-L0S1", "qet-L1S1", "pq",
                   "--out", "benchmarks/results/glove50-flat-core", *sys.argv[1:]]))
