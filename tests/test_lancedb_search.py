"""LanceDB adapter searches (issue 13): residual IVF against brute force, batched queries,
the LanceDB-style query builder, the per-version code cache, rows added through plain
LanceDB, and argument validation (issue 14). Data: fixed slices of GloVe-50."""
from __future__ import annotations

import lancedb
import numpy as np
import pyarrow as pa
import pytest

import qetvec_lancedb as ql
from qetvec_lancedb.columns import CODE_COLUMN, PART_COLUMN

N = 3000


@pytest.fixture(scope="module")
def vectors(glove) -> tuple[np.ndarray, np.ndarray]:
    """(rows (N, 50), queries (8, 50)) from disjoint parts of GloVe-50."""
    return np.ascontiguousarray(glove[:N]), np.ascontiguousarray(glove[100000:100008])


def rows(x: np.ndarray, start: int = 0) -> pa.Table:
    ids = np.arange(start, start + len(x))
    return pa.table({"id": ids, "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1]),
                     "tag": pa.array(np.array(["a", "b", "c"])[ids % 3])})


def decoded(tbl: ql.QETTable) -> tuple[np.ndarray, np.ndarray]:
    """(ids, reconstructions (n, d)) of every stored row, decoded independently of the scan."""
    t = tbl.table.to_arrow()
    codes = np.frombuffer(t.column(CODE_COLUMN).combine_chunks().buffers()[1], np.uint8).reshape(t.num_rows, -1)
    parts = t.column(PART_COLUMN).to_numpy() if PART_COLUMN in t.column_names else None
    return t.column("id").to_numpy(), tbl.codec.decode(codes, parts)


def brute(q: np.ndarray, x: np.ndarray, metric: str) -> np.ndarray:
    return 1.0 - x @ q if metric == "dot" else ((x - q) ** 2).sum(1)


@pytest.fixture(scope="module")
def ivf(tmp_path_factory, vectors) -> ql.QETTable:
    """Residual IVF (nlist=8) over a levels=1 QET code, trained by the adapter."""
    x, _ = vectors
    db = lancedb.connect(tmp_path_factory.mktemp("ivf") / "db")
    return ql.create_table(db, "t", rows(x), m=5, nbits=6, levels=1, nlist=8, progress=False)


@pytest.mark.parametrize("stages, metric", [(1, "l2"), (2, "l2"), (1, "dot")])
def test_residual_ivf_matches_brute_force(tmp_path, vectors, stages, metric):
    x, queries = vectors
    db = lancedb.connect(tmp_path / "db")
    tbl = ql.create_table(db, "t", rows(x), m=5, nbits=6, levels=1, stages=stages, metric=metric,
                          nlist=8, progress=False)
    assert tbl.codec.by_residual and tbl.table.schema.field(PART_COLUMN).type == pa.uint8()
    assert tbl.bytes_per_row == tbl.codec.codec.code_size + 1  # code + uint8 partition: no norm
    ids, x_hat = decoded(tbl)
    for q in queries[:4]:
        res = tbl.query(q, k=10, nprobe=8)  # every partition: the whole table
        ref = brute(q, x_hat, metric)
        np.testing.assert_allclose(res["_distance"].to_numpy(), np.sort(ref)[:10], rtol=1e-4, atol=2e-4)
        at = {i: d for i, d in zip(ids, ref)}
        np.testing.assert_allclose([at[i] for i in res["id"].to_numpy()], res["_distance"].to_numpy(),
                                   rtol=1e-4, atol=2e-4)


def test_residual_codes_beat_plain_codes_at_equal_bytes(tmp_path, vectors, glove):
    """Residual encoding spends the bits inside the partition: lower reconstruction error."""
    x, _ = vectors
    db = lancedb.connect(tmp_path / "db")
    residual = ql.create_table(db, "r", rows(x), m=5, nbits=6, levels=0, nlist=8, progress=False)
    plain = ql.create_table(db, "p", rows(x), m=5, nbits=6, levels=0, progress=False)
    err = [((decoded(t)[1] - x) ** 2).sum(1).mean() for t in (residual, plain)]
    assert err[0] < 0.9 * err[1]


def test_nprobe_limits_the_scan_to_the_nearest_partitions(ivf, vectors):
    x, queries = vectors
    for q in queries[:3]:
        res = ivf.query(q, k=10, nprobe=2)
        probed = ivf.codec.probe(q[None], 2)[0]
        assert np.isin(ivf.codec.probe(x[res["id"].to_numpy()], 1)[:, 0], probed).all()


def test_batch_equals_one_query_at_a_time(ivf, vectors):
    _, queries = vectors
    for kw in [{}, {"where": "tag != 'b'", "nprobe": 3}, {"refine": 3, "columns": ["id"]}]:
        batch = ivf.query(queries, k=6, **kw)
        assert batch.column_names[0] == "query_index" and batch["query_index"].type == pa.int32()
        for i, q in enumerate(queries):
            one = ivf.query(q, k=6, **kw)
            mine = batch.filter(pa.compute.equal(batch["query_index"], i)).drop_columns(["query_index"])
            assert mine["id"].to_pylist() == one["id"].to_pylist()
            np.testing.assert_allclose(mine["_distance"].to_numpy(), one["_distance"].to_numpy(), rtol=1e-5)
    assert "query_index" not in ivf.query(queries[0], k=3).column_names


def test_large_batches_scored_by_matrix_products_equal_lookups(ivf, vectors, monkeypatch):
    """The batch path chosen for many queries per partition (`search_decoded`) returns the
    rows and distances of the lookup path, up to float rounding."""
    from qetvec import adc
    _, queries = vectors
    lookups = ivf.query(queries, k=10, nprobe=3)
    monkeypatch.setattr(adc, "DECODE_MIN_QUERIES", 0)
    monkeypatch.setattr(adc, "DECODE_MAX_DIMS_PER_UNIT", np.inf)
    products = ivf.query(queries, k=10, nprobe=3)
    assert products["query_index"].equals(lookups["query_index"])
    assert np.mean(products["id"].to_numpy() == lookups["id"].to_numpy()) > 0.98  # near-ties aside
    np.testing.assert_allclose(products["_distance"].to_numpy(), lookups["_distance"].to_numpy(), rtol=1e-4, atol=1e-4)


def test_builder_equals_function_form(ivf, vectors):
    _, queries = vectors
    q = queries[1]
    built = (ivf.search(q).where("tag = 'a'").where("id > 100").limit(7).nprobes(3).refine_factor(2)
             .select(["id", "tag"]).distance_type("l2"))
    direct = ivf.query(q, 7, where="(tag = 'a') AND (id > 100)", nprobe=3, refine=2, columns=["id", "tag"])
    assert built.to_arrow().equals(direct)
    assert built.to_list() == direct.to_pylist()
    assert built.to_pandas().equals(direct.to_pandas())
    assert ivf.search(queries[:3]).limit(4).to_arrow().equals(ivf.query(queries[:3], 4))
    with pytest.raises(ValueError, match="encoded for metric 'l2'"):
        ivf.search(q).distance_type("cosine").to_arrow()


def test_postfilter_filters_the_top_k(ivf, vectors):
    _, queries = vectors
    q = queries[2]
    top = ivf.query(q, k=10, nprobe=4)
    post = ivf.search(q).where("tag = 'a'", prefilter=False).limit(10).nprobes(4).to_arrow()
    expect = top.filter(pa.compute.equal(top["tag"], "a"))
    assert post["id"].to_pylist() == expect["id"].to_pylist()
    pre = ivf.search(q).where("tag = 'a'").limit(10).nprobes(4).to_arrow()
    assert pre.num_rows == 10 and set(pre["tag"].to_pylist()) == {"a"}


@pytest.mark.parametrize("stages", [1, 2])
def test_cache_reuses_codes_until_the_version_changes(tmp_path, vectors, monkeypatch, stages):
    """Row terms of a cached version are reused for the rows a new version keeps (two
    stages: ||r_hat||^2 too): a cached handle answers like a fresh one after add/delete."""
    x, queries = vectors
    db = lancedb.connect(tmp_path / "db")
    tbl = ql.create_table(db, "t", rows(x[:2000]), m=5, nbits=5, levels=0, stages=stages, nlist=8,
                          progress=False)
    loads = []
    original = ql.QETTable._load_codes
    monkeypatch.setattr(ql.QETTable, "_load_codes", lambda self, *a: loads.append(self) or original(self, *a))
    first = [tbl.query(q, k=10, nprobe=8) for q in queries]
    again = [tbl.query(q, k=10, nprobe=8, where="id >= 0") for q in queries]
    assert loads == [tbl]  # one scan of the codes for 16 searches, filtered or not
    assert all(a.equals(b) for a, b in zip(first, again))

    other = ql.open_table(db, "t")  # another handle writes: this one sees it on its next search
    other.add(rows(x[2000:], 2000), progress=False)
    other.delete("id % 5 = 0")
    for q in queries:
        cached = tbl.query(q, k=10, nprobe=8)
        fresh = ql.open_table(db, "t").query(q, k=10, nprobe=8)
        assert cached.equals(fresh) and not (np.asarray(cached["id"]) % 5 == 0).any()
    assert max(np.concatenate([tbl.query(q, k=50, nprobe=8)["id"].to_numpy() for q in queries])) >= 2000
    assert loads.count(tbl) == 2


def test_cached_columns_equal_the_rows_lancedb_takes(tmp_path, vectors):
    """Small fixed-width columns come from the per-version column cache, the others from a
    LanceDB take: the same rows, also after the version changes."""
    x, queries = vectors
    db = lancedb.connect(tmp_path / "db")
    data = rows(x[:2000]).append_column("score", pa.array(np.arange(2000) % 7, pa.float32()))
    tbl = ql.create_table(db, "t", data, m=5, nbits=5, levels=0, nlist=8, progress=False)
    for step in range(2):
        for q in queries[:3]:
            full = tbl.query(q, k=10, nprobe=3)  # tag (string) and vector: taken from LanceDB
            cached = tbl.query(q, k=10, nprobe=3, columns=["score", "id"])
            assert cached.equals(full.select(["score", "id", "_distance"]))
            pinned = tbl._pinned_version
            ids = pinned.cache.rowids[::97]
            assert pinned.columns.gather(ids, ["id", "score"]).equals(tbl._take(ids, ["id", "score"], pinned.schema))
        assert set(tbl._pinned_version.columns.arrays) == {"id", "score"}
        tbl.delete("id % 3 = 0")


def test_tables_too_large_fall_back_to_decoding(tmp_path, vectors, monkeypatch):
    """Without lookup units (tables above qetvec.units.HARD_LIMIT) the cache keeps no unpacked
    rows and the scan decodes codes: same results as the unpacked scan."""
    import qetvec.units
    x, queries = vectors
    db = lancedb.connect(tmp_path / "db")
    tbl = ql.create_table(db, "t", rows(x), m=5, nbits=6, levels=1, nlist=8, progress=False)
    unpacked = tbl.query(queries, k=10, nprobe=3)
    assert tbl._pinned_version.cache.index is not None
    monkeypatch.setattr(qetvec.units, "HARD_LIMIT", 16)
    decoding = ql.open_table(db, "t")
    with pytest.warns(UserWarning, match="decoding"):
        got = decoding.query(queries, k=10, nprobe=3)
    assert decoding._pinned_version.cache.index is None
    assert got["id"].to_pylist() == unpacked["id"].to_pylist()
    np.testing.assert_allclose(got["_distance"].to_numpy(), unpacked["_distance"].to_numpy(), rtol=1e-4, atol=1e-4)


def test_rows_added_through_plain_lancedb_are_searched_exactly(tmp_path, vectors):
    x, queries = vectors
    db = lancedb.connect(tmp_path / "db")
    tbl = ql.create_table(db, "t", rows(x[:2000]), m=5, nbits=5, levels=0, nlist=8, progress=False)
    tbl.table.add(rows(x[2000:2010], 2000))  # no code columns: null codes
    assert tbl.table.to_arrow().column(CODE_COLUMN).null_count == 10
    for i in range(2000, 2010):
        res = tbl.query(x[i], k=3)
        assert res["id"][0].as_py() == i and res["_distance"][0].as_py() == pytest.approx(0, abs=1e-5)
    batch = tbl.query(queries, k=10, nprobe=8, where="id >= 2000")
    assert batch.num_rows == 80 and set(batch["id"].to_pylist()) == set(range(2000, 2010))
    tbl.table.add(pa.table({"id": [8888], "vector": pa.array([None], tbl.table.schema.field("vector").type),
                            "tag": ["z"]}))  # no code, no vector: nothing to score it by
    assert tbl.query(queries[0], k=3000, nprobe=8)["id"].to_pylist().count(8888) == 0
    assert tbl.encode_pending() == 10 and tbl.count_rows(f"{CODE_COLUMN} IS NULL") == 1

    slim = ql.create_table(db, "s", rows(x[:500]), m=5, nbits=3, levels=0, keep_vectors=False, progress=False)
    slim.table.add(pa.table({"id": [9999], "tag": ["z"]}))  # neither codes nor vectors: not searchable
    assert slim.query(queries[0], k=500)["id"].to_pylist().count(9999) == 0
    assert slim.count_rows() == 501



def test_the_next_write_encodes_rows_added_through_plain_lancedb(tmp_path, vectors):
    x, _ = vectors
    db = lancedb.connect(tmp_path / "db")
    tbl = ql.create_table(db, "t", rows(x[:2000]), m=5, nbits=5, levels=0, nlist=8, progress=False)
    tbl.table.add(rows(x[2000:2010], 2000))  # null codes
    tbl.table.add(rows(x[5:7], 3000))  # null codes, vectors equal to coded rows 5 and 6
    tbl.add(rows(x[2010:2020], 2010), progress=False)
    t = tbl.table.to_arrow().sort_by("id")
    assert t["id"].to_pylist() == list(range(2020)) + [3000, 3001]  # nothing lost or duplicated
    assert t.column(CODE_COLUMN).null_count == 0 and t["tag"].to_pylist()[-2:] == ["a", "b"]
    stored_x = np.stack(t["vector"].to_numpy(zero_copy_only=False))
    want = tbl.codec.encode(stored_x)
    codes = np.frombuffer(t.column(CODE_COLUMN).combine_chunks().buffers()[1], np.uint8).reshape(t.num_rows, -1)
    assert (codes == want["code"]).all() and (t.column(PART_COLUMN).to_numpy() == want["part"]).all()
    assert len(tbl._pin().cache.pending) == 0  # no exact scan left
    for i in range(2000, 2010):
        assert tbl.query(x[i], k=1, nprobe=8, refine=20)["id"].to_pylist() == [i]
    assert tbl.encode_pending() == 0
    infinite = x[2020:2023].copy()
    infinite[0, 0] = np.inf  # LanceDB takes it; it cannot be encoded, so it stays without code
    tbl.table.add(rows(infinite, 2020))
    assert tbl.encode_pending() == 2 and tbl.count_rows(f"{CODE_COLUMN} IS NULL") == 1

    slim = ql.create_table(db, "s", rows(x[:500]), m=5, nbits=3, levels=0, keep_vectors=False, progress=False)
    slim.table.add(pa.table({"id": [9999], "tag": ["z"]}))  # no vector to encode it from: left as it is
    assert slim.encode_pending() == 0
    slim.add(rows(x[500:510], 500), progress=False)
    assert slim.count_rows() == 511 and slim.count_rows(f"{CODE_COLUMN} IS NULL") == 1

def test_arguments_are_validated_and_nothing_is_left_behind(tmp_path, vectors):
    x, queries = vectors
    db = lancedb.connect(tmp_path / "db")
    for bad in (0, -1, 2.0, True):
        with pytest.raises((ValueError, TypeError), match="nlist"):
            ql.create_table(db, "t", rows(x[:300]), m=5, nbits=4, nlist=bad)
    assert not (tmp_path / "db" / "t.qetvec").exists()
    tbl = ql.create_table(db, "t", rows(x[:700]), m=5, nbits=4, levels=0, nlist=4, progress=False)
    for kw, name in [({"nprobe": 0}, "nprobe"), ({"refine": 0}, "refine"), ({"k": 0}, "k"),
                     ({"nprobe": 1.5}, "nprobe"), ({"columns": ["nope"]}, "cannot select")]:
        with pytest.raises((ValueError, TypeError), match=name):
            tbl.query(queries[0], **kw)
    with pytest.raises((ValueError, TypeError), match="limit"):
        tbl.search(queries[0]).limit(0).to_arrow()
    with pytest.raises(ValueError, match="NaN"):
        tbl.query(np.full(50, np.nan, np.float32))
    for column in ("_distance", "query_index", "_rowid"):
        data = rows(x[:50]).append_column(column, pa.array(np.zeros(50)))
        with pytest.raises(ValueError, match=f"{column}.*reserved"):
            ql.create_table(db, "u", data, m=5, nbits=4)
        with pytest.raises(ValueError, match="reserved"):
            tbl.add(data)
    db.create_table("plain", rows(x[:50]).append_column("_distance", pa.array(np.zeros(50))))
    with pytest.raises(ValueError, match="reserved"):
        ql.convert_table(db, "plain", m=5, nbits=4)
    for name in ("bad name!", "a/b", ""):
        with pytest.raises(ValueError):
            ql.create_table(db, name, rows(x[:50]), m=5, nbits=4)
    assert sorted(p.name for p in (tmp_path / "db").iterdir()) == ["plain.lance", "t.lance", "t.qetvec"]
    assert tbl.count_rows() == 700


def test_write_settings_are_checked_by_name(tmp_path, vectors):
    """keep_vectors="no" was truthy (vectors kept, metadata "true"), batch_size=0 a bare
    range() error, seed=-1 numpy's "expected non-negative integer": each is named now."""
    x, _ = vectors
    db = lancedb.connect(tmp_path / "db")
    for kw, error, name in [({"keep_vectors": "no"}, TypeError, "keep_vectors"),
                            ({"batch_size": 0}, ValueError, "batch_size"),
                            ({"seed": -1, "train_rows": 100}, ValueError, "seed")]:
        with pytest.raises(error, match=name):
            ql.create_table(db, "t", rows(x[:300]), m=5, nbits=2, progress=False, **kw)
    assert not (tmp_path / "db").exists() or not any((tmp_path / "db").iterdir())
    tbl = ql.create_table(db, "t", rows(x[:300]), m=5, nbits=2, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        tbl.add(rows(x[300:310], 300), batch_size=0)
    assert tbl.count_rows() == 300


def test_quantizer_files_are_named_by_content(tmp_path, vectors):
    import hashlib
    x, _ = vectors
    db = lancedb.connect(tmp_path / "db")
    a = ql.create_table(db, "t", rows(x[:700]), m=5, nbits=4, seed=1, progress=False)
    b = ql.create_table(db, "t", rows(x[:700]), m=5, nbits=4, seed=2, mode="overwrite", progress=False)
    files = sorted((tmp_path / "db" / "t.qetvec").iterdir())
    assert len(files) == 2 and a.meta.quantizer_file != b.meta.quantizer_file
    for f in files:
        assert f.name == f"quantizer-{hashlib.sha256(f.read_bytes()).hexdigest()}.qet"
    assert ql.open_table(db, "t").meta == b.meta


def test_latest_version_reads_the_manifest_names(tmp_path, vectors):
    from qetvec_lancedb.store import latest_version
    x, _ = vectors
    db = lancedb.connect(tmp_path / "db")
    assert latest_version(db.uri, "t") is None  # no table: callers ask LanceDB
    tbl = ql.create_table(db, "t", rows(x[:700]), m=5, nbits=4, levels=0, progress=False)
    tbl.add(rows(x[700:800], 700), progress=False)
    tbl.table.checkout_latest()
    assert latest_version(db.uri, "t") == tbl.table.version


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rows_are_refused_before_partitioning_and_nothing_is_written(tmp_path, vectors, bad):
    x, _ = vectors
    db = lancedb.connect(tmp_path / "db")
    tbl = ql.create_table(db, "t", rows(x[:700]), m=5, nbits=4, levels=0, nlist=4, progress=False)
    broken = x[700:710].copy()
    broken[5, 3] = bad
    with pytest.raises(ValueError, match=r"vectors of 'vector' contains NaN or inf \(first in row 5\)"):
        tbl.add(rows(broken), progress=False)
    assert tbl.count_rows() == 700
    with pytest.raises(ValueError, match=r"contains NaN or inf \(first in row 705\)"):  # not among the
        ql.create_table(db, "u", rows(np.concatenate([x[:700], broken])), m=5, nbits=4,  # 650 trained on
                        levels=0, nlist=4, train_rows=650, progress=False)
    with pytest.raises(ValueError, match="NaN or inf"):
        tbl.codec.encode(broken)
    assert not (tmp_path / "db" / "u.lance").exists()


def test_quantizer_path_taken_by_a_directory_is_a_quantizer_file_error(tmp_path, vectors):
    x, queries = vectors
    db = lancedb.connect(tmp_path / "db")
    tbl = ql.create_table(db, "t", rows(x[:700]), m=5, nbits=4, levels=0, progress=False)
    qfile = tmp_path / "db" / "t.qetvec" / tbl.meta.quantizer_file
    good = qfile.read_bytes()
    qfile.unlink()
    qfile.mkdir()
    with pytest.raises(ql.QuantizerFileError, match="cannot be read"):
        ql.open_table(db, "t")
    with pytest.raises(ql.QuantizerFileError, match="not a file"):  # the same codec saved again
        ql.create_table(db, "t", rows(x[:700]), m=5, nbits=4, levels=0, mode="overwrite", progress=False)
    assert db.open_table("t").count_rows() == 700  # the rows are untouched
    qfile.rmdir()
    qfile.write_bytes(good)
    assert ql.open_table(db, "t").query(queries[0], k=3).num_rows == 3
