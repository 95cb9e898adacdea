"""Matrix mode: the budget holds, quality improves with budget, files round-trip."""
import warnings

import numpy as np
import pytest

import qetvec


@pytest.mark.parametrize("shape,m", [((2000, 32), 8), ((1500, 50), 10), ((384, 96), 12)])
@pytest.mark.parametrize("bytes_per_value", [0.3, 0.5, 1.0])
def test_nbytes_never_exceeds_budget(shape, m, bytes_per_value, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    budget = int(bytes_per_value * x.size)
    cm = qetvec.compress_matrix(x, budget, m=m, niter=5)
    assert cm.nbytes <= budget
    assert cm.decode().shape == shape


def test_more_budget_gives_lower_error(glove):
    x = np.ascontiguousarray(glove[:4000])
    errors = [float(((x - qetvec.compress_matrix(x, b, m=10, niter=10).decode()) ** 2).mean())
              for b in (60_000, 90_000, 140_000)]
    assert errors[0] > errors[1] > errors[2]


def test_too_small_budget_is_a_clear_error(rng):
    x = rng.standard_normal((1000, 16)).astype(np.float32)
    with pytest.raises(ValueError, match="too small"):
        qetvec.compress_matrix(x, 100, m=4)


def test_round_trip_through_file(tmp_path, rng):
    x = rng.standard_normal((800, 24)).astype(np.float32)
    cm = qetvec.compress_matrix(x, 8000, m=6, niter=5)
    qetvec.write_index(cm, tmp_path / "m.qet")
    back = qetvec.read_index(tmp_path / "m.qet")
    assert back.nbytes == cm.nbytes and back.ksub == cm.ksub
    np.testing.assert_array_equal(back.decode(), cm.decode())


@pytest.mark.parametrize("shape,m,budget,kwargs", [
    ((2000, 50), 10, 50_000, {}),
    ((1536, 96), 24, 60_000, {}),
    ((800, 24), 6, 8_000, dict(levels=(3, 0, 0), budget_split=(0.5, 0.3, 0.2))),
    ((1000, 16), 4, 20_000, dict(codebook_bits=None)),
    ((512, 37), 5, 9_000, dict(codebook_bits=7)),
])
def test_file_on_disk_is_within_budget_plus_header(shape, m, budget, kwargs, tmp_path, rng):
    """What `nbytes` counts is what is stored: the file is nbytes plus a bounded header."""
    x = rng.standard_normal(shape).astype(np.float32)
    cm = qetvec.compress_matrix(x, budget, m=m, niter=5, **kwargs)
    qetvec.write_index(cm, tmp_path / "m.qet")
    size = (tmp_path / "m.qet").stat().st_size
    assert cm.nbytes <= budget
    assert cm.nbytes < size <= cm.nbytes + qetvec.matrix.file_overhead_bytes(len(cm.stages))


def test_budget_search_prefers_more_codewords_when_they_fit(rng):
    x = rng.standard_normal((1000, 16)).astype(np.float32)
    small, large = (qetvec.compress_matrix(x, b, m=4, niter=3) for b in (6_000, 12_000))
    assert large.ksub[0] > small.ksub[0]


@pytest.mark.parametrize("kwargs,match", [
    (dict(budget_split=(0.7, float("nan"))), "budget_split"),
    (dict(budget_split=(0.7, 0.5)), "budget_split"),
    (dict(levels=(3,), budget_split=(0.7, 0.3)), "one entry per stage"),
    (dict(codebook_bits=True), "codebook_bits"),
    (dict(codebook_bits=8.5), "codebook_bits"),
    (dict(niter=0), "niter"),
    (dict(m=2.0), "m must be an integer"),
    (dict(seed=-1), "seed must be in"),
    (dict(seed=1.5), "seed must be an integer"),
    (dict(levels=3), "levels must be a sequence"),
    (dict(levels=(3,), budget_split=1.0), "budget_split must be a sequence"),
])
def test_bad_settings_are_refused_by_name(kwargs, match, rng):
    x = rng.standard_normal((500, 16)).astype(np.float32)
    with pytest.raises((TypeError, ValueError), match=match):
        qetvec.compress_matrix(x, 4000, **{"m": 4, **kwargs})


def test_matrix_mode_does_not_warn_about_few_rows_per_codeword(rng):
    """The matrix is its own training set: few rows per codeword is the regime its budget
    picks, not a training set too small (as it is for QETQuantizer, which warns)."""
    x = rng.standard_normal((384, 96)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cm = qetvec.compress_matrix(x, int(x.size), m=12, niter=2)
    assert max(cm.ksub) * 39 > len(x)
    with pytest.warns(UserWarning, match="poorly trained"):
        qetvec.QETQuantizer(96, 12, nbits=8, levels=0).train(x)


def relative_error(x: np.ndarray, x_hat: np.ndarray) -> float:
    x = x.astype(np.float64)
    return float(((x - x_hat) ** 2).sum() / (x ** 2).sum())


@pytest.mark.parametrize("codebook_bits", [10, None])
def test_matrix_mode_is_scale_invariant(codebook_bits, rng):
    """Compressing s * w gives s * (compressed w): exactly (bit for bit) when s is a power
    of two, to float32 rounding of s * w otherwise. Scales whose squares leave float32's
    normal range (1e-30, 1e30) included: the relative error does not move."""
    w = rng.standard_normal((600, 32)).astype(np.float32)
    settings = dict(budget_bytes=6000, m=8, niter=8, codebook_bits=codebook_bits)
    reference = qetvec.compress_matrix(w, **settings)
    error = relative_error(w, reference.decode())
    for s in (2.0 ** -100, 2.0 ** 100):
        scaled = qetvec.compress_matrix(w * np.float32(s), **settings)
        np.testing.assert_array_equal(scaled.decode(), reference.decode() * np.float32(s))
        assert scaled.nbytes == reference.nbytes
    for s in (1e-30, 1e-10, 1e10, 1e30):
        x = (w * s).astype(np.float32)
        assert relative_error(x, qetvec.compress_matrix(x, **settings).decode()) == pytest.approx(error, rel=1e-3)
