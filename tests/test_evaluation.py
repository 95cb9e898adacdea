"""Measurement helpers and FAISS baseline codecs: the numbers benchmarks are made of."""
import faiss
import numpy as np
import pytest
import qetvec_faiss.codecs as codecs

from qetvec.evaluation import bits_per_row, compare_timing, recall_at_k, relative_mse, threads


def test_relative_mse_reference_points(rng):
    x = rng.standard_normal((500, 8)).astype(np.float32)
    assert relative_mse(x, x) == 0.0
    assert relative_mse(x, np.broadcast_to(x.mean(0), x.shape)) == pytest.approx(1.0)


def test_recall_ignores_padding():
    truth = np.array([[1, 2, 3], [4, 5, 6]])
    found = np.array([[3, 1, -1], [7, 8, 9]])
    assert recall_at_k(found, truth, 3) == pytest.approx((2 / 3 + 0) / 2)


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


def test_compare_timing_alternates():
    calls = []
    t = compare_timing(lambda: calls.append("a"), lambda: calls.append("b"), repeats=3)
    assert calls == ["a", "b"] * 4 and t.ratio > 0


@pytest.mark.parametrize("method,code_bytes", [("pq", 10), ("pq", 5), ("opq", 25), ("rq", 8), ("lsq", 6)])
def test_baseline_codecs_have_the_requested_size(method, code_bytes):
    assert codecs.faiss_codec(method, 50, code_bytes).sa_code_size() == code_bytes


@pytest.mark.parametrize("method,code_bytes", [("pq", 5), ("rq", 3)])
def test_baseline_codes_have_the_requested_width(method, code_bytes, rng):
    codec = codecs.faiss_codec(method, 50, code_bytes)
    x = rng.standard_normal((2000, 50)).astype(np.float32)
    codec.train(x)
    assert codec.sa_encode(x[:7]).shape == (7, code_bytes)


def test_impossible_baseline_sizes_say_why():
    with pytest.raises(ValueError, match="no M dividing d=50"):
        codecs.faiss_codec("pq", 50, 8)
    with pytest.raises(ValueError, match="RaBitQ uses"):
        codecs.faiss_codec("rabitq", 50, 10)
    with pytest.raises(ValueError, match="unknown method"):
        codecs.factory_string("sq", 50, 10)
