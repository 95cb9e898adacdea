"""The ADC scan (`qetvec.adc.search_blocks`) against brute force over decoded rows: probed
lists only, blocks smaller than a list, lists with unused capacity between them, the
decoding policy for tables too large, thread counts."""
import faiss
import numpy as np
import pytest

import qetvec
from qetvec import adc
from qetvec.adc import ADCSearcher
from qetvec.evaluation import threads


def scores(queries, decoded, metric):
    """Minimized score (nq, n) of every decoded row: squared L2 or -<q, x>."""
    if metric == faiss.METRIC_L2:
        return ((queries[:, None, :] - decoded[None]) ** 2).sum(-1)
    return -(queries @ decoded.T)


def assert_topk(D, rows, exact, k):
    """D (nq, k) are the k best of exact (nq, n), and rows hold those scores."""
    np.testing.assert_allclose(D, np.sort(exact, axis=1)[:, :k], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(np.take_along_axis(exact, rows, axis=1), D, rtol=1e-4, atol=1e-3)


@pytest.fixture(scope="module")
def glove_small(glove_split):
    train, test = glove_split
    return train[:3000], train[3000:6000], test[:25]


@pytest.mark.parametrize("metric", ["l2", "ip"])
@pytest.mark.parametrize("levels,stages", [(0, 1), (1, 1), (2, 1), (1, 2)])
def test_ivf_equals_brute_force_over_the_probed_lists(glove_small, metric, levels, stages):
    train, base, queries = glove_small
    index = qetvec.IndexIVFQET(faiss.IndexFlatL2(50), 50, 12, 10, nbits=5, levels=levels,
                               stages=stages, metric=metric)
    index.train(train)
    index.add(base)
    nprobe = 3
    D, I = index.search(queries, 10, nprobe=nprobe)
    _, probes = index.quantizer.search(queries, nprobe)
    # independent statement: decode every row (QET decode + its list's centroid), then score
    # only the rows of each query's probed lists
    stored = index.lists.live_rows()
    lists = index.lists.list_of(stored)
    decoded = index.codec.decode(index.lists.codes[stored, : index.codec.code_size]) + index.centroids[lists]
    exact = scores(queries, decoded, index.metric_type)
    exact[~(lists[None, :, None] == probes[:, None, :]).any(-1)] = np.inf
    sign = 1 if metric == "l2" else -1
    assert_topk(sign * D, positions(index.lists.ids[stored], I), exact, 10)


def positions(ids: np.ndarray, I: np.ndarray) -> np.ndarray:
    """Where each id of I (nq, k) sits in ids (n,) (all distinct)."""
    order = np.argsort(ids)
    return order[np.searchsorted(ids, I, sorter=order)]


def test_single_stage_ivf_stores_only_the_qet_code(glove_small):
    """Equal memory with FAISS IVF-PQ: no per-row float beside the code."""
    train, base, _ = glove_small
    index = qetvec.IndexIVFQET(faiss.IndexFlatL2(50), 50, 8, 10, nbits=6, levels=0)
    index.train(train)
    index.add(base[:100])
    assert index.code_size == index.codec.code_size == index.lists.codes.shape[1] == 8  # 10 x 6 bits


@pytest.mark.parametrize("levels", [0, 1, 2, 3])
def test_adc_equals_decode_for_every_depth(rng, levels):
    x = rng.standard_normal((2500, 24)).astype(np.float32)
    index = qetvec.IndexQET(24, 6, nbits=4, levels=levels)
    index.train(x[:1500])
    index.add(x[1500:])
    exact = scores(x[:7], index.reconstruct_n(0, index.ntotal), faiss.METRIC_L2)
    np.testing.assert_allclose(index.distances(x[:7]), exact, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_scans_spanning_several_blocks(glove_small, monkeypatch, kind):
    train, base, queries = glove_small
    if kind == "flat":
        index = qetvec.IndexQET(50, 10, nbits=5, levels=1, stages=2)
    else:
        index = qetvec.IndexIVFQET(faiss.IndexFlatL2(50), 50, 4, 10, nbits=5, levels=1)
        index.nprobe = 2
    index.train(train)
    index.add(base)
    D_one, I_one = index.search(queries, 10)
    monkeypatch.setattr(adc, "ROWS_PER_BLOCK", 37)  # every list cut into many blocks
    for n in (1, 2):
        with threads(n):
            D, I = index.search(queries, 10)
        np.testing.assert_array_equal(D, D_one)  # the same scores, ties ranked by row
        np.testing.assert_array_equal(I, I_one)


@pytest.mark.parametrize("metric", [faiss.METRIC_L2, faiss.METRIC_INNER_PRODUCT])
def test_arena_with_unused_capacity_between_lists(rng, metric):
    """Lists at arbitrary starts in a larger arena: only their rows are ever returned."""
    x = rng.standard_normal((3200, 16)).astype(np.float32)
    quantizer = qetvec.QETQuantizer(16, 4, nbits=5, levels=1, stages=2).train(x[:2000])
    centroids = rng.standard_normal((3, 16)).astype(np.float32)
    searcher = ADCSearcher(quantizer, metric, centroids)
    list_start, list_size = np.array([5, 400, 900]), np.array([300, 0, 250])
    arena = rng.integers(0, 256, (1200, searcher.code_size), dtype=np.uint8)  # garbage capacity
    lists = np.full(len(arena), -1)
    for lst, (a, n) in enumerate(zip(list_start, list_size)):
        arena[a:a + n] = searcher.encode(x[2000 + a:2000 + a + n], np.full(n, lst))
        lists[a:a + n] = lst
    queries, probes = x[:6], np.array([[0, 2], [2, -1], [1, 0], [0, 1], [2, 0], [-1, -1]])
    D, rows = adc.search_blocks(searcher, queries, arena, list_start, list_size, probes, 8)
    stored = lists >= 0
    decoded = np.zeros((len(arena), 16), np.float32)
    decoded[stored] = quantizer.decode(arena[stored, : quantizer.code_size]) + centroids[lists[stored]]
    exact = scores(queries, decoded, metric)
    exact[~(stored[None, :, None] & (lists[None, :, None] == probes[:, None, :])).any(-1)] = np.inf
    assert_topk(D[:5], rows[:5], exact[:5], 8)
    assert (rows[5] == -1).all() and np.isinf(D[5]).all()  # probes nothing


@pytest.mark.parametrize("metric", [faiss.METRIC_L2, faiss.METRIC_INNER_PRODUCT])
@pytest.mark.parametrize("stages,levels,centroids", [(1, 0, True), (1, 2, True), (2, 1, True), (2, 1, False)])
def test_rows_unpacked_ahead_give_the_same_scan(rng, monkeypatch, metric, stages, levels, centroids):
    """`search_indexed` and `search_decoded` over `unpack_index` + `row_terms` (the
    per-list part and ||r_hat||^2 kept per row) return what `search_blocks` returns over
    the stored rows."""
    x = rng.standard_normal((3000, 16)).astype(np.float32)
    quantizer = qetvec.QETQuantizer(16, 4, nbits=5, levels=levels, stages=stages).train(x[:2000])
    searcher = ADCSearcher(quantizer, metric, rng.standard_normal((4, 16)).astype(np.float32) if centroids else None)
    lists = np.sort(rng.integers(0, 4 if centroids else 1, 1000))
    arena = searcher.encode(x[2000:], lists if centroids else None)
    list_start = np.searchsorted(lists, np.arange(4))
    list_size = np.diff(np.append(list_start, len(lists)))
    term = arena[:, quantizer.code_size:].copy().view("<f4")[:, 0] if searcher.code_size > quantizer.code_size else None
    index = adc.unpack_index(searcher, arena[:, :quantizer.code_size])
    assert index.dtype == np.uint16 and index.shape == (1000, len(searcher.units.ksub))
    terms = adc.row_terms(searcher, index, lists, term)
    probes = np.stack([rng.permutation(4)[:2] for _ in range(9)]) if centroids else np.zeros((9, 1), np.int64)
    decoded = searcher.decode(arena, lists if centroids else None)
    exact = scores(x[:9], decoded, metric)
    exact[~(lists[None, :, None] == probes[:, None, :]).any(-1)] = np.inf
    monkeypatch.setattr(adc, "QUERY_BLOCK_BYTES", 1000)  # blocks of a few queries for every scan
    for nq in (1, 9):
        D, _ = adc.search_blocks(searcher, x[:nq], arena, list_start, list_size, probes[:nq], 10)
        for search in (adc.search_indexed, adc.search_decoded):
            D2, rows2 = search(searcher, x[:nq], index, terms, list_start, list_size, probes[:nq], 10)
            np.testing.assert_allclose(D2, D, rtol=1e-5, atol=1e-4)
            assert_topk(D2, rows2, exact[:nq], 10)


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_tables_too_large_are_searched_by_decoding(rng, monkeypatch, kind):
    x = rng.standard_normal((2500, 16)).astype(np.float32)
    monkeypatch.setattr(qetvec.units, "HARD_LIMIT", 16)
    if kind == "flat":
        index = qetvec.IndexQET(16, 4, nbits=4, levels=2, stages=2)
    else:
        index = qetvec.IndexIVFQET(faiss.IndexFlatL2(16), 16, 4, 4, nbits=4, levels=2)
        index.nprobe = 4  # every list
    index.train(x[:1500])
    index.add(x[1500:])
    with pytest.warns(UserWarning, match="searching by decoding"):
        D, I = index.search(x[:5], 6)
    ids = index.lists.ids[index.lists.live_rows()]
    exact = scores(x[:5], index.reconstruct_batch(ids), faiss.METRIC_L2)
    assert_topk(D, positions(ids, I), exact, 6)


@pytest.mark.parametrize("stages", [1, 2])
def test_list_tables_built_per_batch_when_too_large_to_keep(glove_small, monkeypatch, stages):
    train, base, queries = glove_small
    index = qetvec.IndexIVFQET(faiss.IndexFlatL2(50), 50, 16, 10, nbits=5, levels=1, stages=stages)
    index.train(train)
    index.add(base)
    kept = index.search(queries, 10, nprobe=5)
    monkeypatch.setattr(adc, "MAX_LIST_TABLE_BYTES", 0)
    index._searcher = None
    per_batch = index.search(queries, 10, nprobe=5)
    np.testing.assert_allclose(per_batch[0], kept[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(per_batch[1], kept[1])


def test_groups_without_swap_bits_are_one_unit_above_the_table_cap(rng):
    """levels=0 with ksub above MAX_TABLE_ENTRIES: one lookup per group, not per position."""
    x = rng.standard_normal((5000, 12)).astype(np.float32)
    with pytest.warns(UserWarning, match="5000 rows for 4096 codewords"):  # 12-bit codes, kept small
        quantizer = qetvec.QETQuantizer(12, 3, nbits=12, levels=0).train(x)
    units = quantizer.lookup_units()
    assert len(units.ksub) == 3 and units.table_size == 3 * 4096
    searcher = ADCSearcher(quantizer)
    codes = searcher.encode(x[:500])
    D, rows = adc.search_blocks(searcher, x[:4], codes, np.array([0]), np.array([500]), np.zeros((4, 1), np.int64), 5)
    assert_topk(D, rows, scores(x[:4], quantizer.decode(codes), faiss.METRIC_L2), 5)


@pytest.mark.parametrize("block_rows", [1, 5, 1000])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_block_plan_covers_each_probed_row_once_per_query(rng, block_rows, n_threads):
    """plan_blocks against a direct statement: each query scans every row of each non-empty
    list it probes exactly once, blocks stay within one list and block_rows, and the blocks
    are dealt largest first into n_threads contiguous ranges of equal count (numba's static
    split of a prange), whose work differs by at most the largest block."""
    from qetvec._scan_kernels import plan_blocks
    size = rng.integers(0, 12, 20).astype(np.int64)
    start = np.concatenate([[0], np.cumsum(size + 3)[:-1]]).astype(np.int64)  # gaps between lists
    probes = np.stack([rng.choice(20, 6, replace=False) for _ in range(9)]).astype(np.int64)
    probes[2, 3:] = -1  # fewer lists than nprobe
    first, rows, lists, e_start, e_end, e_query = plan_blocks(start, size, probes, block_rows, n_threads)
    scanned = {}
    for b in range(len(first)):
        assert 1 <= rows[b] <= block_rows
        assert start[lists[b]] <= first[b] and first[b] + rows[b] <= start[lists[b]] + size[lists[b]]
        for q in e_query[e_start[b]:e_end[b]]:
            for r in range(first[b], first[b] + rows[b]):
                scanned[(int(q), r)] = scanned.get((int(q), r), 0) + 1
    expected = {(q, r) for q in range(9) for lst in probes[q] if lst >= 0
                for r in range(start[lst], start[lst] + size[lst])}
    assert set(scanned) == expected and set(scanned.values()) == {1}
    work = rows * (e_end - e_start)
    ranges = np.array_split(work, n_threads)
    assert all((np.diff(part) <= 0).all() for part in ranges)  # largest first within each range
    totals = [part.sum() for part in ranges]
    assert max(totals) - min(totals) <= work.max()


def test_block_plan_balances_skewed_work_across_threads():
    """One long list probed by every query and many small ones: the two halves of the plan
    (what two threads of a static prange split get) must carry similar work."""
    from qetvec._scan_kernels import plan_blocks
    size = np.array([5000] + [10] * 200, np.int64)
    start = np.concatenate([[0], np.cumsum(size)[:-1]]).astype(np.int64)
    probes = np.array([[0, 1 + q % 200] for q in range(400)], np.int64)
    first, rows, lists, e_start, e_end, e_query = plan_blocks(start, size, probes, 100, 2)
    work = rows * (e_end - e_start)
    left, right = np.array_split(work, 2)
    assert abs(left.sum() - right.sum()) <= work.max()


@pytest.mark.parametrize("n_threads", [1, 2])
def test_wide_unit_tables_by_matrix_product_equal_the_closed_form(rng, n_threads):
    """Full-width residual stages after narrow PCA groups: their table entries (one BLAS
    product per batch) are -2 <R q, codeword> of each stage's codebook, the narrow groups'
    entries come from the kernel, and BLAS's thread count is left as it was."""
    from threadpoolctl import threadpool_info
    x = rng.standard_normal((2600, 16)).astype(np.float32) * np.linspace(3, 0.5, 16, dtype=np.float32)
    codec = qetvec.QETQuantizer(16, [4, 1, 1], nbits=[[5] * 4, [6], [5]], levels=0, stages=3,
                                transform="pca").train(x)
    searcher = ADCSearcher(codec)
    assert [(a, b) for a, b, _ in adc._wide_units(searcher.units, 16)[1]] == [(128, 224)]  # both stages
    queries = rng.standard_normal((40, 16)).astype(np.float32)
    before = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    with threads(n_threads):
        tables = searcher.query_tables(codec.rotate(queries))
    assert [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"] == before
    rotated = codec.rotate(queries)
    narrow = codec.stages[0].codebooks_  # (4 groups, 32 codewords, width 4)
    expected = [-2 * np.einsum("qgw,gcw->qgc", rotated.reshape(40, 4, 4), narrow).reshape(40, 128)]
    expected += [-2 * rotated @ stage.codebooks_[0].T for stage in codec.stages[1:]]
    np.testing.assert_allclose(tables, np.concatenate(expected, axis=1), rtol=1e-5, atol=1e-4)


def test_concurrent_searches_leave_blas_threads_as_they_were(rng):
    """Searches on several Python threads over full-width residual stages (BLAS tables):
    the same results as one at a time, and BLAS's thread count is the user's afterwards."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_info
    x = rng.standard_normal((3000, 128)).astype(np.float32)
    codec = qetvec.QETQuantizer(128, [1, 1], nbits=[[6], [6]], levels=0, stages=2).train(x)
    searcher = ADCSearcher(codec)
    codes = searcher.encode(x[:1000])
    batches = [rng.standard_normal((400, 128)).astype(np.float32) for _ in range(16)]

    def search(queries):
        return adc.search_blocks(searcher, queries, codes, np.array([0]), np.array([1000]),
                                 np.zeros((len(queries), 1), np.int64), 5)
    before = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    serial = [search(q) for q in batches]
    with ThreadPoolExecutor(4) as pool:
        concurrent = list(pool.map(search, batches))
    assert [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"] == before
    for (D1, I1), (D2, I2) in zip(serial, concurrent):
        np.testing.assert_array_equal(D1, D2)
        np.testing.assert_array_equal(I1, I2)
