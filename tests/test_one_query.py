"""The one-query search (one serial kernel call: `qetvec._one_query_kernels`) against the
batch path's parallel kernels and against brute force over decoded rows: flat, IVF and
refine, L2 and inner product, one and two stages, 8-bit PQ codes (read as bytes) and codes
read field by field (a swap tree, a PCA transform with unequal groups and bits)."""
import faiss
import numpy as np
import pytest

import qetvec
from qetvec import adc
from qetvec.adc import ADCSearcher
from qetvec.evaluation import threads

CODECS = {
    "pq8": dict(m=10, nbits=8, levels=0),
    "pq8, 2 stages": dict(m=10, nbits=8, levels=0, stages=2),
    "tree": dict(m=10, nbits=6, levels=1),
    "pca, unequal groups": dict(m=[[5, 10, 35]], nbits=[[8, 6, 3]], levels=0, transform="pca"),
    "pca, 2 stages": dict(m=[[20, 30], 10], nbits=[[8, 5], 6], levels=0, stages=2, transform="pca"),
}


@pytest.fixture(scope="module")
def data(glove_split):
    """(train 10,000 rows, base 3,000 rows, queries 12 rows) of GloVe-50."""
    train, test = glove_split
    return train[:10000], train[10000:13000], test[:12]


@pytest.fixture(scope="module")
def codecs(data):
    return {name: qetvec.QETQuantizer(50, **settings).train(data[0]) for name, settings in CODECS.items()}


def scores(queries, decoded, metric):
    """Minimized score (nq, n) of every decoded row: squared L2 or -<q, x>, float64."""
    q, x = queries.astype(np.float64), decoded.astype(np.float64)
    if metric == faiss.METRIC_L2:
        return ((q[:, None, :] - x[None]) ** 2).sum(-1)
    return -(q @ x.T)


def assert_brute_force_topk(D, rows, exact, k):
    """D (nq, k) are the k best of exact (nq, n) (np.inf outside the probed lists), and rows
    hold those scores; padding (-1, +inf) where fewer rows were probed."""
    best = np.sort(exact, axis=1)[:, :k]
    found = rows >= 0
    assert (found == np.isfinite(best)).all()
    scale = np.abs(best[found]).max(initial=1.0)
    np.testing.assert_allclose(D[found], best[found], rtol=0, atol=1e-4 * scale)
    np.testing.assert_allclose(np.take_along_axis(exact, np.maximum(rows, 0), 1)[found], D[found],
                               rtol=0, atol=1e-4 * scale)


@pytest.mark.parametrize("metric", [faiss.METRIC_L2, faiss.METRIC_INNER_PRODUCT])
@pytest.mark.parametrize("with_centroids", [True, False])
@pytest.mark.parametrize("name", list(CODECS))
def test_one_query_kernel_returns_the_batch_kernels_bits(data, codecs, monkeypatch, name, metric,
                                                          with_centroids):
    """Over an arena with garbage between lists, an empty list and -1 probes, each query's
    one-query search equals the batch search of that query bit for bit, on 1 and 2 threads
    and with lists cut into many blocks; both equal brute force over the decoded rows."""
    _, base, queries = data
    rng = np.random.default_rng(5)
    codec = codecs[name]
    centroids = base[rng.choice(len(base), 4, replace=False)] if with_centroids else None
    searcher = ADCSearcher(codec, metric, centroids)
    list_start, list_size = np.array([5, 700, 900, 1500]), np.array([600, 0, 550, 480])
    arena = rng.integers(0, 256, (2100, searcher.code_size), dtype=np.uint8)  # garbage capacity
    lists = np.full(len(arena), -1)
    for lst, (a, n) in enumerate(zip(list_start, list_size)):
        arena[a:a + n] = searcher.encode(base[a:a + n], np.full(n, lst) if with_centroids else None)
        lists[a:a + n] = lst
    probes = np.array([[0, 2], [2, -1], [1, 3], [3, 0], [-1, -1], [2, 1]] * 2) if with_centroids \
        else np.zeros((len(queries), 1), np.int64)
    stored = lists >= 0
    decoded = np.zeros((len(arena), 50), np.float32)
    decoded[stored] = searcher.decode(arena[stored], lists[stored] if with_centroids else None)
    exact = scores(queries, decoded, metric)
    if with_centroids:
        exact[~(stored[None, :, None] & (lists[None, :, None] == probes[:, None, :])).any(-1)] = np.inf
    else:
        exact[:, ~stored | (lists != 0)] = np.inf  # probes list 0 only
    for i in range(len(queries)):
        args = (searcher, queries[i:i + 1], arena, list_start, list_size, probes[i:i + 1], 10)
        D, rows = adc._search_one(*args)
        assert_brute_force_topk(D, rows, exact[i:i + 1], 10)
        for n_threads, block in ((1, adc.ROWS_PER_BLOCK), (2, adc.ROWS_PER_BLOCK), (2, 37)):
            monkeypatch.setattr(adc, "ROWS_PER_BLOCK", block)
            with threads(n_threads):
                D_batch, rows_batch = adc._search_batch(*args)
            np.testing.assert_array_equal(D, D_batch)
            np.testing.assert_array_equal(rows, rows_batch)


def make_index(kind, codec, metric):
    if kind == "flat":
        return qetvec.IndexQET(50, metric=metric, codec=codec)
    index = qetvec.IndexIVFQET(faiss.IndexFlatL2(50), 50, 8, metric=metric, codec=codec)
    index.nprobe = 3
    if kind == "ivf,refine":
        index = qetvec.IndexRefineFlat(index, k_factor=3)
    return index


@pytest.mark.parametrize("metric", ["l2", "ip"])
@pytest.mark.parametrize("kind", ["flat", "ivf", "ivf,refine"])
@pytest.mark.parametrize("name", ["pq8, 2 stages", "tree"])
def test_single_query_search_equals_the_batch_search(data, codecs, kind, metric, name):
    """index.search of one query at a time returns, bit for bit, the rows of a batch search
    (the codecs keep the query as it is, so both paths score the same floats), and the
    refine index's exact distances are brute force over the base's candidates."""
    train, base, queries = data
    index = make_index(kind, qetvec.QETQuantizer(50, **CODECS[name]), metric)
    index.train(train)
    index.add(base)
    D_batch, I_batch = index.search(queries, 10)
    for i in range(len(queries)):
        D, I = index.search(queries[i:i + 1], 10)
        np.testing.assert_array_equal(D, D_batch[i:i + 1])
        np.testing.assert_array_equal(I, I_batch[i:i + 1])
    if kind == "ivf,refine":  # independent statement: exact scores of the candidates, sorted
        D, I = index.search(queries[:1], 10)
        _, rows = index.base._search_rows(queries[:1], 30)
        exact = scores(queries[:1], index.base.lists.vectors[rows[0]], index.metric_type)[0]
        np.testing.assert_allclose(D[0] if metric == "l2" else -D[0], np.sort(exact)[:10], rtol=1e-5, atol=1e-5)
        assert set(I[0]) == set(index.base.lists.ids[rows[0][np.argsort(exact)[:10]]])


@pytest.mark.parametrize("metric", ["l2", "ip"])
@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_single_query_search_equals_brute_force_through_a_pca_codec(data, codecs, kind, metric):
    """A rotating codec with unequal groups and two stages: one query at a time, the scores
    are brute force over the decoded rows of the probed lists, padded when k > rows."""
    train, base, queries = data
    index = make_index(kind, qetvec.QETQuantizer(50, **CODECS["pca, 2 stages"]), metric)
    index.train(train)
    index.add(base[:500])
    decoded = index.reconstruct_n(0, index.ntotal)
    exact = scores(queries, decoded, index.metric_type)
    if kind == "ivf":
        _, probes = index.quantizer.search(queries, 3)
        lists = index.lists.list_of(index._rows(np.arange(index.ntotal)))
        exact[~(lists[None, :, None] == probes[:, None, :]).any(-1)] = np.inf
    sign = 1 if metric == "l2" else -1
    k = 200 if kind == "ivf" else 10  # the probed lists of IVF hold fewer rows: padding
    for i in range(len(queries)):
        D, I = index.search(queries[i:i + 1], k)
        assert_brute_force_topk(sign * D, I, exact[i:i + 1], k)


@pytest.mark.parametrize("kind", ["flat", "ivf", "ivf,refine"])
def test_ties_are_broken_by_row_on_every_path_and_thread_count(data, monkeypatch, kind):
    """Every row stored three times: equal scores are ranked by arena row (the smaller id
    first, here), so one query, a batch on 1 or 2 threads and a scan cut into many blocks
    return the same ids in the same order."""
    train, base, queries = data
    index = make_index(kind, qetvec.QETQuantizer(50, m=10, nbits=4, levels=0), "l2")
    index.train(train[:2000])
    for _ in range(3):
        index.add(base[:400])
    one = [index.search(queries[i:i + 1], 10) for i in range(len(queries))]
    D_one, I_one = np.concatenate([d for d, _ in one]), np.concatenate([i for _, i in one])
    assert (D_one[:, 1:] == D_one[:, :-1]).any()  # the test has ties to break
    ties = D_one[:, 1:] == D_one[:, :-1]
    assert (I_one[:, 1:][ties] > I_one[:, :-1][ties]).all()
    for n_threads, block in ((1, adc.ROWS_PER_BLOCK), (2, adc.ROWS_PER_BLOCK), (2, 37)):
        monkeypatch.setattr(adc, "ROWS_PER_BLOCK", block)
        with threads(n_threads):
            D, I = index.search(queries, 10)
        np.testing.assert_array_equal(D, D_one)
        np.testing.assert_array_equal(I, I_one)


def test_one_query_with_list_tables_built_per_call(data, codecs, monkeypatch):
    """Per-list tables too large to keep for every list: the one query's probed lists get
    theirs built for the call (a -1 probe among them), with the same bits as kept tables."""
    _, base, queries = data
    centroids = base[:4]
    searcher = ADCSearcher(codecs["tree"], faiss.METRIC_L2, centroids)
    lists = np.repeat(np.arange(4), 250)
    arena = searcher.encode(base[:1000], lists)
    list_start, list_size = np.arange(4) * 250, np.full(4, 250)
    probes = np.array([[2, -1, 0]])
    kept = adc._search_one(searcher, queries[:1], arena, list_start, list_size, probes, 10)
    monkeypatch.setattr(adc, "MAX_LIST_TABLE_BYTES", 0)
    fresh = ADCSearcher(codecs["tree"], faiss.METRIC_L2, centroids)
    per_call = adc._search_one(fresh, queries[:1], arena, list_start, list_size, probes, 10)
    np.testing.assert_array_equal(per_call[0], kept[0])
    np.testing.assert_array_equal(per_call[1], kept[1])
    assert set(kept[1][0]) <= set(range(0, 250)) | set(range(500, 750))
