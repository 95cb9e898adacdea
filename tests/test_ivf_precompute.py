"""IndexIVFQET.precompute_rows: rows' table entries and list terms kept in memory for the
scan. Checked against brute force over the decoded rows (independent of the ADC), and
against the same index without the setting, through adds, removes, merges, retraining and
files."""
import faiss
import numpy as np
import pytest

import qetvec
from qetvec import adc
from qetvec.io import deserialize, serialize


@pytest.fixture(scope="module")
def data(glove_split):
    train, test = glove_split
    return train[:6000], train[6000:9000], test[:30]


def _index(train, spec="IVF16,QET10x6_L0"):
    index = qetvec.index_factory(50, spec)
    index.train(train)
    return index


def _brute_force(index, queries, k, metric):
    """(D, I) of exact scores of queries against every stored row's decoded vector."""
    ids = index.lists.ids[index.lists.live_rows()]
    decoded = index.reconstruct_batch(ids)
    scores = ((queries[:, None] - decoded[None]) ** 2).sum(-1) if metric == "l2" else -(queries @ decoded.T)
    order = np.argsort(scores, 1, kind="stable")[:, :k]
    D = np.take_along_axis(scores, order, 1)
    return (D if metric == "l2" else -D), ids[order]


@pytest.mark.parametrize("levels,stages,metric", [(0, 1, "l2"), (1, 1, "l2"), (0, 2, "l2"), (0, 2, "ip"),
                                                  (1, 1, "ip")])
def test_precomputed_search_is_exact_for_the_decoded_rows(data, levels, stages, metric):
    train, base, queries = data
    index = qetvec.IndexIVFQET(faiss.IndexFlatL2(50), 50, 16, 10, nbits=6, levels=levels, stages=stages,
                               metric=metric)
    index.train(train)
    index.precompute_rows = True
    index.add(base)
    D, I = index.search(queries, 10, nprobe=16)  # every list: exhaustive
    D_exact, I_exact = _brute_force(index, queries, 10, metric)
    np.testing.assert_allclose(D, D_exact, rtol=1e-4, atol=1e-3)
    assert (I == I_exact).mean() > 0.98  # near-ties aside
    D1, I1 = index.search(queries[:1], 10, nprobe=16)  # the one-query path
    np.testing.assert_allclose(D1, D_exact[:1], rtol=1e-4, atol=1e-3)


def test_precomputed_equals_packed_through_changes(data):
    """Switching the setting on with rows stored, then adds, removes, merges and reset: the
    same results as the index without it, at nprobe < nlist."""
    train, base, queries = data
    plain = _index(train, "IVF16,QET10x6_L0_S2")
    empty = serialize(plain)  # trained, no rows: the donors of the merges
    fast = deserialize(empty)
    for index in (plain, fast):
        index.add(base[:1000])
    fast.precompute_rows = True  # computed for the rows already stored
    assert fast.lists.entries.dtype == np.uint16 and fast.lists.terms.dtype == np.float32
    for index in (plain, fast):
        index.add(base[1000:2000])
        index.remove_ids(np.arange(0, 2000, 3))
        donor = deserialize(empty)
        donor.add(base[2000:2500])
        index.merge_from(donor, add_id=5000)
    for nprobe in (1, 4):
        Dp, Ip = plain.search(queries, 10, nprobe=nprobe)
        Df, If = fast.search(queries, 10, nprobe=nprobe)
        np.testing.assert_allclose(Df, Dp, rtol=1e-4, atol=1e-3)
        assert (If == Ip).mean() > 0.98
    fast.reset()
    assert fast.precompute_rows and fast.search(queries, 3)[1].max() == -1
    fast.precompute_rows = False
    assert "entries" not in fast.lists.extra_columns and "terms" not in fast.lists.extra_columns


def test_terms_are_the_list_part_of_each_score(data):
    """terms[r] = ||q - c - r_hat||^2 - ||q - c||^2 + 2 <q, r_hat> for any q: computed from
    decoded rows and their list centroids, not from the tables."""
    train, base, _ = data
    index = _index(train, "IVF16,QET10x6_L1_S2")
    index.precompute_rows = True
    index.add(base[:500])
    rows = index.lists.live_rows()
    lists = index.lists.list_of(rows)
    residual = index.reconstruct_batch(index.lists.ids[rows]) - index.centroids[lists]
    expected = (residual ** 2).sum(1) + 2 * (residual * index.centroids[lists]).sum(1)
    np.testing.assert_allclose(index.lists.terms[rows], expected, rtol=1e-4, atol=1e-3)


def test_setting_survives_training_and_files(tmp_path, data):
    train, base, queries = data
    index = qetvec.index_factory(50, "IVF16,QET10x6_L0")
    with pytest.raises(RuntimeError, match="not trained"):
        index.precompute_rows = True
    with pytest.raises(TypeError, match="precompute_rows must be True or False"):
        index.precompute_rows = 1
    index.train(train)
    index.precompute_rows = True
    units = index.lists.entries.shape[1]
    index.codec = qetvec.QETQuantizer(50, 5, 6, levels=0)  # retrained into another layout
    index.train(train)
    assert index.precompute_rows and index.lists.entries.shape[1] != units
    index.add(base)
    qetvec.write_index(index, tmp_path / "ivf.qet")
    back = qetvec.read_index(tmp_path / "ivf.qet")
    assert back.precompute_rows
    np.testing.assert_array_equal(back.lists.entries[back.lists.live_rows()],
                                  index.lists.entries[index.lists.live_rows()])
    for a, b in zip(index.search(queries, 10, nprobe=4), back.search(queries, 10, nprobe=4)):
        np.testing.assert_array_equal(a, b)


def test_refused_for_codes_searched_by_decoding(data, monkeypatch):
    train, _, _ = data
    index = _index(train)
    monkeypatch.setattr(index.searcher, "units", None)  # as a codec whose tables are too large
    with pytest.raises(ValueError, match="no lookup units"):
        index.precompute_rows = True
    assert not index.precompute_rows


def test_unpacked_search_picks_products_for_many_queries_per_list(data, monkeypatch):
    """`adc.search_unpacked` scores by decoded rows above its thresholds: same results."""
    train, base, queries = data
    index = _index(train, "IVF16,QET10x6_L0")
    index.precompute_rows = True
    index.add(base)
    lookups = index.search(queries, 10, nprobe=4)
    monkeypatch.setattr(adc, "DECODE_MIN_QUERIES", 0)
    monkeypatch.setattr(adc, "DECODE_MAX_DIMS_PER_UNIT", np.inf)
    products = index.search(queries, 10, nprobe=4)
    np.testing.assert_allclose(products[0], lookups[0], rtol=1e-4, atol=1e-3)
    assert (products[1] == lookups[1]).mean() > 0.98


@pytest.mark.parametrize("spec,decoded", [("IVF16,QET10x6_L0", False),  # 5 dimensions per unit, 640 entries
                                          ("IVF16,QET25x8_L0", True),  # 2 per unit
                                          ("IVF16,QET8x9_L1", True)])  # 51200 table entries
def test_unpacked_search_decodes_rows_for_many_units_or_large_tables(data, monkeypatch, spec, decoded):
    """With many queries per list, `adc.search_unpacked` scores by decoded rows exactly when
    the code has under DECODE_MAX_DIMS_PER_UNIT dimensions per unit or tables over
    DECODE_MIN_TABLE_ENTRIES entries, as measured by benchmarks/bench_decode_rule.py."""
    train, base, queries = data
    if decoded:  # 8- and 9-bit codebooks on 6000 rows
        with pytest.warns(UserWarning, match="poorly trained"):
            index = _index(train, spec)
    else:
        index = _index(train, spec)
    index.precompute_rows = True
    index.add(base[:500])
    calls = []
    for name in ("search_decoded", "search_indexed"):
        real = getattr(adc, name)
        monkeypatch.setattr(adc, name, lambda *a, _real=real, _name=name: calls.append(_name) or _real(*a))
    monkeypatch.setattr(adc, "DECODE_MIN_QUERIES", 0)
    index.search(queries, 10, nprobe=4)
    units, entries = index.lists.entries.shape[1], index.searcher.units.table_size
    assert (50 < adc.DECODE_MAX_DIMS_PER_UNIT * units or entries > adc.DECODE_MIN_TABLE_ENTRIES) == decoded
    assert calls == ["search_decoded" if decoded else "search_indexed"]
