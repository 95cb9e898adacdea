"""Concurrency of the LanceDB adapter (issues 13 and 14): two writer processes and a reader
for a bounded time, and convert_table while another process appends. Counted: acknowledged
rows (an `add` that returned), rows lost, duplicate rows, reader exceptions."""
from __future__ import annotations

import json
import subprocess
import threading
import sys

import lancedb
import numpy as np
import pyarrow as pa
import pytest

import qetvec_lancedb as ql

WRITER = """
import json, sys, time, lancedb, numpy as np, pyarrow as pa, qetvec_lancedb as ql
path, writer, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
pool = np.load(path + "/pool.npy")
tbl = ql.open_table(lancedb.connect(path + "/db"), "live")
acked, errors, b, stop = [], [], 0, time.time() + seconds
while time.time() < stop or b < 20:
    ids = np.arange(1_000_000 * (writer + 1) + 50 * b, 1_000_000 * (writer + 1) + 50 * (b + 1))
    vecs = pool[ids % len(pool)]
    try:
        tbl.add(pa.table({"id": ids, "vector": pa.FixedSizeListArray.from_arrays(pa.array(vecs.ravel()), 50),
                          "tag": [f"w{writer}"] * len(ids)}), progress=False)
        acked += ids.tolist()
    except Exception as err:
        errors.append(repr(err))
    b += 1
print(json.dumps({"acked": acked, "errors": errors}))
"""

READER = """
import json, os, sys, lancedb, numpy as np, qetvec_lancedb as ql
path = sys.argv[1]
pool = np.load(path + "/pool.npy")
tbl = ql.open_table(lancedb.connect(path + "/db"), "live")
versions, errors, searches = set(), [], 0
while not os.path.exists(path + "/writers-done"):  # search for as long as the writers write
    try:
        q = pool[searches % len(pool)]
        res = tbl.query(q if searches % 2 else pool[:4], k=10, where=None if searches % 3 else "tag != 'old'")
        ids = res["id"].to_numpy()
        per_query = res["query_index"].to_numpy() if "query_index" in res.column_names else np.zeros(len(ids))
        assert all(len(set(ids[per_query == i])) == (per_query == i).sum() for i in set(per_query))
        versions.add(tbl._pin().version)
        searches += 1
    except Exception as err:
        errors.append(repr(err))
print(json.dumps({"versions": len(versions), "searches": searches, "errors": errors}))
"""


def run_two_writers_and_reader(tmp_path, glove, seconds: float) -> dict:
    pool = np.ascontiguousarray(glove[200000:204000])
    np.save(tmp_path / "pool.npy", pool)
    db = lancedb.connect(tmp_path / "db")
    ql.create_table(db, "live", pa.table({"id": np.arange(1000), "vector": pa.FixedSizeListArray.from_arrays(
        pa.array(pool[:1000].ravel()), 50), "tag": ["old"] * 1000}), m=5, nbits=4, levels=1, nlist=8, progress=False)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(w), str(seconds)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in range(2)]
    procs.append(subprocess.Popen([sys.executable, "-c", READER, str(tmp_path)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = []
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=seconds + 300)
        if i == 1:
            (tmp_path / "writers-done").touch()
        assert p.returncode == 0, err
        outs.append(json.loads(out.strip().splitlines()[-1]))
    final = ql.open_table(db, "live").table.to_arrow()["id"].to_numpy()
    acked = np.array(outs[0]["acked"] + outs[1]["acked"], np.int64)
    return {"acknowledged": len(acked), "lost": int((~np.isin(acked, final)).sum()),
            "duplicates": len(final) - len(np.unique(final)), "writer_errors": outs[0]["errors"] + outs[1]["errors"],
            "reader_errors": outs[2]["errors"], "reader_versions": outs[2]["versions"],
            "searches": outs[2]["searches"], "rows": len(final)}


def check(report: dict) -> None:
    print(json.dumps({k: v for k, v in report.items() if "errors" not in k}
                     | {k: len(v) for k, v in report.items() if "errors" in k}))
    assert report["lost"] == 0 and report["duplicates"] == 0
    assert report["reader_errors"] == []
    assert all("Commit conflict" in e for e in report["writer_errors"])  # clear, and not acknowledged
    assert report["acknowledged"] > 0 and report["reader_versions"] >= 3
    assert report["rows"] == 1000 + report["acknowledged"]


def test_two_writers_and_a_reader(tmp_path, glove):
    check(run_two_writers_and_reader(tmp_path, glove, seconds=4))


@pytest.mark.slow
def test_two_writers_and_a_reader_long(tmp_path, glove):
    check(run_two_writers_and_reader(tmp_path, glove, seconds=20))


APPENDER = """
import json, sys, time, lancedb, numpy as np, pyarrow as pa
path, seconds = sys.argv[1], float(sys.argv[2])
pool = np.load(path + "/pool.npy")
db = lancedb.connect(path + "/db")
tbl = db.open_table("plain")
acked, failed, b, stop = [], 0, 0, time.time() + seconds
while time.time() < stop:
    ids = np.arange(100_000 + 20 * b, 100_000 + 20 * (b + 1))
    try:
        tbl.checkout_latest()
        tbl.add(pa.table({"id": ids, "vector": pa.FixedSizeListArray.from_arrays(
            pa.array(pool[ids % len(pool)].ravel()), 50)}))
        acked += ids.tolist()
    except Exception:
        failed += 1
    b += 1
    time.sleep(0.01)
print(json.dumps({"acked": acked, "failed": failed}))
"""


def test_convert_table_keeps_rows_appended_meanwhile(tmp_path, glove):
    pool = np.ascontiguousarray(glove[210000:213000])
    np.save(tmp_path / "pool.npy", pool)
    db = lancedb.connect(tmp_path / "db")
    db.create_table("plain", pa.table({"id": np.arange(3000), "vector": pa.FixedSizeListArray.from_arrays(
        pa.array(pool.ravel()), 50)}))
    appender = subprocess.Popen([sys.executable, "-c", APPENDER, str(tmp_path), "6"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tbl = ql.convert_table(db, "plain", m=5, nbits=6, levels=0, nlist=8, progress=False)
    out, err = appender.communicate(timeout=300)
    assert appender.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    tbl.table.checkout_latest()
    final = tbl.table.to_arrow()["id"].to_numpy()
    print({"acknowledged": len(report["acked"]), "failed_appends": report["failed"], "rows": len(final)})
    assert np.isin(report["acked"], final).all() and np.isin(np.arange(3000), final).all()
    assert len(final) == len(np.unique(final))
    for i in report["acked"][-3:] + [5, 2999]:  # new rows are found (exactly if they have no codes)
        assert tbl.query(pool[i % 3000], k=50, nprobe=8, where=f"id = {i}")["id"].to_pylist() == [i]


def test_concurrent_overwrites_all_succeed(tmp_path, glove):
    """Threads overwriting one table at once (Lance refuses the commit of all but one of
    overwrites that read the same version): each retries, none fails, the last one stands."""
    x = np.ascontiguousarray(glove[:2100])
    db = lancedb.connect(tmp_path / "db")
    def data(w: int) -> pa.Table:  # writer w's 700 rows, ids from 1000 w
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(x[700 * w:700 * (w + 1)].ravel()), 50)
        return pa.table({"id": np.arange(700) + 1000 * w, "vector": vectors})
    ql.create_table(db, "t", data(0), m=5, nbits=4, levels=0, progress=False)
    errors: list[Exception] = []

    def overwrite(writer: int) -> None:
        for r in range(4):
            try:
                ql.create_table(lancedb.connect(tmp_path / "db"), "t", data(writer), m=5, nbits=4, levels=0,
                                seed=10 * writer + r, mode="overwrite", progress=False)
            except Exception as err:  # noqa: BLE001 - counted, then reported
                errors.append(err)

    threads = [threading.Thread(target=overwrite, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    tbl = ql.open_table(db, "t")
    ids = tbl.table.to_arrow()["id"].to_numpy()
    assert len(ids) == 700 and ids.min() // 1000 == ids.max() // 1000  # one writer's rows, whole
    writer = int(ids[0]) // 1000
    assert tbl.query(x[700 * writer], k=1, refine=50)["id"].to_pylist() == [1000 * writer]
