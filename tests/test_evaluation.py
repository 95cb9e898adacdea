"""Measurement helpers and FAISS baselines at a byte budget: the numbers benchmarks are made of."""
import faiss
import numpy as np
import pytest
from faiss.contrib.evaluation import knn_intersection_measure

from qetvec.bench import sizing
from qetvec.evaluation import bits_per_row, compare_timing, relative_ip_error, relative_mse, threads, time_alternated


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


def test_relative_ip_error_is_the_mean_squared_score_error(rng):
    """Against the definition summed pair by pair, and relative_mse for identity queries."""
    x = rng.standard_normal((60, 5)).astype(np.float32)
    x_hat = x + 0.1 * rng.standard_normal(x.shape).astype(np.float32)
    queries = rng.standard_normal((7, 5)).astype(np.float32) * np.array([3, 1, 1, 0.5, 0.1], np.float32)
    err = sum(float(q.astype(np.float64) @ (a.astype(np.float64) - b)) ** 2 for q in queries for a, b in zip(x, x_hat))
    mean = x.astype(np.float64).mean(0)
    spread = sum(float(q.astype(np.float64) @ (a - mean)) ** 2 for q in queries for a in x)
    assert relative_ip_error(x, x_hat, queries) == pytest.approx(err / spread, rel=1e-9)
    assert relative_ip_error(x, x_hat, np.eye(5, dtype=np.float32)) == pytest.approx(relative_mse(x, x_hat), rel=1e-9)
    with pytest.raises(ValueError, match="queries must be a non-empty"):
        relative_ip_error(x, x_hat, queries[:, :4])


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


@pytest.mark.parametrize("d,max_bytes,spec", [(50, 10, "PQ10x8"), (50, 25, "PQ25x8"), (384, 24, "PQ24x8"),
                                              (50, 8, "PQ10x6"), (50, 16, "PQ25x5"), (50, 1, "PQ1x8")])
def test_pq_takes_the_most_bits_that_fit_then_nbits_nearest_8(d, max_bytes, spec):
    """Worked by hand: at 8 B on d = 50, 60 bits is the most (PQ5x12 or PQ10x6; 6 is nearer 8);
    at 16 B, PQ25x5 has 125 bits, PQ10x12 only 120."""
    assert sizing.faiss_spec("pq", d, max_bytes) == spec
    assert sizing.faiss_codec("pq", d, max_bytes).sa_code_size() <= max_bytes


@pytest.mark.parametrize("method,d,size", [("rabitq", 50, 15), ("rabitq4", 384, 212), ("sqtqmse1", 50, 7),
                                           ("eden2", 50, 21), ("sq4", 384, 192), ("sq8", 50, 50)])
def test_fixed_size_codes_fit_budgets_of_at_least_their_size(method, d, size):
    assert sizing.faiss_codec(method, d, size).sa_code_size() == size
    assert sizing.faiss_codec(method, d, size + 7).sa_code_size() == size
    with pytest.raises(ValueError, match=f"{method}: FAISS .* needs {size} bytes/row for d={d}, more than {size - 1}"):
        sizing.faiss_codec(method, d, size - 1)


def test_rq_beam32_sets_the_beam():
    index = sizing.faiss_codec("rq-beam32", 50, 10)
    assert faiss.downcast_index(index).rq.max_beam_size == 32
    assert faiss.downcast_index(sizing.faiss_codec("rq", 50, 10)).rq.max_beam_size == 5  # FAISS's default


def test_impossible_baseline_sizes_say_why():
    with pytest.raises(ValueError, match="no PQ with M dividing d=50 fits in 0 bytes"):
        sizing.faiss_codec("pq", 50, 0)
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


def test_pq_baselines_train_on_every_row(rng):
    """index_factory's PQ turns on polysemous training, which holds a quarter of the training
    rows back to renumber the codewords; the baselines train on all of them, as a bare
    faiss.ProductQuantizer does."""
    x = rng.standard_normal((3000, 8)).astype(np.float32)
    ours = sizing.faiss_codec("pq", 8, 2)  # PQ2x8
    assert faiss.index_factory(8, "PQ2x8").do_polysemous_training and not ours.do_polysemous_training
    assert not faiss.downcast_index(sizing.faiss_codec("opq", 8, 2).index).do_polysemous_training
    bare = faiss.ProductQuantizer(8, 2, 8)
    ours.train(x)
    bare.train(x)
    np.testing.assert_array_equal(ours.sa_decode(ours.sa_encode(x)), bare.decode(bare.compute_codes(x)))
