"""Issue 20: encoding a Lance dataset on Ray (`qetvec_lancedb.distributed.encode_dataset`) and
searching it with sharded Ray actors (`ShardedTable`), against one process, in the same run.

Data: GloVe-50, 1,000 held-out query rows; the other 399,000 rows cycled to --rows rows
(default 1,000,000: each GloVe row 2-3 times; the encoder's cost per row does not depend on
repeats), written as a Lance dataset of 100,000-row fragments (`id`, `vector`) on local disk.
Codec: IVF256 + QET10x8 levels 1 (14-byte code + 1-byte partition), trained on 100,000
sampled rows (the same rows and codec on both sides: the run checks the codes are equal).

Encoding, each configuration on a fresh copy of the plain dataset, round-robin --repeats
times (median): the single-process `convert_table` on 1 and on 2 threads, and
`encode_dataset` on a local Ray (`ray.init(num_cpus=2)`) with 1 and 2 workers of 1 thread
(`concurrency`; the driver trains on as many threads), and the encoder alone (`TableCodec.encode` of the rows in memory, 1
thread). Wall time includes training (the same on every side) and the commit; Ray's encode
phase is reported apart: minus the encoder alone, it is what reading and writing through
Lance on Ray adds per row.

Search, on the coded table, one batch of the 1,000 queries (k=10, nprobe=20), alternated
--repeats times: `QETTable.query` in this process (1 and 2 threads) vs `ShardedTable` with 1
and 2 actors (1 thread each); recall@10 against exact neighbours (faiss), and whether the
sharded results equal the one-process ones (distances exactly; ids up to the order of rows at
equal distance, which the cycled copies of a row are).

On S3 (moto's server on 127.0.0.1, a Python server sharing the 2 cores: a floor, not S3's
speed): the first --s3-rows rows (default 200,000), `encode_dataset` with 2 workers vs
`convert_table` through LanceDB on the bucket, once each, and the query batch from one
process vs 2 actors.

1B x 384 estimate: the encoder's single-thread cost per row at d=384 (IVF1024 + QET48x8
levels 0, a 48-byte code) measured on synthetic Gaussian rows, the Ray overhead per row from
the GloVe run, and the code cache's bytes per row at d=384, scaled by stated assumptions.

    python benchmarks/bench_distributed.py [--rows 1000000] [--repeats 3] [--s3-rows 200000] [--out DIR]
    # -> benchmarks/results/distributed/ by default
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before numba / faiss load OpenMP

import argparse  # noqa: E402
import logging  # noqa: E402
from collections import Counter  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import boto3  # noqa: E402  (comes with moto, the distributed extra's S3 server)
import faiss  # noqa: E402
import lance  # noqa: E402
import lancedb  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import ray  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

import qetvec_lancedb  # noqa: E402
from _common import write_rows_result  # noqa: E402  (benchmarks/ is on sys.path when a script runs)
from qetvec import data  # noqa: E402
from qetvec.evaluation import threads, time_alternated  # noqa: E402
from qetvec.io import write_bytes_atomic  # noqa: E402
from qetvec_lancedb.codec import TableCodec  # noqa: E402
from qetvec_lancedb.columns import CODE_COLUMN, code_matrix  # noqa: E402
from qetvec_lancedb.distributed import ShardedTable, encode_dataset  # noqa: E402
from qetvec_lancedb.scan import CodeScanner  # noqa: E402
from qetvec_lancedb.training import sample_positions  # noqa: E402

CODEC = dict(m=10, nbits=8, levels=1, nlist=256)
FRAGMENT_ROWS = 100_000
K, NPROBE = 10, 20
COLUMNS = ["step", "method", "threads", "seconds", "rows_per_s", "qps", "ratio_vs_one_process", "note"]


def write_plain(path: Path, x: np.ndarray) -> None:
    ids = pa.array(np.arange(len(x), dtype=np.int64))
    table = pa.table({"id": ids, "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1])})
    lance.write_dataset(table, str(path), max_rows_per_file=FRAGMENT_ROWS)


def fresh_copy(plain: Path, root: Path, name: str) -> str:
    target = root / f"{name}.lance"
    shutil.rmtree(target, ignore_errors=True)
    shutil.rmtree(root / f"{name}.qetvec", ignore_errors=True)
    shutil.copytree(plain, target)
    return str(target)


def sorted_codes(uri: str) -> np.ndarray:
    t = lance.dataset(uri).to_table(columns=["id", CODE_COLUMN]).sort_by("id")
    return code_matrix(t.column(CODE_COLUMN))


def encode_runs(plain: Path, root: Path, x: np.ndarray, repeats: int) -> tuple[list[dict], dict]:
    """Round-robin encodes of fresh copies, and of x in memory by the same codec (the encoder
    alone); rows of the result table and Ray's phase times."""
    db, n = lancedb.connect(root), len(x)
    phases: dict[str, list[dict]] = {"ray 1 worker": [], "ray 2 workers": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        codec = TableCodec.train(x[sample_positions(n, 100_000, 0)], **CODEC)  # what every side trains

    def in_memory():
        start = time.perf_counter()
        with threads(1):
            for i in range(0, n, 65536):
                codec.encode(x[i:i + 65536])
        return time.perf_counter() - start

    def convert(n_threads: int):
        def run():
            fresh_copy(plain, root, "one")
            start = time.perf_counter()
            with threads(n_threads):
                qetvec_lancedb.convert_table(db, "one", progress=False, **CODEC)
            return time.perf_counter() - start
        return run

    def distributed(workers: int, label: str):
        def run():
            uri = fresh_copy(plain, root, "ray")
            start = time.perf_counter()
            with threads(workers):  # the driver trains on as many threads as the workers encode on
                result = encode_dataset(uri, concurrency=workers, progress=False, **CODEC)
            phases[label].append({"train_s": result.train_seconds, "encode_s": result.encode_seconds,
                                  "commit_s": result.commit_seconds})
            return time.perf_counter() - start
        return run

    runs = {("TableCodec.encode in memory (encoder alone)", 1): in_memory,
            ("convert_table (one process)", 1): convert(1), ("convert_table (one process)", 2): convert(2),
            ("encode_dataset, Ray 1 worker", 1): distributed(1, "ray 1 worker"),
            ("encode_dataset, Ray 2 workers", 2): distributed(2, "ray 2 workers")}
    seconds: dict = {key: [] for key in runs}
    for _ in range(repeats):
        for key, run in runs.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # copies of the plain dataset re-train the same codec
                seconds[key].append(run())
    same_codes = bool(np.array_equal(sorted_codes(str(root / "one.lance")), sorted_codes(str(root / "ray.lance"))))
    out = []
    for (method, n_threads), times in seconds.items():
        median = float(np.median(times))
        base = float(np.median(seconds[("convert_table (one process)", n_threads)]))
        note = ("no training, no I/O" if method.startswith("TableCodec") else "wall: training, encoding, commit") \
            + "; ratio = speed vs convert_table on as many threads"
        out.append({"step": "encode", "method": method, "threads": n_threads, "seconds": round(median, 2),
                    "rows_per_s": round(n / median), "ratio_vs_one_process": round(base / median, 3), "note": note})
    phase = {label: {key: round(float(np.median([p[key] for p in runs_])), 2) for key in runs_[0]}
             for label, runs_ in phases.items()}
    phase["encoder alone, 1 thread, s"] = round(float(np.median(seconds[("TableCodec.encode in memory (encoder alone)", 1)])), 2)
    phase["codes equal row for row (ray vs convert_table)"] = same_codes
    return out, phase


def search_runs(root: Path, queries: np.ndarray, truth: np.ndarray, base_of: np.ndarray,
                repeats: int) -> tuple[list[dict], dict]:
    """One process vs 1 and 2 actors on the table `ray` coded by the last encode run."""
    db = lancedb.connect(root)
    one = qetvec_lancedb.open_table(db, "ray")
    # half a CPU each for Ray's scheduler, so that both tables' 3 actors fit on 2 CPUs; each
    # actor scans on 1 thread, and only the one searching runs
    shards = {s: ShardedTable(db, "ray", shards=s, actor_options={"num_cpus": 0.5}) for s in (1, 2)}
    results: dict = {}

    def search(label, table, n_threads=None):
        def run():
            if n_threads is None:
                results[label] = table.query(queries, K, nprobe=NPROBE, columns=["id"])
            else:
                with threads(n_threads):
                    results[label] = table.query(queries, K, nprobe=NPROBE, columns=["id"])
        return run

    runs = {("QETTable.query (one process)", 1): search("one1", one, 1),
            ("QETTable.query (one process)", 2): search("one2", one, 2),
            ("ShardedTable, 1 actor", 1): search("s1", shards[1]),
            ("ShardedTable, 2 actors", 2): search("s2", shards[2])}
    first = {}
    for key, run in runs.items():  # the first search loads the code caches
        start = time.perf_counter()
        run()
        first[f"{key[0]}, {key[1]} thread(s)"] = round(time.perf_counter() - start, 2)
    times = time_alternated(list(runs.values()), repeats)
    for shard in shards.values():
        shard.close()

    def per_query(res: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        return (res["id"].to_numpy().reshape(len(queries), K), res["_distance"].to_numpy().reshape(len(queries), K))

    ids, dist = per_query(results["one2"])
    # rows at equal distance (the cycled copies of a row share its code) may come in another
    # order: per query, the (distance, GloVe row) pairs closer than the k-th distance are compared
    inside = dist < dist[:, -1:]
    check = {"first search s (actor start + cache load)": first, "positions compared": int(inside.sum())}
    for label in ("s1", "s2"):
        s_ids, s_dist = per_query(results[label])
        check[f"{label}: distances equal"] = bool(np.array_equal(s_dist, dist))
        check[f"{label}: (distance, row) pairs equal before the k-th distance"] = all(
            sorted(zip(d[m], base_of[a[m]])) == sorted(zip(d[m], base_of[b[m]]))
            for d, a, b, m in zip(dist, ids, s_ids, inside))
    recall = np.mean([sum((Counter(base_of[r]) & Counter(base_of[t])).values()) / K for r, t in zip(ids, truth)])
    check["recall@10 (rows counted by their GloVe row: copies are equal)"] = round(float(recall), 4)
    out = []
    for ((method, n_threads), seconds) in zip(runs, times):
        base = times[list(runs).index(("QETTable.query (one process)", n_threads))]
        out.append({"step": "search", "method": method, "threads": n_threads, "seconds": round(seconds, 3),
                    "qps": round(len(queries) / seconds), "ratio_vs_one_process": round(base / seconds, 3),
                    "note": f"1,000-query batch, k={K}, nprobe={NPROBE}; ratio = QPS vs one process on as many threads"})
    return out, check


def s3_runs(x: np.ndarray, queries: np.ndarray) -> list[dict]:
    """The same on moto's S3 server on 127.0.0.1 (`ThreadedMotoServer`, in this process): the
    plain dataset uploaded twice, `encode_dataset` with 2 workers vs `convert_table` (2
    threads) once each, then the 1,000-query batch from one process vs 2 actors, alternated."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        options = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench", "aws_region": "us-east-1",
                   "aws_endpoint": f"http://{host}:{port}", "allow_http": "true"}
        boto3.client("s3", endpoint_url=options["aws_endpoint"], aws_access_key_id="bench",
                     aws_secret_access_key="bench", region_name="us-east-1").create_bucket(Bucket="bench")
        table = pa.table({"id": pa.array(np.arange(len(x), dtype=np.int64)),
                          "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1])})
        for name in ("ray", "one"):
            lance.write_dataset(table, f"s3://bench/db/{name}.lance", max_rows_per_file=FRAGMENT_ROWS,
                                storage_options=options)
        db = lancedb.connect("s3://bench/db", storage_options=options)
        seconds = {}
        with warnings.catch_warnings(), threads(2):
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            encode_dataset("s3://bench/db/ray.lance", concurrency=2, storage_options=options, progress=False, **CODEC)
            seconds["encode_dataset, Ray 2 workers"] = time.perf_counter() - start
            start = time.perf_counter()
            qetvec_lancedb.convert_table(db, "one", progress=False, **CODEC)
            seconds["convert_table (one process)"] = time.perf_counter() - start
        one, sharded = qetvec_lancedb.open_table(db, "ray"), ShardedTable(db, "ray", shards=2)
        try:
            runs = [lambda: one.query(queries, K, nprobe=NPROBE, columns=["id"]),
                    lambda: sharded.query(queries, K, nprobe=NPROBE, columns=["id"])]
            for run in runs:  # the first search loads the code caches
                run()
            with threads(2):
                search_s = time_alternated(runs, 3)
        finally:
            sharded.close()
    finally:
        server.stop()
    base = seconds["convert_table (one process)"]
    rows = [{"step": "encode on S3", "method": method, "threads": 2, "seconds": round(t, 2),
             "rows_per_s": round(len(x) / t), "ratio_vs_one_process": round(base / t, 3),
             "note": "moto's S3 server on 127.0.0.1, one run each"} for method, t in seconds.items()]
    rows += [{"step": "search on S3", "method": method, "threads": 2, "seconds": round(t, 3),
              "qps": round(len(queries) / t), "ratio_vs_one_process": round(search_s[0] / t, 3),
              "note": f"1,000-query batch, k={K}, nprobe={NPROBE}; median of 3 alternated"}
             for method, t in zip(["QETTable.query (one process)", "ShardedTable, 2 actors"], search_s)]
    return rows


def cost_at_384(n: int = 20_000, repeats: int = 3) -> dict:
    """Single-thread encode cost per row (median of `repeats`) and code-cache bytes per row
    at d=384, IVF1024 + QET48x8 levels 0, on synthetic Gaussian rows (a scaling
    measurement, not a quality one)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n + 20_000, 384)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        codec = TableCodec.train(x[:20_000], m=48, nbits=8, levels=0, nlist=1024)
        train_s = time.perf_counter() - start
    with threads(1):
        per_row = time_alternated([lambda: codec.encode(x[20_000:])], repeats)[0] / n
    encoded = codec.encode(x[20_000:])
    index, terms = CodeScanner(codec).unpack(encoded["code"], encoded["part"].astype(np.int64), None)
    cache = encoded["code"].shape[1] + index.shape[1] * index.itemsize + terms.itemsize + 8  # + _rowid
    return {"encode_s_per_row_1_thread": per_row, "stored_bytes_per_row": codec.bytes_per_row,
            "cache_bytes_per_row": int(cache), "train_s_20k_rows": round(train_s, 1)}


def estimate(cost: dict, phase: dict, n: int) -> str:
    """The 1B x 384-d estimate, as text with its assumptions."""
    glove_per_row_1thread = phase["encoder alone, 1 thread, s"] / n
    ray_per_row = phase["ray 1 worker"]["encode_s"] / n  # 1 worker, 1 thread, GloVe: Lance read + encode + write
    overhead = max(0.0, ray_per_row - glove_per_row_1thread)
    overhead_384 = overhead * 384 / 50  # assumed to grow with the vector bytes read
    core_s = 1e9 * (cost["encode_s_per_row_1_thread"] + overhead_384)
    machines = [8, 32]
    lines = [
        "## Estimate: 1B rows x 384-d (an estimate, not a measurement)",
        "",
        f"Measured here: encoding one 384-d row (IVF1024 + QET48x8 L0, {cost['stored_bytes_per_row']} stored "
        f"bytes/row) costs {cost['encode_s_per_row_1_thread'] * 1e6:.1f} us on one thread (synthetic rows). "
        f"On GloVe-50, Ray's encode phase with 1 worker (Lance read of the vectors, encoding, write of the codes, "
        f"task and worker start) took {ray_per_row * 1e6:.2f} us/row against {glove_per_row_1thread * 1e6:.2f} "
        f"us/row for the encoder alone in memory: {overhead * 1e6:.2f} us/row added (0 when the difference is "
        f"within noise), taken as {overhead_384 * 1e6:.1f} us/row at 384-d (scaled with the vector bytes read).",
        f"So 1B rows cost about {core_s / 3600:.0f} core-hours of encoding.",
        "Assumptions: cost per row is linear in rows and the same on other x86 cores; 16-core machines "
        "running 16 one-thread workers with linear scaling (measured here only up to 2 workers on 2 cores); "
        "reading the 1.5 TB of float32 vectors from object storage at >= 1 GB/s per machine "
        "(not measured here), so per machine reading takes 1.5 TB / (machines x 1 GB/s) and overlaps encoding; "
        "training on the driver: a 100k-row sample with IVF1024 k-means (not measured at this size; "
        f"{cost['train_s_20k_rows']} s on 20k rows on this box).",
    ]
    for count in machines:
        encode_min = core_s / (16 * count) / 60
        read_min = 1.5e12 / (count * 1e9) / 60
        lines.append(f"- {count} machines x 16 cores: ~{max(encode_min, read_min):.0f} min wall "
                     f"(encoding {encode_min:.0f} min, reading {read_min:.0f} min), plus training.")
    cache_gb = cost["cache_bytes_per_row"]  # bytes per row x 1e9 rows = as many GB
    lines += ["", f"Search: the code cache holds {cost['cache_bytes_per_row']} bytes per row at this code "
              f"(code + unpacked table indices + per-row term + row id, measured), so 1B rows need about "
              f"{cache_gb:.0f} GB of actor memory: e.g. {int(np.ceil(cache_gb / 48))} shards of 48 GB."]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--s3-rows", type=int, default=200_000, help="rows of the S3 part (the first ones)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/distributed"))
    args = parser.parse_args(argv)
    queries, glove = data.split(data.load("glove-50"), (1000, None))
    base_of = np.arange(args.rows) % len(glove)  # row id -> its GloVe row
    x = glove[base_of]
    truth = faiss.knn(queries, x, K)[1]  # exact neighbours in the cycled table
    root = Path(tempfile.mkdtemp(prefix="qetvec-bench-distributed-"))
    try:
        write_plain(root / "plain.lance", x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lance / lancedb warn that Ray forks + execs its processes
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        started, load = time.perf_counter(), os.getloadavg()
        encode_rows, phase = encode_runs(root / "plain.lance", root, x, args.repeats)
        search_rows, check = search_runs(root, queries, truth, base_of, max(3, args.repeats))
        s3_rows = s3_runs(x[:args.s3_rows], queries)
        cost = cost_at_384()
        elapsed = time.perf_counter() - started
    finally:
        ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    result = {
        "command": "python " + " ".join(["benchmarks/bench_distributed.py"] + [shlex.quote(a) for a in argv]),
        "setup": (f"{args.rows:,} GloVe-50 rows (399,000 cycled), {FRAGMENT_ROWS:,}-row fragments on local disk; "
                  f"IVF256 + QET10x8 L1 trained on 100,000 sampled rows; local Ray, num_cpus=2, on a shared "
                  f"2-core machine; medians of {args.repeats} round-robin repeats (search: {max(3, args.repeats)}); "
                  f"threads per configuration in the table; measured in {elapsed:.0f} s, load average "
                  f"{load[0]:.1f} before and {os.getloadavg()[0]:.1f} after (other jobs share the machine)."),
        "rows": encode_rows + search_rows + s3_rows, "ray_phases_s": phase, "search_check": check,
        "cost_at_384": cost,
    }
    result["estimate"] = estimate(cost, phase, args.rows)
    table = write_rows_result(result, "Distributed encoding and sharded search (GloVe-50)", COLUMNS, args.out)
    md = args.out / "result.md"
    write_bytes_atomic(md, (md.read_text() + "\nRay phases (median s): " + json.dumps(phase) + "\n\nSearch check: "
                            + json.dumps(check) + "\n\n" + result["estimate"] + "\n").encode())
    print(table)
    print(json.dumps({"ray_phases_s": phase, "search_check": check}, indent=1))
    print(result["estimate"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
