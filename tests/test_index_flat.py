"""IndexQET: ADC equals the distance to the decoded rows; FAISS search conventions."""
import faiss
import numpy as np
import pytest

import qetvec
from qetvec import adc


def brute_force(index, xq):
    decoded = index.reconstruct_n(0, index.ntotal)
    if index.metric_type == faiss.METRIC_L2:
        return ((xq[:, None, :] - decoded[None]) ** 2).sum(-1)
    return xq @ decoded.T


@pytest.fixture(scope="module")
def data(glove_split):
    train, test = glove_split
    return train[:10000], train[10000:13000], test[:40]  # >= 39 training rows per codeword at 8 bits


@pytest.mark.parametrize("metric", ["l2", "ip"])
@pytest.mark.parametrize("stages", [1, 2])
@pytest.mark.parametrize("levels", [0, 1, 2])
def test_adc_equals_distance_to_decoded_rows(data, levels, stages, metric):
    train, base, queries = data
    index = qetvec.IndexQET(50, 10, nbits=6, levels=levels, stages=stages, metric=metric)
    index.train(train)
    index.add(base)
    exact = brute_force(index, queries)
    np.testing.assert_allclose(index.distances(queries), exact, rtol=1e-4, atol=1e-4 * np.abs(exact).max())
    D, I = index.search(queries, 10)
    ref = -np.sort(-exact, axis=1)[:, :10] if metric == "ip" else np.sort(exact, axis=1)[:, :10]
    np.testing.assert_allclose(D, ref, rtol=1e-4, atol=1e-4)  # same top-k, ties aside
    np.testing.assert_allclose(np.take_along_axis(exact, I, axis=1), ref, rtol=1e-4, atol=1e-4)


def test_every_swap_pattern_is_scored_exactly(rng):
    """Small units force many patterns per table; deep trees and odd widths included."""
    x = rng.standard_normal((3000, 24)).astype(np.float32)
    index = qetvec.IndexQET(24, 5, nbits=3, levels=3, stages=2, metric="ip")
    index.train(x[:2000])
    index.add(x[2000:])
    units = index.searcher.units
    assert max(len(s) for s in units.sources) == 2 ** 7  # one position at depth 3: 7 bits
    np.testing.assert_allclose(index.distances(x[:5]), brute_force(index, x[:5]), rtol=1e-4, atol=1e-4)


def test_decoding_fallback_when_tables_would_be_too_large(rng, monkeypatch):
    x = rng.standard_normal((2000, 16)).astype(np.float32)
    monkeypatch.setattr(qetvec.units, "HARD_LIMIT", 16)
    index = qetvec.IndexQET(16, 4, nbits=4, levels=2)
    index.train(x[:1500])
    index.add(x[1500:])
    with pytest.warns(UserWarning, match="searching by decoding"):
        D, I = index.search(x[:3], 5)
    exact = brute_force(index, x[:3])
    np.testing.assert_allclose(D, np.sort(exact, axis=1)[:, :5], rtol=1e-5)


def test_faiss_conventions_ids_padding_and_removal(data):
    train, base, queries = data
    index = qetvec.IndexQET(50, 10, nbits=6, levels=1)
    index.train(train)
    index.add_with_ids(base[:3], np.array([30, 10, 20]))
    D, I = index.search(queries[:2], 5)
    assert D.dtype == np.float32 and I.dtype == np.int64 and D.shape == I.shape == (2, 5)
    assert set(I[0, :3]) == {10, 20, 30}
    assert (I[:, 3:] == -1).all() and np.isinf(D[:, 3:]).all()
    assert index.remove_ids([10, 99]) == 1 and index.ntotal == 2
    np.testing.assert_allclose(index.reconstruct(20), index.codec.decode(index.codec.encode(base[2:3]))[0])
    with pytest.raises(KeyError, match="10"):
        index.reconstruct(10)
    index.reset()
    assert index.ntotal == 0
    assert (index.search(queries[:1], 3)[1] == -1).all()


def test_errors_leave_the_index_usable(data):
    train, base, queries = data
    index = qetvec.IndexQET(50, 10, nbits=6, levels=1)
    with pytest.raises(RuntimeError, match="not trained"):
        index.search(queries, 1)
    with pytest.raises(RuntimeError, match="not trained"):
        index.add(base)
    index.train(train)
    index.add(base[:100])
    with pytest.raises(ValueError, match="k must be >= 1"):
        index.search(queries, 0)
    with pytest.raises(ValueError, match="expected d=50"):
        index.search(queries[:, :20], 3)
    with pytest.raises(TypeError, match="real numbers"):
        index.search(queries.astype(str), 3)
    with pytest.raises(ValueError, match=r"ids must have shape \(100,\)"):
        index.add_with_ids(base[:100], np.arange(99))
    with pytest.raises(ValueError, match="metric must be"):
        qetvec.IndexQET(50, 10, metric="cosine")
    assert index.ntotal == 100
    assert index.search(queries, 3)[1].min() >= 0


def test_write_read_gives_identical_search(tmp_path, data):
    train, base, queries = data
    index = qetvec.IndexQET(50, 10, nbits=6, levels=2, stages=2)
    index.train(train)
    index.add(base)
    qetvec.write_index(index, tmp_path / "flat.qet")
    back = qetvec.read_index(tmp_path / "flat.qet")
    for a, b in zip(index.search(queries, 10), back.search(queries, 10)):
        np.testing.assert_array_equal(a, b)


def test_train_refused_on_a_populated_index_and_failed_train_changes_nothing(data):
    train, base, queries = data
    index = qetvec.IndexQET(50, 10, nbits=[4, 8], levels=1, stages=2)
    with pytest.warns(UserWarning, match="100 rows for 16 codewords"), \
            pytest.raises(ValueError, match="256 codewords"):  # stage 0 trains, stage 1 cannot
        index.train(train[:100])
    assert not index.is_trained and all(s.codebooks_ is None for s in index.codec.stages)
    index.train(train)
    before = qetvec.io.serialize(index)
    with pytest.warns(UserWarning, match="100 rows for 16 codewords"), pytest.raises(ValueError, match="256 codewords"):
        index.train(train[:100])
    assert qetvec.io.serialize(index) == before
    index.add(base[:10])
    with pytest.raises(RuntimeError, match="cannot train an index holding 10 rows"):
        index.train(train)
    assert qetvec.io.serialize(index) != before and index.ntotal == 10


def test_many_small_adds_equal_one_large_add_and_removal_equals_brute_force(data):
    train, base, queries = data
    one = qetvec.IndexQET(50, 10, nbits=6, levels=1)
    one.train(train)
    many = qetvec.io.deserialize(qetvec.io.serialize(one))
    one.add(base[:2000])
    for i in range(0, 2000, 10):
        many.add(base[i:i + 10])
    for a, b in zip(one.search(queries, 10), many.search(queries, 10)):
        np.testing.assert_array_equal(a, b)
    gone = np.arange(0, 2000, 3)
    assert many.remove_ids(gone) == len(gone)
    kept = np.setdiff1d(np.arange(2000), gone)  # FAISS flat: survivors renumbered in order
    exact = ((queries[:, None] - one.reconstruct_batch(kept)[None]) ** 2).sum(-1)
    D, I = many.search(queries, 10)
    np.testing.assert_allclose(D, np.sort(exact, 1)[:, :10], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.take_along_axis(exact, I, 1), D, rtol=1e-4, atol=1e-4)


def test_reconstruct_refuses_bad_keys(data):
    train, base, _ = data
    index = qetvec.IndexQET(50, 10, nbits=6, levels=0)
    index.train(train)
    index.add(base[:5])
    for bad, error in ((1.7, TypeError), (True, TypeError), (-1, ValueError), (5, KeyError)):
        with pytest.raises(error):
            index.reconstruct(bad)
