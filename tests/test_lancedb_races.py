"""Races of the LanceDB adapter (issue 14), made deterministic: the other process's commit is
injected at the exact point of the window (a monkeypatched step of the adapter), not timed.

- `QETTable.add` racing an overwrite of the table with another quantizer: the rows must end up
  encoded with the quantizer of the table they are appended to.
- `convert_table` racing a delete / update / append / overwrite committed between its version
  check and its write: the delete must stay applied, the update must not leave the old row
  behind, the append must be kept, an overwrite's rows must be what is left.
- `QETTable.encode_pending` racing an overwrite with another quantizer."""
from __future__ import annotations

from datetime import timedelta

import lancedb
import numpy as np
import pyarrow as pa
import pytest

import qetvec_lancedb as ql
import qetvec_lancedb.table as qtable
from qetvec_lancedb.columns import CODE_COLUMN


def rows(x: np.ndarray, start: int = 0) -> pa.Table:
    ids = np.arange(start, start + len(x))
    return pa.table({"id": ids, "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1]),
                     "tag": pa.array(np.array(["a", "b", "c"])[ids % 3])})


def stored(tbl: ql.QETTable) -> pa.Table:
    """Every row of the latest version, sorted by id."""
    tbl.table.checkout_latest()
    return tbl.table.to_arrow().sort_by("id")


def assert_codes_match_the_quantizer(tbl: ql.QETTable) -> None:
    """Every stored code is the table's own quantizer's code of the row's vector."""
    t = stored(tbl)
    assert t.column(CODE_COLUMN).null_count == 0
    x = np.stack(t.column("vector").to_numpy(zero_copy_only=False)).astype(np.float32)
    codes = np.frombuffer(t.column(CODE_COLUMN).combine_chunks().buffers()[1], np.uint8).reshape(len(x), -1)
    assert (codes == tbl.codec.encode(x)["code"]).all()


@pytest.fixture(scope="module")
def x(glove) -> np.ndarray:
    return np.ascontiguousarray(glove[:2200])


@pytest.mark.parametrize("interval", [None, timedelta(0)], ids=["default", "strong-consistency"])
def test_add_racing_an_overwrite_encodes_with_the_new_quantizer(tmp_path, x, monkeypatch, interval):
    db = lancedb.connect(tmp_path / "db", read_consistency_interval=interval)
    tbl = ql.create_table(db, "t", rows(x[:1000]), m=5, nbits=4, levels=0, seed=1, progress=False)
    old_sha, encode = tbl.meta.sha256, qtable.encode_table

    def overwrite_then_encode(*args, **kwargs):  # another process replaces the table mid-add
        monkeypatch.setattr(qtable, "encode_table", encode)
        ql.create_table(lancedb.connect(tmp_path / "db"), "t", rows(x[1000:2000], 1000), m=5, nbits=4,
                        levels=0, seed=2, mode="overwrite", progress=False)
        return encode(*args, **kwargs)

    monkeypatch.setattr(qtable, "encode_table", overwrite_then_encode)
    tbl.add(rows(x[2000:2100], 2000), progress=False)
    assert stored(tbl)["id"].to_pylist() == list(range(1000, 2100))
    assert_codes_match_the_quantizer(ql.open_table(lancedb.connect(tmp_path / "db"), "t"))
    assert tbl.meta.sha256 != old_sha  # same code width, other codebooks: the schemas differ only in metadata
    for i in (2000, 2099):
        assert tbl.query(x[i], k=1, refine=50)["id"].to_pylist() == [i]


def test_convert_table_over_an_overwrite_of_its_commit_window_keeps_the_overwrite(tmp_path, x, monkeypatch):
    db = lancedb.connect(tmp_path / "db")
    db.create_table("plain", rows(x[:1000]))
    write = qtable._write

    def overwrite_then_write(*args, **kwargs):
        lancedb.connect(tmp_path / "db").create_table("plain", rows(x[1000:1100], 1000), mode="overwrite")
        return write(*args, **kwargs)

    monkeypatch.setattr(qtable, "_write", overwrite_then_write)
    tbl = ql.convert_table(db, "plain", m=5, nbits=4, levels=0, progress=False)
    assert stored(tbl)["id"].to_pylist() == list(range(1000, 1100))  # the latest state, encoded
    assert_codes_match_the_quantizer(tbl)


def test_convert_table_keeps_a_delete_update_and_append_of_its_commit_window(tmp_path, x, monkeypatch):
    db = lancedb.connect(tmp_path / "db")
    db.create_table("plain", rows(x[:1000]))
    write = qtable._write

    def others_commit_then_write(*args, **kwargs):  # after convert_table's version check, before its write
        other = lancedb.connect(tmp_path / "db").open_table("plain")
        other.delete("id < 10")
        other.update(where="id = 20", values={"tag": "z"})
        other.add(rows(x[1000:1005], 1000))
        return write(*args, **kwargs)

    monkeypatch.setattr(qtable, "_write", others_commit_then_write)
    tbl = ql.convert_table(db, "plain", m=5, nbits=4, levels=0, progress=False)
    t = stored(tbl)
    assert t["id"].to_pylist() == list(range(10, 1005))  # deleted rows stay deleted, none twice
    assert t.filter(pa.compute.equal(t["id"], 20))["tag"].to_pylist() == ["z"]
    assert_codes_match_the_quantizer(tbl)
    assert tbl.query(x[5], k=5, where="id < 10").num_rows == 0
    assert tbl.query(x[1003], k=1, refine=50)["id"].to_pylist() == [1003]


def test_encode_pending_racing_an_overwrite_encodes_with_the_new_quantizer(tmp_path, x, monkeypatch):
    db = lancedb.connect(tmp_path / "db", read_consistency_interval=timedelta(0))
    tbl = ql.create_table(db, "t", rows(x[:1000]), m=5, nbits=4, levels=0, seed=1, progress=False)
    tbl.table.add(rows(x[1000:1010], 1000))  # no codes: encode_pending encodes them with seed 1's codebooks
    encode = qtable.encode_table

    def overwrite_then_encode(*args, **kwargs):  # meanwhile the table is replaced, again with rows without codes
        monkeypatch.setattr(qtable, "encode_table", encode)
        other = ql.create_table(lancedb.connect(tmp_path / "db"), "t", rows(x[:1000]), m=5, nbits=4, levels=0,
                                seed=2, mode="overwrite", progress=False)
        other.table.add(rows(x[1000:1010], 1000))
        return encode(*args, **kwargs)

    monkeypatch.setattr(qtable, "encode_table", overwrite_then_encode)
    assert tbl.encode_pending() == 10
    assert stored(tbl)["id"].to_pylist() == list(range(1010))
    assert_codes_match_the_quantizer(ql.open_table(lancedb.connect(tmp_path / "db"), "t"))


# Lance's refusal of an overwrite preempted by another writer's overwrite, as it words it
PREEMPTED = ("lance error: Retryable commit conflict for version 2: This Overwrite transaction was preempted by "
             "concurrent transaction Overwrite at version 2. Please retry., "
             "/home/u/.cargo/registry/src/index.crates.io-0/lance-13.0.0/src/io/commit/conflict_resolver.rs:1552:30")


@pytest.mark.parametrize("refusals", [2, qtable.COMMIT_ATTEMPTS])
def test_overwrite_preempted_by_a_concurrent_one_is_retried_or_refused_clearly(tmp_path, x, monkeypatch, refusals):
    db = lancedb.connect(tmp_path / "db")
    before = ql.create_table(db, "t", rows(x[:700]), m=5, nbits=4, levels=0, seed=1, progress=False)
    real, refused = type(db).create_table, []

    def preempted(self, name, *args, **kwargs):  # another writer's overwrite wins the commit
        if len(refused) < refusals:
            refused.append(name)
            raise RuntimeError(PREEMPTED)
        return real(self, name, *args, **kwargs)

    monkeypatch.setattr(type(db), "create_table", preempted)
    overwrite = lambda: ql.create_table(db, "t", rows(x[700:1400], 700), m=5, nbits=4, levels=0,  # noqa: E731
                                        seed=2, mode="overwrite", progress=False)
    if refusals < qtable.COMMIT_ATTEMPTS:
        after = overwrite()
        assert after.count_rows() == 700 and stored(after)["id"].to_pylist()[0] == 700
        assert_codes_match_the_quantizer(after)
        return
    with pytest.raises(RuntimeError) as refusal:
        overwrite()
    message = str(refusal.value)
    assert message.startswith("table 't': the overwrite was refused by Lance 5 times because other writers")
    assert "Please retry.)" in message and ".rs:" not in message  # Lance's words, not its source path
    assert ql.open_table(db, "t").meta == before.meta and stored(before)["id"].to_pylist()[0] == 0
    assert [f.name for f in (tmp_path / "db" / "t.qetvec").iterdir()] == [before.meta.quantizer_file]
