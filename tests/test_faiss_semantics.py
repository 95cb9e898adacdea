"""The same calls on a FAISS index and on a qetvec index give the same ids and distances.

The FAISS side is a genuine IndexPQ / IndexIDMap2(IndexPQ) / IndexIVFPQ built by
`qetvec_faiss.export.to_faiss` from the *empty* trained qetvec index (QET with levels 0 is
PQ), so both hold the same codebooks and centroids; from then on each side only sees the
same public calls, and FAISS decides what the right ids are."""
import copy

import faiss
import numpy as np
import pytest

import qetvec
from qetvec.io import deserialize, serialize
from qetvec_faiss.export import to_faiss

D_MODEL = 16


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    centers = rng.standard_normal((40, D_MODEL)) * 3
    x = (centers[rng.integers(0, 40, 6000)] + rng.standard_normal((6000, D_MODEL))).astype(np.float32)
    return x[:4000], x[4000:5800], x[5800:]


@pytest.fixture(scope="module")
def trained_flat(data):
    index = qetvec.IndexQET(D_MODEL, 8, nbits=6, levels=0)
    index.train(data[0])
    return serialize(index)


@pytest.fixture(scope="module")
def trained_ivf(data):
    index = qetvec.IndexIVFQET(faiss.IndexFlatL2(D_MODEL), D_MODEL, 12, 8, nbits=6, levels=0)
    index.train(data[0])
    return serialize(index)


def assert_same(ours, theirs, queries, k=10, **params):
    """Same ntotal, same (D, I) up to float rounding; ids may differ only inside ties."""
    assert ours.ntotal == theirs.ntotal
    D1, I1 = ours.search(queries, k, **params)
    if "nprobe" in params:
        faiss.extract_index_ivf(theirs).nprobe = params["nprobe"]
    D2, I2 = theirs.search(queries, k)
    np.testing.assert_allclose(D1, D2, rtol=1e-5, atol=1e-4)
    tied = np.isclose(D1[:, :, None], D2[:, None, :], rtol=1e-5, atol=1e-4).any(-1)
    assert ((I1 == I2) | tied).all()
    assert (I1 == I2).mean() > 0.95


def test_flat_sequential_ids_match_indexpq(data, trained_flat):
    _, base, queries = data
    ours = deserialize(trained_flat)
    theirs = to_faiss(ours)
    assert isinstance(theirs, faiss.IndexPQ)
    for index in (ours, theirs):
        index.add(base[:300])
    assert_same(ours, theirs, queries)
    calls = [np.array([3, 50, 299, 1000]), faiss.IDSelectorRange(10, 20),
             faiss.IDSelectorBatch(np.array([0, 5, 7], dtype=np.int64)),
             faiss.IDSelectorNot(faiss.IDSelectorRange(0, 250))]
    for sel in calls:  # flat: later rows shift down and are renumbered
        assert ours.remove_ids(sel) == theirs.remove_ids(sel)
        assert_same(ours, theirs, queries)
        np.testing.assert_allclose(ours.reconstruct_n(0, ours.ntotal), theirs.reconstruct_n(0, theirs.ntotal),
                                   atol=1e-6)
    for index in (ours, theirs):  # new ids continue from ntotal
        index.add(base[300:400])
    assert_same(ours, theirs, queries, k=7)
    D, I = ours.search(queries, np.int64(7))  # numpy integer k (FAISS's SWIG would refuse it)
    np.testing.assert_array_equal(I, theirs.search(queries, 7)[1])


def test_flat_merge_from_matches_faiss(data, trained_flat):
    _, base, queries = data
    ours, other = deserialize(trained_flat), deserialize(trained_flat)
    ours.add(base[:100])
    other.add(base[100:250])
    theirs, their_other = to_faiss(ours), to_faiss(other)
    ours.merge_from(other)
    theirs.merge_from(their_other)
    assert other.ntotal == their_other.ntotal == 0
    assert_same(ours, theirs, queries)
    with pytest.raises(ValueError, match="add_id must be 0"):  # FAISS: cannot set ids in FlatCodes
        ours.merge_from(deserialize(trained_flat), add_id=5)


def test_flat_with_user_ids_is_indexidmap2(data, trained_flat):
    _, base, queries = data
    ours = deserialize(trained_flat)
    theirs = faiss.IndexIDMap2(to_faiss(ours))
    ids = np.arange(200, dtype=np.int64) * 10 + 5
    for index in (ours, theirs):
        index.add_with_ids(base[:200], ids)
    assert ours.user_ids
    for sel in (ids[::3], faiss.IDSelectorRange(0, 500)):  # ids kept, never renumbered
        assert ours.remove_ids(sel) == theirs.remove_ids(sel)
        assert_same(ours, theirs, queries)
    np.testing.assert_allclose(ours.reconstruct(1005), theirs.reconstruct(1005), atol=1e-6)
    with pytest.raises(RuntimeError, match="add_with_ids"):  # IndexIDMap2.add refuses too
        ours.add(base[:1])
    with pytest.raises(RuntimeError):
        theirs.add(base[:1])


def test_flat_add_with_ids_after_add_is_refused_as_faiss_indexflat(data, trained_flat):
    _, base, _ = data
    ours = deserialize(trained_flat)
    ours.add(base[:10])
    with pytest.raises(RuntimeError, match="sequential ids"):
        ours.add_with_ids(base[:2], np.array([100, 101]))
    with pytest.raises(RuntimeError, match="not implemented"):
        faiss.IndexFlatL2(D_MODEL).add_with_ids(base[:2], np.array([100, 101]))
    assert ours.ntotal == 10


def test_ivf_ids_match_indexivfpq(data, trained_ivf):
    _, base, queries = data
    ours = deserialize(trained_ivf)
    theirs = to_faiss(ours)
    assert isinstance(theirs, faiss.IndexIVFPQ)
    for index in (ours, theirs):
        index.add(base[:400])  # ids 0..399
        index.add_with_ids(base[400:700], np.arange(10_000, 10_300))
    for nprobe in (1, 4, 12, 50):  # 50 > nlist: clamped as FAISS does
        assert_same(ours, theirs, queries, nprobe=nprobe)
    sels = [np.array([1, 2, 10_005, 5_000]), faiss.IDSelectorRange(100, 150),
            faiss.IDSelectorArray(np.array([10_100, 10_101, 3], dtype=np.int64)),
            faiss.IDSelectorBatch(np.arange(10_200, 10_260, dtype=np.int64))]
    for sel in sels:  # IVF keeps user ids
        assert ours.remove_ids(sel) == theirs.remove_ids(sel)
        assert_same(ours, theirs, queries, nprobe=12)
    D, I = ours.search(queries, 5, params=faiss.SearchParametersIVF(nprobe=100))
    np.testing.assert_array_equal(I, ours.search(queries, 5, nprobe=12)[1])


def test_ivf_merge_from_with_add_id(data, trained_ivf):
    _, base, queries = data
    ours, other = deserialize(trained_ivf), deserialize(trained_ivf)
    ours.add(base[:300])
    other.add(base[300:600])
    theirs, their_other = to_faiss(ours), to_faiss(other)
    ours.merge_from(other, 1000)
    theirs.merge_from(their_other, 1000)
    assert other.ntotal == their_other.ntotal == 0
    assert_same(ours, theirs, queries, nprobe=12)


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_empty_query_batch_gives_empty_results(data, trained_flat, trained_ivf, kind):
    ours = deserialize(trained_flat if kind == "flat" else trained_ivf)
    ours.add(data[1][:50])
    theirs = to_faiss(ours)
    empty = np.zeros((0, D_MODEL), np.float32)
    for D, I in (ours.search(empty, 4), theirs.search(empty, 4)):
        assert D.shape == I.shape == (0, 4) and D.dtype == np.float32 and I.dtype == np.int64


@pytest.mark.parametrize("bad, error, match", [
    (np.array([1.7, 2.0]), TypeError, "integers"),
    (np.array([-1, 2]), ValueError, ">= 0"),
    (np.array([5, 5]), ValueError, "distinct"),
    (np.array([2 ** 63, 1], dtype=np.uint64), ValueError, "2\\*\\*63"),
    (np.array([True, False]), TypeError, "integers"),
])
def test_bad_ids_are_refused_with_state_intact(data, trained_ivf, bad, error, match):
    ours = deserialize(trained_ivf)
    ours.add(data[1][:20])
    with pytest.raises(error, match=match):
        ours.add_with_ids(data[1][:2], bad)
    assert ours.ntotal == 20


def test_ids_never_stored_twice(data, trained_ivf):
    """FAISS would store a second row under id 5 / under ntotal after a removal; we refuse."""
    _, base, _ = data
    ours = deserialize(trained_ivf)
    ours.add(base[:10])
    with pytest.raises(ValueError, match="id 5 is already stored"):
        ours.add_with_ids(base[10:12], np.array([100, 5]))
    ours.remove_ids(np.array([0]))
    with pytest.raises(ValueError, match="id 9 is already stored"):
        ours.add(base[10:11])  # would get id ntotal = 9
    assert ours.ntotal == 9 and (ours.lists.find(np.array([100])) == -1).all()


def test_remove_ids_refuses_floats_and_accepts_lists(data, trained_flat):
    ours = deserialize(trained_flat)
    ours.add(data[1][:10])
    with pytest.raises(TypeError, match="integers"):
        ours.remove_ids([1.7])
    assert ours.ntotal == 10
    assert ours.remove_ids([1, 2]) == 2 and ours.remove_ids([]) == 0 and ours.ntotal == 8


@pytest.mark.parametrize("kind", ["flat", "idmap", "ivf"])
def test_export_persists_through_faiss_write_index_and_comes_back(data, trained_flat, trained_ivf,
                                                                 kind, tmp_path):
    """Levels 0 exports to a genuine FAISS index: faiss.write_index / read_index work, the
    read index answers as the qetvec one, and from_faiss brings it back unchanged."""
    from qetvec_faiss.export import from_faiss
    _, base, queries = data
    ours = deserialize(trained_ivf if kind == "ivf" else trained_flat)
    if kind == "idmap":
        ours.add_with_ids(base[:500], np.arange(500) * 2 + 1)
    else:
        ours.add(base[:500])
    ours.remove_ids(np.arange(0, 100, 7) * (2 if kind == "idmap" else 1) + (kind == "idmap"))
    faiss.write_index(to_faiss(ours), str(tmp_path / "index.faiss"))
    theirs = faiss.read_index(str(tmp_path / "index.faiss"))
    assert_same(ours, theirs, queries, **({"nprobe": 5} if kind == "ivf" else {}))
    back = from_faiss(theirs)
    params = {"nprobe": 5} if kind == "ivf" else {}
    for a, b in zip(ours.search(queries, 10, **params), back.search(queries, 10, **params)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_from_faiss_reads_an_index_trained_by_faiss(data):
    from qetvec_faiss.export import from_faiss
    train, base, queries = data
    theirs = faiss.index_factory(D_MODEL, "IVF12,PQ8x6")
    theirs.train(train)
    theirs.add(base)
    ours = from_faiss(theirs)
    assert_same(ours, theirs, queries, nprobe=4)


def test_pickle_uses_the_checked_format(data, trained_ivf):
    import pickle
    ours = deserialize(trained_ivf)
    ours.add(data[1][:300])
    back = pickle.loads(pickle.dumps(ours))
    for a, b in zip(ours.search(data[2], 5, nprobe=3), back.search(data[2], 5, nprobe=3)):
        np.testing.assert_array_equal(a, b)


def test_refine_merge_from_moves_vectors(data, trained_flat):
    _, base, queries = data
    left = qetvec.IndexRefineFlat(deserialize(trained_flat), k_factor=100)
    right = qetvec.IndexRefineFlat(deserialize(trained_flat), k_factor=100)
    left.add(base[:200])
    right.add(base[200:300])
    left.merge_from(right)
    assert right.ntotal == 0 and left.ntotal == 300
    np.testing.assert_array_equal(left.reconstruct_n(0, 300), base[:300])
    _, I = left.search(queries, 5)
    _, truth = faiss.knn(queries, base[:300], 5)
    np.testing.assert_array_equal(I, truth)


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_fast_scan_export_scores_qetvec_codes_with_faiss_kernels(data, kind, tmp_path):
    """4-bit levels-0 codes searched by FAISS's fast-scan kernels: every hit is a stored id,
    scored as the exact distance to its qetvec reconstruction up to the uint8 table rounding,
    and the top-10 is mostly qetvec's exact ADC top-10; faiss.write_index round-trips it."""
    import gc
    from qetvec_faiss.export import to_faiss_fast_scan
    train, base, queries = data
    ours = (qetvec.IndexIVFQET(faiss.IndexFlatL2(D_MODEL), D_MODEL, 12, 8, nbits=4, levels=0)
            if kind == "ivf" else qetvec.IndexQET(D_MODEL, 8, nbits=4, levels=0))
    ours.train(train)
    ours.add(base[:1000])
    ours.remove_ids(np.arange(0, 1000, 9))  # flat renumbers, IVF keeps ids
    params = {"nprobe": 12} if kind == "ivf" else {}
    if kind == "ivf":
        ours.nprobe = 12
    fast = to_faiss_fast_scan(ours)
    gc.collect()  # the export's intermediate FAISS objects are gone: `fast` owns what it uses
    D, I = fast.search(queries, 10)
    stored = np.setdiff1d(np.arange(1000), np.arange(0, 1000, 9)) if kind == "ivf" else np.arange(ours.ntotal)
    assert np.isin(I, stored).all()
    exact = ((queries[:, None] - ours.reconstruct_batch(I.ravel()).reshape(*I.shape, -1)) ** 2).sum(-1)
    assert (np.abs(D - exact) <= table_rounding_bound(ours, queries)[:, None]).all()
    _, I_adc = ours.search(queries, 10, **params)
    assert np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(I, I_adc)]) > 0.8
    faiss.write_index(fast, str(tmp_path / "fast.faiss"))
    D_again, I_again = faiss.read_index(str(tmp_path / "fast.faiss")).search(queries, 10)
    np.testing.assert_array_equal(I_again, I)
    np.testing.assert_allclose(D_again, D, rtol=1e-5)


def table_rounding_bound(index, queries):
    """Per query (nq,), the most that fast-scan's uint8 tables can move a distance: FAISS
    scales all M sub-tables by one step, the widest table's range / 255, and sums M lookups
    each rounded by at most one step (the IVF centroid term shifts tables, not ranges)."""
    from qetvec_faiss.export import product_quantizer
    pq = product_quantizer(index.codec)
    books = faiss.vector_to_array(pq.centroids).reshape(pq.M, pq.ksub, pq.dsub)
    if isinstance(index, qetvec.IndexIVFQET):  # residual tables: widest over the probed centroids
        residual = queries[:, None] - index.centroids[None]
    else:
        residual = queries[:, None]
    parts = residual.reshape(*residual.shape[:2], pq.M, 1, pq.dsub)
    tables = ((parts - books[None, None]) ** 2).sum(-1)  # (nq, centroids, M, ksub)
    step = (tables.max(-1) - tables.min(-1)).max(-1) / 255
    return pq.M * step.max(-1)


def test_fast_scan_export_refuses_codes_it_cannot_hold(data, trained_flat):
    from qetvec_faiss.export import to_faiss_fast_scan
    with pytest.raises(ValueError, match="4-bit"):
        to_faiss_fast_scan(deserialize(trained_flat))  # 6-bit codes
    user_ids = qetvec.IndexQET(D_MODEL, 8, nbits=4, levels=0)
    user_ids.train(data[0])
    user_ids.add_with_ids(data[1][:10], np.arange(10) * 2)
    with pytest.raises(ValueError, match="user ids"):
        to_faiss_fast_scan(user_ids)
    levels1 = qetvec.IndexQET(D_MODEL, 8, nbits=4, levels=1)
    levels1.train(data[0])
    with pytest.raises(ValueError, match="not plain product quantization"):
        to_faiss_fast_scan(levels1)


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_merge_from_refuses_add_id_that_would_wrap_ids(data, trained_flat, trained_ivf, kind):
    """ids + add_id past 2**63 - 1 would wrap negative: refused, both indexes unchanged."""
    _, base, _ = data
    ours, other = (deserialize(trained_flat if kind == "flat" else trained_ivf) for _ in range(2))
    other.add_with_ids(base[:10], np.arange(10) + 5)
    with pytest.raises(ValueError, match=r"add_id=.* past 2\*\*63 - 1"):
        ours.merge_from(other, add_id=2 ** 63 - 2)
    assert ours.ntotal == 0 and other.ntotal == 10
    ours.merge_from(other, add_id=2 ** 63 - 15)  # the largest id lands on 2**63 - 1
    assert ours.reconstruct_batch([2 ** 63 - 1]).shape == (1, D_MODEL) and other.ntotal == 0


def _idmap_pq(data, ids):
    pq = faiss.IndexPQ(D_MODEL, 8, 6)
    pq.train(data[0])
    theirs = faiss.IndexIDMap2(pq)
    theirs.add_with_ids(data[1][:len(ids)], np.array(ids, np.int64))
    return theirs, pq


def _ivfpq(data, ids):
    theirs = faiss.IndexIVFPQ(faiss.IndexFlatL2(D_MODEL), D_MODEL, 4, 8, 6)
    theirs.train(data[0])
    theirs.add_with_ids(data[1][:len(ids)], np.array(ids, np.int64))
    return theirs


@pytest.mark.parametrize("make, match", [
    (lambda data: _idmap_pq(data, [5, 5, 7])[0], "distinct"),
    (lambda data: _idmap_pq(data, [-1, -5, 7])[0], ">= 0"),
    (lambda data: _ivfpq(data, [9, 9, -1, 3]), "(distinct|>= 0)"),
    (lambda data: _ivfpq(data, [9, 4, 9, 2, 9]), "distinct"),
])
def test_from_faiss_refuses_ids_qetvec_would_not_store(data, make, match):
    """FAISS stores duplicate and negative ids; qetvec's ids are distinct and >= 0 on every
    path that stores them, so from_faiss refuses them at once (not read_index, later)."""
    from qetvec_faiss.export import from_faiss
    with pytest.raises(ValueError, match=f"from_faiss.*ids.*{match}"):
        from_faiss(make(data))


@pytest.mark.parametrize("kind", ["pq", "idmap", "ivfpq"])
def test_from_faiss_of_a_trained_empty_index_is_an_empty_index(data, kind):
    from qetvec_faiss.export import from_faiss
    theirs = {"pq": lambda: _idmap_pq(data, [])[1], "idmap": lambda: _idmap_pq(data, [])[0],
              "ivfpq": lambda: _ivfpq(data, [])}[kind]()
    ours = from_faiss(theirs)
    assert ours.ntotal == 0 and ours.is_trained
    D, I = ours.search(data[2][:3], 4)
    np.testing.assert_array_equal(I, theirs.search(data[2][:3], 4)[1])
    assert (I == -1).all()


@pytest.mark.parametrize("make", [
    lambda: faiss.IndexPQ(D_MODEL, 8, 6),
    lambda: faiss.IndexIDMap2(faiss.IndexPQ(D_MODEL, 8, 6)),
    lambda: faiss.IndexIVFPQ(faiss.IndexFlatL2(D_MODEL), D_MODEL, 4, 8, 6),
])
def test_from_faiss_of_an_untrained_index_says_so(make):
    from qetvec_faiss.export import from_faiss
    theirs = make()
    with pytest.raises(ValueError, match="from_faiss: the FAISS .* is not trained"):
        from_faiss(theirs)


def test_from_faiss_refuses_what_it_would_silently_drop(data):
    """IndexIVFPQR is an IndexIVFPQ plus re-ranking codes: taking only its PQ codes would
    answer differently from FAISS, so it is refused, as are non-FAISS objects."""
    from qetvec_faiss.export import from_faiss
    theirs = faiss.IndexIVFPQR(faiss.IndexFlatL2(D_MODEL), D_MODEL, 4, 8, 6, 8, 6)
    with pytest.raises(TypeError, match="IndexIVFPQR"):
        from_faiss(theirs)
    with pytest.raises(TypeError, match="from_faiss takes"):
        from_faiss("IndexPQ")


@pytest.mark.parametrize("params, error, match", [
    (faiss.SearchParameters(), TypeError, "SearchParametersIVF"),
    (faiss.SearchParametersIVF(nprobe=4, sel=faiss.IDSelectorRange(0, 10)), ValueError, "sel"),
    (faiss.SearchParametersIVF(nprobe=4, max_codes=5), ValueError, "max_codes"),
    ("nprobe=4", TypeError, "SearchParametersIVF"),
])
def test_ivf_search_params_it_cannot_honour_are_refused(data, trained_ivf, params, error, match):
    """FAISS's IndexIVF refuses params of another type; a selector or max_codes that the scan
    would ignore must not give unfiltered results silently."""
    ours = deserialize(trained_ivf)
    ours.add(data[1][:100])
    with pytest.raises(error, match=match):
        ours.search(data[2][:2], 3, params=params)
    refine = qetvec.IndexRefineFlat(deserialize(trained_ivf))
    with pytest.raises(error, match=match):
        refine.search(data[2][:2], 3, params=params)


def test_ivf_search_honours_the_coarse_quantizer_params(data):
    """params.quantizer_params reaches the coarse quantizer's search, as in FAISS."""
    train, base, queries = data
    ours = qetvec.index_factory(D_MODEL, "IVF16_HNSW4,QET8x6_L0")
    ours.train(train)
    ours.add(base)
    theirs = to_faiss(ours)
    for ef in (1, 64):
        p_ours = faiss.SearchParametersIVF(nprobe=4, quantizer_params=faiss.SearchParametersHNSW(efSearch=ef))
        p_theirs = faiss.SearchParametersIVF(nprobe=4, quantizer_params=faiss.SearchParametersHNSW(efSearch=ef))
        D1, I1 = ours.search(queries, 10, params=p_ours)
        D2, I2 = theirs.search(queries, 10, params=p_theirs)
        np.testing.assert_allclose(D1, D2, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("params", [faiss.SearchParameters(), faiss.SearchParametersIVF(nprobe=2)])
def test_flat_search_refuses_params_as_faiss_indexpq(data, trained_flat, params):
    ours = deserialize(trained_flat)
    ours.add(data[1][:50])
    with pytest.raises(RuntimeError):
        to_faiss(ours).search(data[2][:2], 3, params=params)  # FAISS: "invalid search params"
    with pytest.raises(TypeError, match="takes no search parameters"):
        ours.search(data[2][:2], 3, params=params)
    np.testing.assert_array_equal(ours.search(data[2][:2], 3, params=None)[1], ours.search(data[2][:2], 3)[1])


def test_reconstruct_n_past_the_stored_ids_is_a_key_error(data, trained_flat):
    """As for any absent id (FAISS asserts i0 + ni <= ntotal): a KeyError, not numpy's
    OverflowError past 2**63 - 1 or an allocation of ni rows."""
    _, base, _ = data
    ours = deserialize(trained_flat)
    ours.add_with_ids(base[:2], np.array([2 ** 63 - 2, 2 ** 63 - 1]))
    np.testing.assert_array_equal(ours.reconstruct_n(2 ** 63 - 2, 2), ours.reconstruct_batch([2 ** 63 - 2, 2 ** 63 - 1]))
    refine = qetvec.IndexRefineFlat(deserialize(trained_flat))
    refine.add(base[:3])
    for index, i0, ni in [(ours, 2 ** 63 - 1, 2), (ours, 0, 2 ** 62), (refine, 1, 2 ** 62), (refine, 2, 2)]:
        with pytest.raises(KeyError):
            index.reconstruct_n(i0, ni)
    assert ours.reconstruct_n(0, 0).shape == (0, D_MODEL)


@pytest.mark.parametrize("transform", ["pca", "random"])
@pytest.mark.parametrize("kind", ["flat", "idmap", "ivf"])
def test_rotating_codec_exports_behind_faiss_linear_transform(data, transform, kind, tmp_path):
    """A codec that rotates before its groups (OPQ-like PQ) exports as
    IndexPreTransform(LinearTransform(R), IndexPQ / IndexIVFPQ): FAISS's own rotation and
    kernels give qetvec's (D, I), after faiss.write_index / read_index too."""
    from qetvec_faiss.export import rotation_matrix
    train, base, queries = data
    codec = qetvec.QETQuantizer(D_MODEL, 8, 6, levels=0, transform=transform, seed=3)
    ours = (qetvec.IndexIVFQET(faiss.IndexFlatL2(D_MODEL), D_MODEL, 12, codec=codec)
            if kind == "ivf" else qetvec.IndexQET(D_MODEL, codec=codec))
    ours.train(train)
    if kind == "idmap":
        ours.add_with_ids(base[:500], np.arange(500) * 3 + 1)
    else:
        ours.add(base[:500])
    matrix = rotation_matrix(ours.codec)
    np.testing.assert_allclose(queries @ matrix.T, ours.codec.rotate(queries), rtol=1e-6)
    faiss.write_index(to_faiss(ours), str(tmp_path / "rotated.faiss"))
    theirs = faiss.read_index(str(tmp_path / "rotated.faiss"))
    inner = faiss.downcast_index(theirs.index if kind == "idmap" else theirs)
    assert isinstance(inner, faiss.IndexPreTransform)
    np.testing.assert_allclose(inner.chain.at(0).apply(queries), ours.codec.rotate(queries), rtol=1e-5, atol=1e-5)
    assert_same(ours, theirs, queries, **({"nprobe": 5} if kind == "ivf" else {}))


@pytest.mark.parametrize("kind, m", [("flat", 8), ("flat", D_MODEL), ("ivf", 8)])  # D_MODEL: scalars
def test_rotating_4bit_codec_exports_to_fast_scan(data, kind, m):
    """TurboQuant-like (random rotation, 4-bit groups) codes searched by FAISS's fast-scan
    kernels behind FAISS's rotation: scored as the exact distance to the qetvec
    reconstruction up to the uint8 table rounding, mostly qetvec's ADC top-10."""
    from qetvec_faiss.export import to_faiss_fast_scan
    train, base, queries = data
    codec = qetvec.QETQuantizer(D_MODEL, m, 4, levels=0, transform="random")
    ours = (qetvec.IndexIVFQET(faiss.IndexFlatL2(D_MODEL), D_MODEL, 12, codec=codec)
            if kind == "ivf" else qetvec.IndexQET(D_MODEL, codec=codec))
    ours.train(train)
    ours.add(base[:1000])
    ours.nprobe = 12
    fast = to_faiss_fast_scan(ours)
    inner = faiss.downcast_index(fast.index)
    assert isinstance(inner, faiss.IndexIVFPQFastScan if kind == "ivf" else faiss.IndexPQFastScan)
    D, I = fast.search(queries, 10)
    exact = ((queries[:, None] - ours.reconstruct_batch(I.ravel()).reshape(*I.shape, -1)) ** 2).sum(-1)
    _, I_adc = ours.search(queries, 10)
    in_code_space = copy.copy(ours)  # the bound reads residuals against the centroids: rotate both
    in_code_space.centroids = ours.codec.rotate(ours.centroids) if kind == "ivf" else None
    bound = table_rounding_bound(in_code_space, np.ascontiguousarray(ours.codec.rotate(queries)))
    assert (np.abs(D - exact) <= bound[:, None]).all()
    assert np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(I, I_adc)]) > 0.8


def test_rotating_codec_over_a_graph_quantizer_is_refused(data):
    codec = qetvec.QETQuantizer(D_MODEL, 8, 6, levels=0, transform="pca")
    ours = qetvec.IndexIVFQET(faiss.IndexHNSWFlat(D_MODEL, 8), D_MODEL, 12, codec=codec)
    ours.train(data[0])
    with pytest.raises(ValueError, match="flat coarse quantizer only, got IndexHNSWFlat"):
        to_faiss(ours)
