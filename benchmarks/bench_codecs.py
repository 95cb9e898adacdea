"""Issue 2: relative MSE vs bits/row on held-out GloVe-50 rows, QET vs FAISS codecs.

Train on 100,000 rows, evaluate on 100,000 others; QET with levels 0, 1, 2 and stages 1, 2
beside FAISS PQ, OPQ+PQ and RQ at the same bytes per row (bits/row read from the encoded
arrays); QET encode rate vs faiss.ProductQuantizer.compute_codes, same run. FAISS LSQ trains
for tens of minutes on 100,000 rows per budget here, so it runs separately at 10 bytes:

    python benchmarks/bench_codecs.py          # writes benchmarks/results/glove50-codecs/
    python benchmarks/bench_codecs.py --bytes 10 --methods lsq --out benchmarks/results/glove50-lsq
"""
import sys

from qetvec.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--metrics", "mse", "encode", "--bytes", "10", "16", "25",
                   "--methods", "qet-L0S1", "qet-L1S1", "qet-L2S1", "qet-L0S2", "qet-L1S2", "qet-L2S2",
                   "pq", "opq", "rq", "--out", "benchmarks/results/glove50-codecs",
                   *sys.argv[1:]]))
