"""IndexRefineFlat's float vectors stay in step with the base index's rows whatever path
adds or removes them: through the wrapper, through the base itself, through a second
wrapper over the same base, by merging. Checked against brute force (faiss.knn) over the
vectors that should be stored."""
import faiss
import numpy as np
import pytest

import qetvec

D_MODEL = 16
FACTORIES = {"flat": "QET8x6_L0", "ivf": "IVF8,QET8x6_L0"}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3500, D_MODEL)).astype(np.float32)
    return x[:2500], x[2500:3400], x[3400:]  # 2,500 rows: >= 39 per codeword for 64 codewords


def trained(kind, train):
    base = qetvec.index_factory(D_MODEL, FACTORIES[kind])
    base.train(train)
    return base


def assert_exact(refine, ids, vectors, queries, k=5):
    """Re-ranking every stored row (k_factor * k >= ntotal, every list probed) is brute
    force over the vectors that should be stored under `ids`."""
    refine.k_factor = max(1, len(ids))
    kwargs = {"nprobe": refine.base.nlist} if hasattr(refine.base, "nlist") else {}
    D, I = refine.search(queries, k, **kwargs)
    D_exact, rows = faiss.knn(queries, vectors, k)
    np.testing.assert_array_equal(I, ids[rows])
    np.testing.assert_allclose(D, D_exact, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(refine.reconstruct_batch(ids), vectors)


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_two_wrappers_over_one_base_share_one_set_of_vectors(data, kind):
    """Both wrappers see the same rows; removing through one moves the vectors once."""
    train, base, queries = data
    shared = trained(kind, train)
    first, second = qetvec.IndexRefineFlat(shared), qetvec.IndexRefineFlat(shared)
    for start in range(0, 400, 20):  # small adds: lists outgrow their slots, the arena compacts
        (first if start % 40 else second).add(base[start:start + 20])
    gone = np.arange(0, 400, 7)
    assert first.remove_ids(gone) == len(gone)
    kept = np.setdiff1d(np.arange(400), gone)
    ids = np.arange(len(kept)) if kind == "flat" else kept  # flat renumbers, as IndexFlat
    for wrapper in (first, second):
        assert_exact(wrapper, ids, base[kept], queries)


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_rows_added_through_the_base_keep_their_vectors(data, kind):
    train, base, queries = data
    refine = qetvec.IndexRefineFlat(trained(kind, train))
    refine.add(base[:200])
    refine.base.add(base[200:300])  # bypassing the wrapper
    assert_exact(refine, np.arange(300), base[:300], queries)


def test_rows_added_with_ids_through_the_base_keep_their_vectors(data):
    train, base, queries = data
    refine = qetvec.IndexRefineFlat(trained("ivf", train))
    refine.add_with_ids(base[:100], np.arange(100) * 3)
    refine.base.add_with_ids(base[100:150], np.arange(1000, 1050))
    assert_exact(refine, np.concatenate([np.arange(100) * 3, np.arange(1000, 1050)]), base[:150], queries)


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_merging_rows_without_vectors_into_a_wrapped_base_is_refused(data, kind):
    """Rows from an index that keeps no float vectors cannot be re-ranked: refused, both
    indexes unchanged. The other way round (out of a wrapped base) the vectors are dropped."""
    train, base, queries = data
    refine = qetvec.IndexRefineFlat(trained(kind, train))
    refine.add(base[:100])
    plain = trained(kind, train)
    plain.add(base[100:150])
    with pytest.raises(ValueError, match="keeps no float vectors"):
        refine.base.merge_from(plain)
    assert refine.ntotal == 100 and plain.ntotal == 50
    assert_exact(refine, np.arange(100), base[:100], queries)
    plain.merge_from(refine.base, add_id=1000 if kind == "ivf" else 0)  # ivf keeps ids: shift them
    assert plain.ntotal == 150 and refine.ntotal == 0


def test_wrapping_a_filled_base_that_keeps_vectors_is_allowed(data):
    train, base, queries = data
    first = qetvec.IndexRefineFlat(trained("ivf", train))
    first.add(base[:200])
    assert_exact(qetvec.IndexRefineFlat(first.base), np.arange(200), base[:200], queries)
    filled = trained("ivf", train)
    filled.add(base[:10])
    with pytest.raises(ValueError, match="empty"):
        qetvec.IndexRefineFlat(filled)


def test_nprobe_for_a_flat_base_is_named(data):
    train, base, queries = data
    refine = qetvec.IndexRefineFlat(trained("flat", train))
    refine.add(base[:10])
    with pytest.raises(TypeError, match="nprobe: the base IndexQET is flat"):
        refine.search(queries, 3, nprobe=4)


def test_the_wrapped_index_has_faiss_s_name(data):
    """faiss.IndexRefineFlat calls the wrapped index `base_index`; code written for FAISS
    (faiss.extract_index_ivf(refine.base_index), refine.base_index.nprobe) works unchanged."""
    base = trained("ivf", data[0])
    refine = qetvec.IndexRefineFlat(base)
    assert refine.base_index is base is refine.base
    refine.base_index.nprobe = 3
    assert refine.nprobe == 3
