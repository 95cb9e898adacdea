"""IndexIVFQET, IndexRefineFlat and index_factory: drop-in for FAISS pipelines."""
import faiss
import numpy as np
import pytest
from faiss.contrib.evaluation import knn_intersection_measure

import qetvec


@pytest.fixture(scope="module")
def data(glove_split):
    train, test = glove_split
    return train[:10000], train, test[:200]  # >= 39 training rows per codeword at 8 bits


def faiss_pipeline(index, train, base, queries, k=10):
    """Written only against FAISS's index API: train, add, nprobe, search, ntotal."""
    index.train(train)
    index.add(base)
    assert index.ntotal == len(base)
    index.nprobe = 8
    D, I = index.search(queries, k)
    _, truth = faiss.knn(queries, base, k)
    return knn_intersection_measure(I, truth) / 1.0


def test_drop_in_for_a_faiss_pipeline(data):
    train, base, queries = data
    recall_faiss = faiss_pipeline(faiss.index_factory(50, "IVF64,PQ10"), train, base, queries)
    recall_qet = faiss_pipeline(qetvec.index_factory(50, "IVF64,QET10x8_L0"), train, base, queries)
    assert recall_qet >= recall_faiss - 0.03
    assert faiss_pipeline(qetvec.index_factory(50, "IVF64_HNSW32,QET8x8_L1"), train, base, queries) > 0.3


@pytest.mark.parametrize("metric", ["l2", "ip"])
@pytest.mark.parametrize("levels,stages", [(0, 1), (1, 1), (2, 2)])
def test_ivf_distances_are_exact_for_the_decoded_rows(data, metric, levels, stages):
    train, base, queries = data
    index = qetvec.IndexIVFQET(faiss.IndexFlatL2(50), 50, 16, 10, nbits=6, levels=levels,
                               stages=stages, metric=metric)
    index.train(train)
    index.add(base[:3000])
    D, I = index.search(queries[:20], 10, nprobe=16)  # every list: exhaustive
    decoded = index.reconstruct_n(0, index.ntotal)  # ids 0..ntotal-1, FAISS's meaning
    dec = decoded[I]
    exact = ((dec - queries[:20, None]) ** 2).sum(-1) if metric == "l2" else (dec * queries[:20, None]).sum(-1)
    np.testing.assert_allclose(D, exact, rtol=1e-4, atol=1e-3)
    all_exact = ((decoded[None] - queries[:20, None]) ** 2).sum(-1) if metric == "l2" else decoded @ queries[:20].T
    best = np.sort(all_exact, 1)[:, :10] if metric == "l2" else -np.sort(-all_exact.T, 1)[:, :10]
    np.testing.assert_allclose(D, best, rtol=1e-4, atol=1e-3)


def test_nprobe_per_call_and_params_object(data):
    train, base, queries = data
    index = qetvec.index_factory(50, "IVF32,QET10x8_L1")
    index.train(train)
    index.add(base[:5000])
    D1, I1 = index.search(queries, 5, nprobe=4)
    D2, I2 = index.search(queries, 5, params=faiss.SearchParametersIVF(nprobe=4))
    np.testing.assert_array_equal(I1, I2)
    assert index.nprobe == 1
    with pytest.raises(ValueError, match="nprobe must be >= 1"):
        index.search(queries, 5, nprobe=0)


def test_refine_raises_recall_and_reports_its_memory(data):
    train, base, queries = data
    index = qetvec.index_factory(50, "IVF64,QET5x8_L1,RFlat")
    assert isinstance(index, qetvec.IndexRefineFlat)
    _, truth = faiss.knn(queries, base, 10)
    index.train(train)
    index.add(base)
    index.nprobe = 16
    plain = knn_intersection_measure(index.base.search(queries, 10)[1], truth)
    index.k_factor = 8
    D, I = index.search(queries, 10)
    assert knn_intersection_measure(I, truth) > plain + 0.1
    assert index.code_size == index.base.code_size + 200
    exact = ((base[I] - queries[:, None]) ** 2).sum(-1)
    np.testing.assert_allclose(D, exact, rtol=1e-4)


def test_save_load_identical_and_corruption_refused(tmp_path, data):
    train, base, queries = data
    index = qetvec.index_factory(50, "IVF32_HNSW16,QET8x8_L1_S2,RFlat")
    index.train(train)
    index.add(base[:4000])
    index.nprobe = 6
    qetvec.write_index(index, tmp_path / "ivf.qet")
    back = qetvec.read_index(tmp_path / "ivf.qet")
    back.k_factor = index.k_factor = 3
    for a, b in zip(index.search(queries, 10), back.search(queries, 10)):
        np.testing.assert_array_equal(a, b)
    raw = bytearray((tmp_path / "ivf.qet").read_bytes())
    raw[100] ^= 1
    (tmp_path / "bad.qet").write_bytes(bytes(raw))
    with pytest.raises(qetvec.CorruptIndexError, match="checksum"):
        qetvec.read_index(tmp_path / "bad.qet")


def test_add_with_ids_remove_and_reset(data):
    train, base, queries = data
    index = qetvec.index_factory(50, "IVF16,QET10x6")
    index.train(train)
    index.add_with_ids(base[:100], np.arange(1000, 1100))
    assert index.search(base[:1], 1)[1][0, 0] == 1000
    assert index.remove_ids(np.arange(1000, 1050)) == 50 and index.ntotal == 50
    assert index.list_sizes().sum() == 50
    assert index.search(queries, 60, nprobe=16)[1][:, 50:].max() == -1
    np.testing.assert_allclose(index.reconstruct(1060), index.reconstruct_batch([1055, 1060])[1])
    index.reset()
    assert index.ntotal == 0


@pytest.mark.parametrize("bad", ["PQ10", "IVF,QET10x8", "IVF16,QET10", "QET10x8,RFlat,Flat", "IVF16_Nope7,QET4x8"])
def test_factory_refuses_bad_strings(bad):
    with pytest.raises(ValueError, match="cannot"):
        qetvec.index_factory(50, bad)


def test_factory_grammar():
    index = qetvec.index_factory(64, "QET16x6_L2_S2_C8", "ip")
    assert isinstance(index, qetvec.IndexQET)
    assert index.codec.levels == [2, 2] and index.codec.nbits == [[6] * 16, [6] * 16]
    assert index.codec.codebook_bits == 8 and index.metric_type == faiss.METRIC_INNER_PRODUCT


def test_ivf_train_refused_when_populated_and_atomic_on_failure(data):
    train, base, _ = data
    coarse = faiss.IndexFlatL2(50)
    index = qetvec.IndexIVFQET(coarse, 50, 16, 10, nbits=[4, 8], levels=1, stages=2)
    with pytest.warns(UserWarning, match="200 rows for 16 codewords"), pytest.raises(ValueError, match="256 codewords"):
        index.train(train[:200])
    assert coarse.ntotal == 0 and not index.is_trained  # the coarse quantizer was not filled
    index.train(train)
    assert index.quantizer is coarse and coarse.ntotal == 16
    index.add(base[:10])
    with pytest.raises(RuntimeError, match="cannot train an index holding 10 rows"):
        index.train(train)
    with pytest.warns(DeprecationWarning, match="quantizer"):
        assert index.coarse is coarse


def test_ivf_many_small_adds_equal_one_large_add_then_remove(data):
    train, base, queries = data
    one = qetvec.index_factory(50, "IVF16,QET10x6_L1")
    one.train(train)
    many = qetvec.io.deserialize(qetvec.io.serialize(one))
    one.add(base[:3000])
    for i in range(0, 3000, 10):
        many.add(base[i:i + 10])
    for a, b in zip(one.search(queries, 10, nprobe=4), many.search(queries, 10, nprobe=4)):
        np.testing.assert_allclose(a, b, rtol=1e-6)  # same rows, maybe other arena order on ties
    gone = np.arange(0, 3000, 2)
    assert many.remove_ids(gone) == 1500 and many.ntotal == 1500
    kept = np.arange(1, 3000, 2)
    exact = ((queries[:, None] - one.reconstruct_batch(kept)[None]) ** 2).sum(-1)
    D, I = many.search(queries, 10, nprobe=16)
    np.testing.assert_allclose(D, np.sort(exact, 1)[:, :10], rtol=1e-4, atol=1e-3)
    assert np.isin(I, kept).all()


def test_refine_keeps_vectors_beside_codes_through_removes(data):
    train, base, queries = data
    index = qetvec.index_factory(50, "IVF16,QET10x6_L1,RFlat")
    index.train(train)
    index.k_factor = 400  # k * 400 >= ntotal: re-ranks every row, so the result is exact
    assert (index.search(queries[:3], 4)[1] == -1).all()  # empty: padded, no IndexError
    index.add(base[:2000])
    index.remove_ids(np.arange(0, 2000, 4))
    index.add_with_ids(base[2000:2100], np.arange(5000, 5100))
    ids = np.concatenate([np.setdiff1d(np.arange(2000), np.arange(0, 2000, 4)), np.arange(5000, 5100)])
    vectors = np.concatenate([base[:2000], base[2000:2100]])[np.where(ids >= 5000, ids - 3000, ids)]
    np.testing.assert_array_equal(index.reconstruct_batch(ids), vectors)
    D, I = index.search(queries, 5, nprobe=16)
    exact = ((queries[:, None] - vectors[None]) ** 2).sum(-1)
    np.testing.assert_allclose(D, np.sort(exact, 1)[:, :5], rtol=1e-4)
    np.testing.assert_array_equal(I, ids[np.argsort(exact, 1)[:, :5]])


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_refine_over_every_row_is_exact_search(data, metric):
    """Re-ranking every stored row by exact distance is brute force (faiss.knn)."""
    train, base, queries = data
    index = qetvec.index_factory(50, "IVF8,QET10x6_L1,RFlat", metric=metric)
    index.train(train)
    index.add(base[:600])
    index.k_factor, index.nprobe = 600 / 10, 8
    D, I = index.search(queries[:20], 10)
    faiss_metric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    D_exact, I_exact = faiss.knn(queries[:20], base[:600], 10, metric=faiss_metric)
    np.testing.assert_array_equal(I, I_exact)
    np.testing.assert_allclose(D, D_exact, rtol=1e-4, atol=1e-3)
