"""Distributed encoding and sharded search (`qetvec_lancedb.distributed`) on a local Ray with 2
CPUs, on local disk and on an S3-compatible server (moto's, started here on 127.0.0.1).

- Codes written by Ray tasks equal the single-process `convert_table`'s row for row (same
  training sample, so the same codec file, byte for byte).
- `ShardedTable` (codes held by Ray actors) returns what one `QETTable.query` returns: ids and
  distances, flat and IVF, L2 and inner product, pre- and post-filters, re-ranking, rows
  without codes.
- A worker killed mid-fragment: retried, or (no retries) nothing committed. Rows appended or
  deleted while the job runs (injected at the commit, the exact window): none lost, and the
  rows left without codes are coded by the next write.

Run with `pytest -m distributed`; needs the `distributed` extra."""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import warnings
from pathlib import Path

import lancedb
import numpy as np
import pyarrow as pa
import pytest

import qetvec_lancedb as ql
from qetvec_lancedb.columns import CODE_COLUMN, NORM_COLUMN, PART_COLUMN, code_matrix

ray = pytest.importorskip("ray")
lance = pytest.importorskip("lance")
moto_server = pytest.importorskip("moto.server")
import boto3  # noqa: E402  (comes with moto)
from ray import cloudpickle  # noqa: E402

from qetvec_lancedb.distributed import ShardedTable, encode_dataset  # noqa: E402
from qetvec_lancedb.distributed import encode as encode_module  # noqa: E402

pytestmark = pytest.mark.distributed

N = 6000  # rows per table: three fragments of 2,000
KILL_DIR = "QETVEC_TEST_KILL_DIR"


def _kill_switch() -> None:
    """Ray worker setup hook: a worker encoding a batch while `<KILL_DIR>/kill` exists claims
    the file (rename: exactly one worker) and SIGKILLs itself, mid-fragment."""
    original = encode_module._encode_batch

    def encode_batch(batch, *args):
        request = Path(os.environ[KILL_DIR], "kill")
        if batch.num_rows > 1 and request.exists():
            try:
                request.rename(request.with_name(f"killed-{os.getpid()}"))
            except FileNotFoundError:  # another worker claimed it
                return original(batch, *args)
            os.kill(os.getpid(), signal.SIGKILL)
        return original(batch, *args)

    encode_module._encode_batch = encode_batch


@pytest.fixture(scope="module")
def kill_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("kill")


@pytest.fixture(scope="module", autouse=True)
def local_ray(kill_dir):
    """A local Ray with 2 CPUs whose workers carry the kill switch."""
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the hook travels by value
    with warnings.catch_warnings():  # lance and lancedb warn that Ray starts its processes by fork + exec
        warnings.simplefilter("ignore")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"worker_process_setup_hook": _kill_switch, "env_vars": {KILL_DIR: str(kill_dir)}})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def s3() -> dict[str, str]:
    """Lance storage_options of a bucket `qetvec` on moto's S3 server on 127.0.0.1."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    options = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "aws_region": "us-east-1",
               "aws_endpoint": f"http://{host}:{port}", "allow_http": "true"}
    boto3.client("s3", endpoint_url=options["aws_endpoint"], aws_access_key_id="testing",
                 aws_secret_access_key="testing", region_name="us-east-1").create_bucket(Bucket="qetvec")
    yield options
    server.stop()


@pytest.fixture(scope="module")
def vectors(glove) -> tuple[np.ndarray, np.ndarray]:
    """(rows (N + 1000, 50): the table and rows appended later; queries (6, 50)), disjoint GloVe-50 slices."""
    return np.ascontiguousarray(glove[:N + 1000]), np.ascontiguousarray(glove[100000:100006])


def rows(x: np.ndarray, start: int = 0) -> pa.Table:
    ids = np.arange(start, start + len(x))
    return pa.table({"id": ids, "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1]),
                     "tag": pa.array(np.array(["a", "b", "c"])[ids % 3])})


def plain_table(db, name: str, x: np.ndarray):
    """A plain LanceDB table of x in three fragments."""
    third = len(x) // 3
    tbl = db.create_table(name, rows(x[:third]))
    tbl.add(rows(x[third:2 * third], third))
    tbl.add(rows(x[2 * third:], 2 * third))
    return tbl


def stored(db, name: str) -> pa.Table:
    return db.open_table(name).to_arrow().sort_by("id")


def assert_codes_are_the_codecs(tbl: ql.QETTable) -> None:
    """Every row has a code, and it is the table codec's code of the row's vector."""
    t = tbl.table.to_arrow()
    assert t.column(CODE_COLUMN).null_count == 0
    x = np.stack(t.column("vector").to_numpy(zero_copy_only=False)).astype(np.float32)
    expected = tbl.codec.encode(x)
    np.testing.assert_array_equal(code_matrix(t.column(CODE_COLUMN)), expected["code"])
    if PART_COLUMN in t.column_names:
        np.testing.assert_array_equal(t.column(PART_COLUMN).to_numpy(), expected["part"])


@pytest.mark.parametrize("nlist, stages, metric", [(None, 2, "l2"), (8, 1, "dot")])
def test_ray_codes_equal_convert_table_row_for_row(tmp_path, vectors, nlist, stages, metric):
    x, queries = vectors
    db = lancedb.connect(tmp_path / "db")
    plain_table(db, "ray", x[:N])
    plain_table(db, "one", x[:N])
    options = dict(m=5, nbits=6, levels=1, stages=stages, metric=metric, nlist=nlist, train_rows=4000, seed=3)
    result = encode_dataset(f"{db.uri}/ray.lance", progress=False, **options)
    reference = ql.convert_table(db, "one", progress=False, **options)
    ours = ql.open_table(db, "ray")
    assert (result.rows, result.pending_rows, result.attempts) == (N, 0, 1)
    assert ours.meta == reference.meta  # same training rows: the same codec file, byte for byte
    a, b = stored(db, "ray"), stored(db, "one")
    for column in [CODE_COLUMN, NORM_COLUMN if stages == 2 else PART_COLUMN, "vector", "tag"]:
        assert a.column(column).equals(b.column(column)), column
    assert a.schema.field(CODE_COLUMN).type == b.schema.field(CODE_COLUMN).type
    assert ours.bytes_per_row == reference.bytes_per_row
    got, want = ours.query(queries, k=10, where="tag != 'b'"), reference.query(queries, k=10, where="tag != 'b'")
    assert got.equals(want)
    with pytest.raises(ValueError, match="already has QET codes"):
        encode_dataset(f"{db.uri}/ray.lance", m=5)


SEARCHES = [dict(), dict(where="tag = 'a'"), dict(where="id < 2500", prefilter=False), dict(refine=3),
            dict(where="tag != 'c'", refine=2)]


@pytest.mark.parametrize("nlist, metric", [(None, "l2"), (None, "dot"), (16, "l2"), (16, "dot")])
def test_sharded_search_equals_one_process(tmp_path, vectors, nlist, metric):
    x, queries = vectors
    db = lancedb.connect(tmp_path / "db")
    plain_table(db, "t", x[:N])
    with pytest.warns(UserWarning, match="poorly trained"):  # 256 codewords on 6,000 rows
        encode_dataset(f"{db.uri}/t.lance", m=10, nbits=8, levels=1, metric=metric, nlist=nlist, progress=False)
    db.open_table("t").add(rows(x[N:N + 300], N))  # through plain LanceDB: no codes, scored exactly
    one, sharded = ql.open_table(db, "t"), ShardedTable(db, "t", shards=2)
    try:
        probe = {} if nlist is None else {"nprobe": 5}
        for search in SEARCHES:
            want = one.query(queries, k=10, **probe, **search)
            got = sharded.query(queries, k=10, **probe, **search)
            assert got.column_names == want.column_names
            assert got["id"].equals(want["id"]) and got["query_index"].equals(want["query_index"]), search
            assert got["_distance"].equals(want["_distance"]), search
        assert set(range(N, N + 300)) & set(one.query(x[N:N + 5], k=3)["id"].to_pylist())  # pending rows found
        single = sharded.search(queries[0]).where("tag = 'b'").limit(7).select(["id"]).to_arrow()
        assert single.equals(one.search(queries[0]).where("tag = 'b'").limit(7).select(["id"]).to_arrow())
        one.encode_pending()  # a new version: the shards reload their fragments
        want, got = one.query(queries, k=10, **probe), sharded.query(queries, k=10, **probe)
        assert got.equals(want)
    finally:
        sharded.close()


def test_more_shards_than_fragments(tmp_path, vectors):
    """Shards left without fragments hold nothing and answer with -1 / +inf padding only."""
    x, queries = vectors
    db = lancedb.connect(tmp_path / "db")
    plain_table(db, "t", x[:N])
    encode_dataset(f"{db.uri}/t.lance", m=5, nbits=6, levels=1, nlist=8, progress=False)
    sharded = ShardedTable(db, "t", shards=5, actor_options={"num_cpus": 0.25})
    try:
        got = sharded.query(queries, k=10, nprobe=3, where="id < 1500")
        assert got.equals(ql.open_table(db, "t").query(queries, k=10, nprobe=3, where="id < 1500"))
        assert got.num_rows == 10 * len(queries) and max(got["id"].to_pylist()) < 1500
    finally:
        sharded.close()


def test_killed_worker_is_retried(tmp_path, vectors, kill_dir):
    x, _ = vectors
    db = lancedb.connect(tmp_path / "db")
    plain_table(db, "t", x[:N])
    (kill_dir / "kill").touch()
    result = encode_dataset(f"{db.uri}/t.lance", m=5, nbits=6, levels=1, nlist=8, batch_size=500, progress=False)
    assert not (kill_dir / "kill").exists() and list(kill_dir.glob("killed-*"))  # a worker did die
    tbl = ql.open_table(db, "t")
    assert tbl.table.version == result.version and tbl.count_rows() == N
    assert_codes_are_the_codecs(tbl)


def test_killed_worker_without_retries_leaves_the_dataset_as_it_was(tmp_path, vectors, kill_dir):
    x, _ = vectors
    db = lancedb.connect(tmp_path / "db")
    before = plain_table(db, "t", x[:N]).version
    (kill_dir / "kill").touch()
    with pytest.raises(ray.exceptions.RayError):
        encode_dataset(f"{db.uri}/t.lance", m=5, nbits=6, levels=1, batch_size=500, max_retries=0, progress=False)
    assert not (kill_dir / "kill").exists()
    dataset = lance.dataset(f"{db.uri}/t.lance")
    assert dataset.version == before and CODE_COLUMN not in dataset.schema.names
    assert not dataset.schema.metadata or b"qetvec.quantizer" not in dataset.schema.metadata
    assert not (tmp_path / "db" / "t.qetvec").exists()  # the codec file written for it is removed
    with pytest.raises(ql.NotTrainedError):
        ql.open_table(db, "t")


@pytest.fixture
def writes_at_commit(monkeypatch):
    """Run `write()` once, right before the job's first commit attempt."""
    def arm(write):
        original, pending = encode_module._commit, [write]

        def commit(*args, **kwargs):
            while pending:
                pending.pop()()
            return original(*args, **kwargs)

        monkeypatch.setattr(encode_module, "_commit", commit)
    return arm


@pytest.mark.parametrize("max_attempts, pending", [(5, 0), (2, 500)])
def test_rows_written_during_the_job_are_kept(tmp_path, vectors, writes_at_commit, max_attempts, pending):
    """An append and a delete land between the encoding and the commit: Lance refuses the
    commit, the job rebases onto them (and, unless it is the last attempt, encodes the new
    fragment); the next write codes whatever was left without codes."""
    x, queries = vectors
    db = lancedb.connect(tmp_path / "db")
    plain_table(db, "t", x[:N])
    other = lancedb.connect(tmp_path / "db").open_table("t")
    writes_at_commit(lambda: (other.add(rows(x[N:N + 500], N)), other.delete("id < 100")))
    result = encode_dataset(f"{db.uri}/t.lance", m=5, nbits=6, levels=1, nlist=8, max_attempts=max_attempts,
                            progress=False)
    assert (result.attempts, result.rows, result.pending_rows) == (2, N + 400, pending)
    tbl = ql.open_table(db, "t")
    assert tbl.count_rows(f"{CODE_COLUMN} IS NULL") == pending
    assert sorted(tbl.table.to_arrow().column("id").to_pylist()) == list(range(100, N + 500))
    assert set(range(N, N + 5)) <= set(tbl.query(x[N:N + 5], k=1)["id"].to_pylist())  # found before coding
    tbl.add(rows(x[N + 500:N + 600], N + 500))  # the next write
    assert tbl.count_rows() == N + 500 and tbl.count_rows(f"{CODE_COLUMN} IS NULL") == 0
    assert_codes_are_the_codecs(tbl)


def test_concurrent_appends_lose_nothing(tmp_path, vectors):
    """Another process-like writer appends through plain LanceDB while the job runs."""
    x, _ = vectors
    db = lancedb.connect(tmp_path / "db")
    plain_table(db, "t", x[:N])
    writer, acknowledged, stop = lancedb.connect(tmp_path / "db").open_table("t"), [N], threading.Event()

    def append() -> None:
        for i in range(10):
            if stop.wait(0.3):
                return
            writer.add(rows(x[N + 50 * i:N + 50 * (i + 1)], N + 50 * i))
            acknowledged.append(50)

    thread = threading.Thread(target=append)
    thread.start()
    try:
        encode_dataset(f"{db.uri}/t.lance", m=5, nbits=6, levels=1, nlist=8, max_attempts=20, progress=False)
    finally:
        stop.set()
        thread.join()
    tbl = ql.open_table(db, "t")
    tbl.encode_pending()  # the next write
    assert tbl.count_rows() == sum(acknowledged) and tbl.count_rows(f"{CODE_COLUMN} IS NULL") == 0
    assert sorted(tbl.table.to_arrow().column("id").to_pylist()) == list(range(sum(acknowledged)))
    assert_codes_are_the_codecs(tbl)


def test_on_s3(s3, vectors, kill_dir, writes_at_commit):
    """The same on the S3 server: a killed worker, an append in the commit window, the codec
    file beside the data in the bucket, one-process and sharded search, the next write."""
    x, queries = vectors
    db = lancedb.connect("s3://qetvec/db", storage_options=s3)
    plain_table(db, "t", x[:N])
    reference_db = lancedb.connect("s3://qetvec/reference", storage_options=s3)
    plain_table(reference_db, "t", x[:N])
    with pytest.warns(UserWarning, match="poorly trained"):  # 256 codewords on 4,000 rows
        reference = ql.convert_table(reference_db, "t", m=10, nbits=8, levels=1, nlist=16, train_rows=4000,
                                     progress=False)
    other = lancedb.connect("s3://qetvec/db", storage_options=s3).open_table("t")
    writes_at_commit(lambda: other.add(rows(x[N:N + 500], N)))
    (kill_dir / "kill").touch()
    with pytest.warns(UserWarning, match="poorly trained"):
        result = encode_dataset("s3://qetvec/db/t.lance", m=10, nbits=8, levels=1, nlist=16, train_rows=4000,
                                storage_options=s3, batch_size=500, progress=False)
    assert list(kill_dir.glob("killed-*")) and (result.attempts, result.rows) == (2, N + 500)
    tbl = ql.open_table(db, "t")
    assert tbl.meta == reference.meta  # the codec file in the bucket is the single-process one
    a, b = tbl.table.to_arrow().sort_by("id").slice(0, N), reference.table.to_arrow().sort_by("id")
    assert a.column(CODE_COLUMN).equals(b.column(CODE_COLUMN)) and a.column(PART_COLUMN).equals(b.column(PART_COLUMN))
    sharded = ShardedTable(db, "t", shards=2)
    try:
        for search in SEARCHES[:3]:
            assert sharded.query(queries, k=10, nprobe=5, **search).equals(tbl.query(queries, k=10, nprobe=5, **search))
    finally:
        sharded.close()
    tbl.add(rows(x[N + 500:N + 600], N + 500))
    assert tbl.count_rows() == N + 600 and tbl.count_rows(f"{CODE_COLUMN} IS NULL") == 0
    assert_codes_are_the_codecs(tbl)
