"""When `qetvec.adc.search_unpacked` should score by decoded rows instead of table lookups.

For PQ-shaped codes of several widths on MiniLM 384-d (50,000 rows, IVF256, nprobe 16, 500
queries: ~33 queries per list), times `adc.search_decoded` against `adc.search_indexed` over
the same unpacked rows on 1 thread, alternated (median of 3), and prints the dimensions per
lookup unit beside both: the measurement behind `adc.DECODE_MAX_DIMS_PER_UNIT`.

    python benchmarks/bench_decode_rule.py
"""
import faiss
import numpy as np

import qetvec
from qetvec import adc, data, faiss_threads
from qetvec.evaluation import compare_timing, threads

SETTINGS = [(24, 8), (64, 8), (128, 6), (192, 4)]  # (groups, bits): 24 to 128 lookup units


def main() -> None:
    base = data.load("minilm-stdlib")[:50_000]
    queries = data.load("minilm-stdlib-queries")[:500]
    train = base[np.sort(np.random.default_rng(0).permutation(len(base))[:10_000])]
    kmeans = faiss.Kmeans(base.shape[1], 256, niter=20, seed=1)
    kmeans.train(train)
    print("| groups x bits | lookup units | dims per unit | decoded s | lookups s | lookups / decoded speed |")
    print("|---|---|---|---|---|---|")
    for m, nbits in SETTINGS:
        index = qetvec.IndexIVFQET(faiss.IndexFlatL2(base.shape[1]), base.shape[1], 256, m, nbits=nbits, levels=0)
        index.quantizer.add(kmeans.centroids)
        index.train(train)
        index.add(base)
        index.precompute_rows = True
        probes = faiss_threads.search(index.quantizer, queries, 16)[1]
        lists, units = index.lists, index.lists.entries.shape[1]

        def run(search):
            return search(index.searcher, queries, lists.entries, lists.terms, lists.start, lists.size, probes, 100)
        with threads(1):
            t = compare_timing(lambda: run(adc.search_decoded), lambda: run(adc.search_indexed), 3)
        print(f"| {m}x{nbits} | {units} | {base.shape[1] / units:.1f} | {t.ours:.3f} | {t.baseline:.3f} | "
              f"{t.ours / t.baseline:.2f} |")


if __name__ == "__main__":
    main()
