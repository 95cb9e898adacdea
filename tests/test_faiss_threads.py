"""FAISS calls made by qetvec: FAISS's own results, without FAISS's OpenMP team, so that
qetvec's speed cannot depend on whether faiss or qetvec was imported first."""
import os
import subprocess
import sys
import textwrap

import faiss
import numpy as np
import pytest

from qetvec import faiss_threads


@pytest.fixture
def faiss_threads_4():
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(4)
    yield
    faiss.omp_set_num_threads(before)


@pytest.mark.parametrize("n", [0, 1, 63, 200, 1000])  # one slice, a few, one per thread
@pytest.mark.parametrize("k", [1, 10, 40])  # 40 > the 32 rows stored: -1 padding
def test_search_is_faiss_search(glove, faiss_threads_4, n, k):
    index = faiss.IndexHNSWFlat(50, 8)
    index.add(np.ascontiguousarray(glove[:32]))
    x = np.ascontiguousarray(glove[1000:1000 + n])
    D, I = faiss_threads.search(index, x, k)
    expected_D, expected_I = index.search(x, k)
    assert D.dtype == np.float32 and I.dtype == np.int64 and D.shape == I.shape == (n, k)
    np.testing.assert_array_equal(I, expected_I)
    np.testing.assert_array_equal(D, expected_D)
    assert faiss.omp_get_max_threads() == 4  # the caller's setting is back


def test_search_parameters_reach_faiss(glove, faiss_threads_4):
    index = faiss.IndexHNSWFlat(50, 4)
    index.add(np.ascontiguousarray(glove[:5000]))
    x = np.ascontiguousarray(glove[10000:10500])
    narrow, wide = faiss.SearchParametersHNSW(efSearch=4), faiss.SearchParametersHNSW(efSearch=256)
    found = {ef: faiss_threads.search(index, x, 10, params)[1] for ef, params in ((4, narrow), (256, wide))}
    np.testing.assert_array_equal(found[4], index.search(x, 10, params=narrow)[1])
    np.testing.assert_array_equal(found[256], index.search(x, 10, params=wide)[1])
    assert not np.array_equal(found[4], found[256])  # the parameters were not dropped


@pytest.mark.parametrize("metric", [faiss.METRIC_L2, faiss.METRIC_INNER_PRODUCT])
def test_knn_is_faiss_knn(glove, faiss_threads_4, metric):
    x, y = np.ascontiguousarray(glove[:700]), np.ascontiguousarray(glove[5000:6000])
    D, I = faiss_threads.knn(x, y, 5, metric)
    expected_D, expected_I = faiss.knn(x, y, 5, metric=metric)
    np.testing.assert_array_equal(I, expected_I)
    np.testing.assert_allclose(D, expected_D, rtol=1e-6)  # BLAS blocks may differ by slice


def test_thread_count_restored_when_faiss_raises(faiss_threads_4):
    index = faiss.IndexFlatL2(8)
    with pytest.raises(AssertionError):  # FAISS's Python check of the query width
        faiss_threads.search(index, np.zeros((500, 4), np.float32), 1)
    assert faiss.omp_get_max_threads() == 4


TEAM_CHECK = textwrap.dedent('''
    import os
    import faiss  # first, as FAISS, LangChain and LlamaIndex programs do
    import numpy as np
    import qetvec

    def threads():
        return len(os.listdir("/proc/self/task"))

    faiss.omp_set_num_threads(4)
    x = np.random.default_rng(0).standard_normal((6000, 16)).astype(np.float32)
    index = qetvec.index_factory(16, "IVF64,QET4x4_L1,RFlat")
    index.train(x)
    index.add(x)
    index.search(x[:2000], 10, nprobe=4)
    flat = qetvec.index_factory(16, "QET4x4_L0")
    flat.train(x)
    flat.add(x)
    flat.search(x[:2000], 10)
    after_qetvec = threads()
    faiss.IndexFlatL2(16).search(x[:2000], 1)  # FAISS's own call starts its team of 4
    print(after_qetvec, threads())
''')


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads in /proc")
def test_qetvec_never_starts_faiss_openmp_team():
    """FAISS's idle OpenMP workers keep the wait policy their runtime read at `import faiss`
    (spinning, by default, on the cores qetvec's threads need): qetvec's train, add and search
    start none of them. FAISS's own search, after them, adds its 3 workers."""
    out = subprocess.run([sys.executable, "-c", TEAM_CHECK], capture_output=True, text=True, timeout=300,
                         env={k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"})
    assert out.returncode == 0, out.stderr
    after_qetvec, after_faiss = map(int, out.stdout.split())
    assert after_faiss == after_qetvec + 3
