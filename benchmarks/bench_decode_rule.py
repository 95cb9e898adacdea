"""When `qetvec.adc.search_unpacked` should score by decoded rows instead of table lookups.

For codes of several shapes on MiniLM 384-d (50,000 rows, IVF256, nprobe 16, 500 queries:
~33 queries per list) and GloVe-50 (200,000 rows, IVF256, nprobe 20, 1,000 queries: ~78
queries per list), times `adc.search_decoded` against `adc.search_indexed` over the same
unpacked rows on 1 thread, alternated (median of 3), and prints the dimensions per lookup
unit and the table entries beside both: the measurement behind `adc.DECODE_MAX_DIMS_PER_UNIT`
and `adc.DECODE_MIN_TABLE_ENTRIES`.

    python benchmarks/bench_decode_rule.py
"""
import warnings

import faiss
import numpy as np

import qetvec
from bench_ann import load  # benchmarks/ is on sys.path when a script runs
from qetvec import adc, faiss_threads
from qetvec.evaluation import compare_timing, threads

# dataset: (rows, queries, training rows, nprobe, [(groups, bits, tree levels)])
SETTINGS = {
    "minilm-stdlib": (50_000, 500, 10_000, 16, [(24, 8, 0), (64, 8, 0), (128, 6, 0), (192, 4, 0)]),
    "glove-50": (200_000, 1000, 20_000, 20, [(16, 8, 0), (25, 8, 0), (8, 9, 1), (16, 12, 1)]),
}


def main() -> None:
    print("| data | groups x bits, levels | lookup units | dims per unit | table entries | decoded s | lookups s "
          "| lookups / decoded speed |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (rows, n_queries, n_train, nprobe, shapes) in SETTINGS.items():
        queries, base = load(name, n_queries, rows)
        d = base.shape[1]
        train = base[np.sort(np.random.default_rng(0).permutation(len(base))[:n_train])]
        kmeans = faiss.Kmeans(d, 256, niter=20, seed=1)
        kmeans.train(train)
        for m, nbits, levels in shapes:
            index = qetvec.IndexIVFQET(faiss.IndexFlatL2(d), d, 256, m, nbits=nbits, levels=levels)
            index.quantizer.add(kmeans.centroids)
            with warnings.catch_warnings():  # 12-bit codebooks on 20k rows: timing only
                warnings.simplefilter("ignore")
                index.train(train)
            index.add(base)
            index.precompute_rows = True
            probes = faiss_threads.search(index.quantizer, queries, nprobe)[1]
            lists, units = index.lists, index.lists.entries.shape[1]

            def run(search):
                return search(index.searcher, queries, lists.entries, lists.terms, lists.start, lists.size, probes, 100)
            with threads(1):
                t = compare_timing(lambda: run(adc.search_decoded), lambda: run(adc.search_indexed), 3)
            print(f"| {name} | {m}x{nbits}, {levels} | {units} | {d / units:.1f} | {index.searcher.units.table_size} "
                  f"| {t.ours:.3f} | {t.baseline:.3f} | {t.ours / t.baseline:.2f} |", flush=True)


if __name__ == "__main__":
    main()
