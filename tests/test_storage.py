"""InvertedLists and IdMap against a plain dict-of-lists model, through random adds and
removals: contiguous lists, id -> row map, attached columns moving with the codes."""
import numpy as np
import pytest

from qetvec.storage import IdMap, InvertedLists


def check_against_model(lists: InvertedLists, model: dict[int, tuple[int, bytes]]) -> None:
    """model: id -> (list, code bytes). Every list's block holds exactly its ids and codes."""
    assert lists.ntotal == len(model) == lists.size.sum()
    for l in range(lists.nlist):
        s, n = lists.start[l], lists.size[l]
        assert n <= lists.slot[l] and s + lists.slot[l] <= lists.end <= len(lists.codes)
        got = {int(i): lists.codes[s + r].tobytes() for r, i in enumerate(lists.ids[s:s + n])}
        assert got == {i: c for i, (ll, c) in model.items() if ll == l}
    ids = np.array(sorted(model), np.int64)
    rows = lists.find(ids)
    np.testing.assert_array_equal(lists.ids[rows], ids)
    np.testing.assert_array_equal(lists.list_of(rows), [model[i][0] for i in ids])
    if hasattr(lists, "tag"):  # attached column follows its row
        np.testing.assert_array_equal(lists.tag[rows], ids * 3)


@pytest.mark.parametrize("nlist", [1, 7])
def test_random_adds_and_removes_match_a_model(nlist):
    rng = np.random.default_rng(nlist)
    lists = InvertedLists(nlist, 3)
    lists.attach("tag", (), np.int64)
    model: dict[int, tuple[int, bytes]] = {}
    next_id = 0
    for step in range(300):
        if rng.random() < 0.65 or not model:
            n = int(rng.integers(0, 40))
            ids = np.arange(next_id, next_id + n, dtype=np.int64)
            next_id += n
            which = rng.integers(0, nlist, n)
            codes = rng.integers(0, 256, (n, 3), dtype=np.uint8)
            lists.add(which, codes, ids, {"tag": ids * 3})
            model.update({int(i): (int(l), c.tobytes()) for i, l, c in zip(ids, which, codes)})
        else:
            drop = rng.choice(sorted(model), size=min(len(model), int(rng.integers(1, 30))), replace=False)
            lists.remove(lists.find(drop))
            for i in drop:
                del model[int(i)]
        check_against_model(lists, model)
    assert lists.garbage <= lists.ntotal + 40  # compaction keeps garbage bounded


def test_every_add_is_checked_before_anything_is_stored():
    """Ids qetvec would not store and rows missing an attached column's values are refused
    by `add` itself, the one way rows enter, whoever calls it; a column attaches once."""
    lists = InvertedLists(3, 2)
    lists.attach("tag", (), np.int64)
    lists.add(np.array([0, 1]), np.zeros((2, 2), np.uint8), np.array([4, 9]), {"tag": np.array([1, 2])})
    for ids, columns, match in [
        (np.array([5, 5]), {"tag": np.zeros(2)}, "distinct"),
        (np.array([-1, 3]), {"tag": np.zeros(2)}, ">= 0"),
        (np.array([3, 9]), {"tag": np.zeros(2)}, "id 9 is already stored"),
        (np.array([3, 6]), {}, "columns \\['tag'\\]"),
        (np.array([3, 6]), {"tag": np.zeros(2), "other": np.zeros(2)}, "columns"),
    ]:
        with pytest.raises(ValueError, match=match):
            lists.add(np.array([2, 2]), np.ones((2, 2), np.uint8), ids, columns)
    assert lists.ntotal == 2 and lists.size.tolist() == [1, 1, 0]
    np.testing.assert_array_equal(lists.find(np.array([4, 9, 3, 6])), [lists.find(np.array([4]))[0],
                                                                          lists.find(np.array([9]))[0], -1, -1])
    with pytest.raises(ValueError, match="already attached"):
        lists.attach("tag", (), np.int64)


def test_growth_is_amortized_and_compaction_happens():
    lists = InvertedLists(64, 2)
    moves = []
    original = lists._move
    lists._move = lambda src, dst: (moves.append(len(src)), original(src, dst))[1]
    rng = np.random.default_rng(0)
    for i in range(20000):
        lists.add(rng.integers(0, 64, 1), np.zeros((1, 2), np.uint8), np.array([i]))
    assert sum(moves) < 4 * 20000  # rows copied by relocations: O(1) per added row
    assert len(lists.codes) < 8 * 20000


def test_remove_ordered_shifts_later_rows_down():
    lists = InvertedLists(1, 1)
    lists.add(np.zeros(6, np.int64), np.arange(6, dtype=np.uint8)[:, None], np.arange(10, 16))
    lists.remove_ordered(0, lists.find(np.array([11, 14])))
    np.testing.assert_array_equal(lists.codes[:4, 0], [0, 2, 3, 5])
    np.testing.assert_array_equal(lists.find(np.array([10, 12, 13, 15, 11])), [0, 1, 2, 3, -1])


def test_idmap_survives_rehash_and_tombstones():
    m = IdMap()
    rng = np.random.default_rng(3)
    truth: dict[int, int] = {}
    for step in range(50):
        new = np.setdiff1d(rng.integers(0, 2 ** 62, 500), list(truth))
        m.insert(new, new % 1000)
        truth.update({int(i): int(i) % 1000 for i in new})
        gone = rng.choice(list(truth), 200, replace=False)
        m.delete(gone)
        for g in gone:
            del truth[int(g)]
    keys = np.array(list(truth), np.int64)
    np.testing.assert_array_equal(m.find(keys), [truth[int(k)] for k in keys])
    assert len(m) == len(truth) and (m.find(np.array([2 ** 63 - 1, 0])) == -1).all()
