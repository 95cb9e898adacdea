"""LanceDB adapter (`qetvec_lancedb`): create/add/search/delete on a temporary database,
pre-filtering, refine, IVF, reopening in a fresh process, concurrent writer + searcher,
and the error cases. Data: a fixed slice of GloVe-50 (real vectors)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import lancedb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import qetvec_lancedb as ql
from qetvec import QETQuantizer
from qetvec_lancedb.columns import CODE_COLUMN, NORM_COLUMN, PART_COLUMN

N = 3000  # rows in the table (two batches of 1500)


@pytest.fixture(scope="module")
def vectors(glove) -> tuple[np.ndarray, np.ndarray]:
    """(rows (N, 50), queries (20, 50)) from disjoint parts of GloVe-50."""
    return np.ascontiguousarray(glove[:N]), np.ascontiguousarray(glove[100000:100020])


@pytest.fixture(scope="module")
def quantizer(glove) -> QETQuantizer:
    """levels=1, m=5, 6-bit codes, trained once on 4,000 rows not in the table."""
    return QETQuantizer(50, 5, nbits=6, levels=1, seed=0).train(np.ascontiguousarray(glove[50000:54000]))


def rows(x: np.ndarray, start: int) -> list[dict]:
    return [{"id": start + i, "vector": v, "tag": ["a", "b", "c"][(start + i) % 3]} for i, v in enumerate(x)]


def adc_topk(quantizer: QETQuantizer, codes: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int,
             metric: str = "l2") -> tuple[np.ndarray, np.ndarray]:
    """Reference: distances to decoded codes, brute force."""
    x_hat = quantizer.decode(codes)
    dist = 1.0 - x_hat @ q if metric == "dot" else ((x_hat - q) ** 2).sum(1)
    best = np.argsort(dist, kind="stable")[:k]
    return ids[best], dist[best]


def stored_codes(tbl: ql.QETTable, where: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    t = tbl.table.search().where(where).select(["id", CODE_COLUMN]).limit(None).to_arrow() if where else \
        tbl.table.to_arrow().select(["id", CODE_COLUMN])
    codes = np.frombuffer(t.column(CODE_COLUMN).combine_chunks().buffers()[1], np.uint8)
    return codes.reshape(t.num_rows, -1), t.column("id").to_numpy()


@pytest.fixture
def table(tmp_path, vectors, quantizer) -> ql.QETTable:
    """Created from a list of dicts, second batch added as a pandas DataFrame."""
    x, _ = vectors
    db = lancedb.connect(tmp_path / "db")
    tbl = ql.create_table(db, "words", rows(x[:1500], 0), codec=quantizer)
    tbl.add(pd.DataFrame(rows(x[1500:], 1500)))
    return tbl


def test_create_add_search_matches_brute_force(table, vectors, quantizer):
    _, queries = vectors
    assert table.count_rows() == N
    assert table.table.schema.field(CODE_COLUMN).type == pa.binary(quantizer.code_size)
    assert table.bytes_per_row == quantizer.code_size == 7  # 25 swap bits + 5 x 6 bits = 55 bits
    codes, ids = stored_codes(table)
    assert (codes == quantizer.encode(np.stack(table.table.to_arrow()["vector"].to_numpy(zero_copy_only=False)))).all()
    for q in queries[:5]:
        res = table.query(q, k=10)
        assert res.column_names == ["id", "vector", "tag", "_distance"]
        ref_ids, ref_d = adc_topk(quantizer, codes, ids, q, 10)
        assert res["id"].to_pylist() == ref_ids.tolist()
        np.testing.assert_allclose(res["_distance"].to_numpy(), ref_d, rtol=1e-4, atol=1e-4)


def test_where_is_a_prefilter(table, vectors, quantizer):
    _, queries = vectors
    codes, ids = stored_codes(table, "tag = 'b' AND id > 100")
    for q in queries[:5]:
        res = table.query(q, k=10, where="tag = 'b' AND id > 100")
        assert res.num_rows == 10 and set(res["tag"].to_pylist()) == {"b"}
        assert res["id"].to_pylist() == adc_topk(quantizer, codes, ids, q, 10)[0].tolist()
    few = table.query(queries[0], k=10, where="id < 12")  # 12 rows match: k come back
    assert few.num_rows == 10 and max(few["id"].to_pylist()) < 12
    assert table.query(queries[0], k=10, where="id < 4").num_rows == 4
    assert table.query(queries[0], k=10, where="id < 0").num_rows == 0


def test_delete(table, vectors):
    _, queries = vectors
    before = table.query(queries[0], k=5)["id"].to_pylist()
    table.delete(f"id IN ({', '.join(map(str, before[:2]))}) OR tag = 'c'")
    assert table.count_rows() == N - N // 3 - sum(i % 3 != 2 for i in before[:2])
    after = table.query(queries[0], k=5)
    assert not set(after["id"].to_pylist()) & set(before[:2])
    assert "c" not in after["tag"].to_pylist()


def test_refine_reranks_by_exact_distance(table, vectors):
    x, queries = vectors
    q = queries[0]
    exact = np.argsort(((x - q) ** 2).sum(1))[:10]
    res = table.query(q, k=10, refine=N)  # every row re-ranked: the exact answer
    assert res["id"].to_pylist() == exact.tolist()
    np.testing.assert_allclose(res["_distance"].to_numpy(), ((x[exact] - q) ** 2).sum(1), rtol=1e-5)
    recall = lambda r: np.mean([len(set(table.query(q, k=10, refine=r)["id"].to_pylist())  # noqa: E731
                                     & set(np.argsort(((x - q) ** 2).sum(1))[:10])) / 10 for q in queries])
    assert recall(8) >= recall(1)


def test_reopen_in_fresh_process(table, vectors, tmp_path):
    _, queries = vectors
    table.delete("id % 7 = 0")
    expected = [(table.query(q, k=10)["id"].to_pylist(), table.query(q, k=10, where="tag = 'a'")["id"].to_pylist())
                for q in queries[:3]]
    np.save(tmp_path / "queries.npy", queries[:3])
    script = textwrap.dedent(f"""
        import json, lancedb, numpy as np, qetvec_lancedb as ql
        tbl = ql.open_table(lancedb.connect({str(tmp_path / 'db')!r}), "words")
        qs = np.load({str(tmp_path / 'queries.npy')!r})
        print(json.dumps([(tbl.query(q, k=10)["id"].to_pylist(),
                           tbl.query(q, k=10, where="tag = 'a'")["id"].to_pylist()) for q in qs]))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert [tuple(r) for r in json.loads(out.stdout.strip().splitlines()[-1])] == [tuple(e) for e in expected]


def test_without_vectors_multistage_dot_and_ivf(tmp_path, vectors, glove):
    x, queries = vectors
    db = lancedb.connect(tmp_path / "db")
    train = np.ascontiguousarray(glove[50000:53000])
    two = QETQuantizer(50, 5, nbits=6, levels=1, stages=2, seed=1).train(train)
    slim = ql.create_table(db, "slim", rows(x, 0), codec=two, keep_vectors=False)
    assert "vector" not in slim.table.schema.names and NORM_COLUMN in slim.table.schema.names
    assert slim.bytes_per_row == two.code_size + 4
    codes, ids = stored_codes(slim)
    res = slim.query(queries[1], k=10)
    assert res.column_names == ["id", "tag", "_distance"]
    ref_ids, ref_d = adc_topk(two, codes, ids, queries[1], 10)
    assert res["id"].to_pylist() == ref_ids.tolist()
    np.testing.assert_allclose(res["_distance"].to_numpy(), ref_d, rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="keep_vectors"):
        slim.query(queries[1], k=10, refine=2)

    one = QETQuantizer(50, 5, nbits=6, levels=1, seed=2).train(train)
    dot = ql.create_table(db, "dot", rows(x, 0), codec=one, metric="dot")
    codes, ids = stored_codes(dot)
    assert dot.query(queries[2], k=10)["id"].to_pylist() == adc_topk(one, codes, ids, queries[2], 10, "dot")[0].tolist()

    ivf = ql.create_table(db, "ivf", rows(x, 0), codec=one, nlist=8)
    assert PART_COLUMN in ivf.table.schema.names and ivf.bytes_per_row == one.code_size + 1  # uint8 partition id (nlist <= 256)
    flat = ql.create_table(db, "flat", rows(x, 0), codec=one)
    for q in queries[:3]:
        assert ivf.query(q, k=10, nprobe=8)["id"].to_pylist() == flat.query(q, k=10)["id"].to_pylist()
        assert ivf.query(q, k=10, nprobe=8, where="tag = 'a'")["id"].to_pylist() == \
            flat.query(q, k=10, where="tag = 'a'")["id"].to_pylist()
        near = ivf.query(q, k=10, nprobe=1, columns=["id"])
        part = ivf.codec.probe(q[None], 1)[0, 0]
        parts = ivf.codec.probe(x[near["id"].to_numpy()], 1)[:, 0]
        assert near.num_rows == 10 and (parts == part).all()
    with pytest.raises(ValueError, match="no IVF"):
        flat.query(queries[0], k=5, nprobe=2)


def test_convert_existing_table(tmp_path, vectors, quantizer):
    x, queries = vectors
    db = lancedb.connect(tmp_path / "db")
    db.create_table("plain", pa.table({"id": np.arange(700), "vector": pa.FixedSizeListArray.from_arrays(
        pa.array(x[:700].ravel()), 50)}))  # >= 39 rows per codeword
    with pytest.raises(ql.NotTrainedError, match="no QET codes"):
        ql.open_table(db, "plain")
    tbl = ql.convert_table(db, "plain", m=5, nbits=4, levels=0)
    assert tbl.count_rows() == 700 and tbl.bytes_per_row == 3
    assert tbl.query(queries[0], k=3, refine=700)["id"].to_pylist() == np.argsort(((x[:700] - queries[0]) ** 2).sum(1))[:3].tolist()
    with pytest.raises(ValueError, match="already has QET codes"):
        ql.convert_table(db, "plain", m=5)


def test_errors_name_the_problem_and_lose_nothing(tmp_path, vectors, quantizer):
    x, queries = vectors
    db = lancedb.connect(tmp_path / "db")
    with pytest.raises(ql.VectorColumnError, match="no vector column 'vector'"):
        ql.create_table(db, "t", [{"id": 1, "emb": [0.0] * 50}], codec=quantizer)
    with pytest.raises(ql.VectorColumnError, match="fixed-size list of floats"):
        ql.create_table(db, "t", [{"id": 1, "vector": "not a vector"}], codec=quantizer)
    with pytest.raises(ql.DimensionMismatchError, match="expects d=50"):
        ql.create_table(db, "t", [{"id": 1, "vector": [0.0] * 7}], codec=quantizer)
    with pytest.raises(ql.NotTrainedError):
        ql.TableCodec(QETQuantizer(50, 5))
    tbl = ql.create_table(db, "t", rows(x[:300], 0), codec=quantizer)
    with pytest.raises(ValueError, match="already exists"):
        ql.create_table(db, "t", rows(x[:10], 0), codec=quantizer)
    with pytest.raises(ql.DimensionMismatchError, match="dimension is 50"):
        tbl.add([{"id": 999, "vector": [0.0] * 49, "tag": "a"}])
    with pytest.raises(ql.DimensionMismatchError, match="query has 49 values"):
        tbl.query(queries[0][:49])
    with pytest.raises(ValueError, match="columns differ"):
        tbl.add([{"id": 999, "vector": queries[0]}])
    assert tbl.count_rows() == 300

    qfile = tmp_path / "db" / "t.qetvec" / tbl.meta.quantizer_file
    good = qfile.read_bytes()
    qfile.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(ql.QuantizerFileError, match="corrupt"):
        ql.open_table(db, "t")
    qfile.unlink()
    with pytest.raises(ql.QuantizerFileError, match="missing"):
        ql.open_table(db, "t")
    assert db.open_table("t").count_rows() == 300  # the rows are untouched
    qfile.write_bytes(good)
    assert ql.open_table(db, "t").query(queries[0], k=3).num_rows == 3


def test_codec_files_the_writer_would_not_write_are_refused(quantizer):
    """A table codec file is read with the checks of every other qetvec file: its quantizer's
    codebooks, its IVF centroids and its flags as the writer writes them, nothing else."""
    from qetvec.io import CorruptIndexError, deserialize, pack, serialize
    centroids = np.random.default_rng(0).standard_normal((4, 50)).astype(np.float32)
    codec = ql.TableCodec(quantizer, "l2", centroids, by_residual=True)
    assert serialize(deserialize(serialize(codec))) == serialize(codec)
    meta, arrays = codec._state()
    nan_books = arrays["codec.stage0.codebooks"].copy()
    nan_books[3] = np.nan
    nan_centroids = centroids.copy()
    nan_centroids[1, 2] = np.inf
    for changed_meta, changed_arrays, field in [
        ({"by_residual": "yes"}, {}, "by_residual"),
        ({"by_residual": 1}, {}, "by_residual"),
        ({"metric": "cos"}, {}, "metric"),
        ({}, {"codec.stage0.codebooks": nan_books}, "stage0.codebooks"),
        ({}, {"ivf_centroids": centroids.astype(np.float64)}, "ivf_centroids"),
        ({}, {"ivf_centroids": nan_centroids}, "ivf_centroids"),
    ]:
        with pytest.raises(CorruptIndexError, match=field):
            deserialize(pack("LanceTableCodec", {**meta, **changed_meta}, {**arrays, **changed_arrays}))


WRITER = """
import sys, lancedb, numpy as np, qetvec_lancedb as ql
path, start, batches, size = sys.argv[1], *map(int, sys.argv[2:5])
x = np.load(path + "/pool.npy")
tbl = ql.open_table(lancedb.connect(path + "/db"), "live")
for b in range(batches):
    lo = start + b * size
    tbl.add([{"id": lo + i, "vector": x[lo + i], "tag": "new"} for i in range(size)], progress=False)
"""

SEARCHER = """
import sys, json, lancedb, numpy as np, qetvec_lancedb as ql
path, final = sys.argv[1], int(sys.argv[2])
x = np.load(path + "/pool.npy")
tbl = ql.open_table(lancedb.connect(path + "/db"), "live")
quant, counts, searches = tbl.codec.codec, [], 0
while True:
    n = tbl.count_rows()
    for i, where in enumerate([None, "tag = 'new'"]):
        q = x[-1 - (searches % 50)]
        res = tbl.query(q, k=10, where=where)
        ids = res["id"].to_numpy()
        expect_rows = 10 if where is None else min(10, n - 1000)
        assert res.num_rows >= expect_rows and len(set(ids)) == res.num_rows, (res.num_rows, n)
        x_hat = quant.decode(quant.encode(x[ids]))  # distances must match the returned rows
        assert np.allclose(((x_hat - q) ** 2).sum(1), res["_distance"].to_numpy(), rtol=1e-4, atol=1e-3)
        searches += 1
    counts.append(n)
    if n == final:
        break
print(json.dumps({"searches": searches, "counts": counts}))
"""


def test_concurrent_writer_and_searcher(tmp_path, glove, quantizer):
    """One process adds 8 batches while another searches (with and without where)."""
    pool = np.ascontiguousarray(glove[200000:203000])
    np.save(tmp_path / "pool.npy", pool)
    db = lancedb.connect(tmp_path / "db")
    ql.create_table(db, "live", [{"id": i, "vector": pool[i], "tag": "old"} for i in range(1000)], codec=quantizer)
    batches, size = 8, 200
    final = 1000 + batches * size
    searcher = subprocess.Popen([sys.executable, "-c", SEARCHER, str(tmp_path), str(final)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    writer = subprocess.run([sys.executable, "-c", WRITER, str(tmp_path), "1000", str(batches), str(size)],
                            capture_output=True, text=True, timeout=120)
    out, err = searcher.communicate(timeout=120)
    assert writer.returncode == 0, writer.stderr
    assert searcher.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["counts"] == sorted(report["counts"]) and report["counts"][-1] == final
    ids = ql.open_table(db, "live").table.to_arrow()["id"].to_numpy()
    assert sorted(ids.tolist()) == list(range(final))  # no row lost or duplicated
