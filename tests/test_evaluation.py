"""Measurement helpers and FAISS baselines at a byte budget: the numbers benchmarks are made of."""
import faiss
import numpy as np
import pytest
from faiss.contrib.evaluation import knn_intersection_measure

from qetvec.bench import sizing
from qetvec.evaluation import bits_per_row, compare_timing, relative_mse, threads, time_alternated


def test_relative_mse_reference_points(rng):
    x = rng.standard_normal((500, 8)).astype(np.float32)
    assert relative_mse(x, x) == 0.0
    assert relative_mse(x, np.broadcast_to(x.mean(0), x.shape)) == pytest.approx(1.0)


def test_relative_mse_refuses_what_would_broadcast(rng):
    """A (d,) or (1, d) x_hat broadcast against x (n, d) gave a number without a word."""
    x = rng.standard_normal((500, 8)).astype(np.float32)
    for x_hat in (x.mean(0), x[:1], x[:, :7], x.ravel()):
        with pytest.raises(ValueError, match="one shape"):
            relative_mse(x, x_hat)


def test_faiss_knn_is_brute_force(rng):
    xb, xq = rng.standard_normal((300, 6)).astype(np.float32), rng.standard_normal((7, 6)).astype(np.float32)
    expected = np.argsort(((xq[:, None, :] - xb[None]) ** 2).sum(-1), axis=1)[:, :5]
    np.testing.assert_array_equal(faiss.knn(xq, xb, 5)[1], expected)


def test_recall_measure_ignores_padding_and_order():
    truth = np.array([[1, 2, 3], [4, 5, 6]])
    found = np.array([[3, 1, -1], [7, 8, 9]])
    assert knn_intersection_measure(found, truth) == pytest.approx((2 / 3 + 0) / 2)


def test_bits_per_row_reads_the_array():
    assert bits_per_row(np.zeros((4, 14), np.uint8)) == 112
    with pytest.raises(ValueError, match="uint8"):
        bits_per_row(np.zeros((4, 14), np.int8))


def test_threads_restores_both_libraries():
    import numba
    before = (faiss.omp_get_max_threads(), numba.get_num_threads())
    with threads(1):
        assert faiss.omp_get_max_threads() == 1 and numba.get_num_threads() == 1
    assert (faiss.omp_get_max_threads(), numba.get_num_threads()) == before


def test_timings_alternate_round_robin():
    calls = []
    t = compare_timing(lambda: calls.append("a"), lambda: calls.append("b"), repeats=3)
    assert calls == ["a", "b"] * 4 and t.ratio > 0
    calls.clear()
    assert len(time_alternated([lambda c=c: calls.append(c) for c in "xyz"], repeats=2)) == 3
    assert calls == list("xyz") * 3


@pytest.mark.parametrize("method,code_bytes", [("pq", 10), ("pq", 5), ("opq", 25), ("rq", 8), ("lsq", 6)])
def test_baseline_codecs_have_the_requested_size(method, code_bytes):
    assert sizing.faiss_codec(method, 50, code_bytes).sa_code_size() == code_bytes


@pytest.mark.parametrize("method,code_bytes", [("pq", 5), ("rq", 3)])
def test_baseline_codes_have_the_requested_width(method, code_bytes, rng):
    codec = sizing.faiss_codec(method, 50, code_bytes)
    x = rng.standard_normal((2000, 50)).astype(np.float32)
    codec.train(x)
    assert codec.sa_encode(x[:7]).shape == (7, code_bytes)


def test_impossible_baseline_sizes_say_why():
    with pytest.raises(ValueError, match="no M dividing d=50"):
        sizing.faiss_codec("pq", 50, 8)
    with pytest.raises(ValueError, match="RaBitQ uses"):
        sizing.faiss_codec("rabitq", 50, 10)
    with pytest.raises(ValueError, match="unknown method"):
        sizing.faiss_spec("sq", 50, 10)


@pytest.mark.parametrize("levels,stages,code_bytes", [(0, 1, 10), (1, 1, 10), (2, 1, 25), (1, 2, 16)])
def test_qet_config_hits_the_code_size(levels, stages, code_bytes):
    import qetvec
    cfg = sizing.config_for_code_size(50, code_bytes, levels, stages)
    assert qetvec.QETQuantizer(50, **cfg).code_size == code_bytes
    assert cfg["levels"] == [levels] + [0] * (stages - 1)


def test_qet_config_that_cannot_fit_says_why():
    with pytest.raises(ValueError, match="no QET setting with levels=3"):
        sizing.config_for_code_size(50, 1, 3)
