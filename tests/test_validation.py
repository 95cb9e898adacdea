"""Bad arguments and hostile inputs are refused by name before they reach a kernel or FAISS."""
import faiss
import numpy as np
import pytest

import qetvec
from qetvec._validation import FLOAT32_MAX, as_float_matrix


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(nbits="8"), TypeError, "nbits"),
    (dict(nbits=[8.0]), TypeError, "nbits"),
    (dict(codebook_bits=8.5), TypeError, "codebook_bits"),
    (dict(codebook_bits=True), TypeError, "codebook_bits"),
    (dict(codebook_bits=17), ValueError, "codebook_bits"),
    (dict(niter=0), ValueError, "niter"),
    (dict(niter=-1), ValueError, "niter"),
    (dict(levels=-1), ValueError, "levels"),
    (dict(seed=-1), ValueError, r"seed must be in \[0, 2147483647\], got -1"),
    (dict(seed=2 ** 40), ValueError, "seed must be in"),
    (dict(seed=1.5), TypeError, "seed must be an integer"),
])
def test_codec_settings_are_checked(kwargs, error, match):
    with pytest.raises(error, match=match):
        qetvec.QETQuantizer(8, 2, **kwargs)


@pytest.mark.parametrize("make", [
    lambda: qetvec.QETQuantizer(8, 2, nbits=2),
    lambda: qetvec.IndexIVFQET(faiss.IndexFlatL2(8), 8, 4, 2, nbits=2),
])
def test_values_whose_squares_overflow_float32_are_refused(make):
    """Finite float32 around 1e19: squared norms overflow, and FAISS's k-means aborts the
    process on them; qetvec refuses the rows first, naming one."""
    x = np.random.default_rng(0).standard_normal((400, 8)).astype(np.float32)
    x[17] = 1e19
    with pytest.raises(ValueError, match="row 17 has a squared norm"):
        make().train(x)


def test_large_but_safe_values_are_accepted():
    x = np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32) * 1e17
    q = qetvec.QETQuantizer(8, 2, nbits=2, levels=1).train(x)
    assert q.decode(q.encode(x)).shape == x.shape


@pytest.mark.parametrize("bad, error, match", [
    (None, TypeError, "x must hold real numbers"),
    (3.0, ValueError, r"x must be 2-D \(n, d\)"),
    ([[1.0, 2.0]], ValueError, "expected d=8"),
])
def test_add_names_what_is_wrong_with_x_and_stores_nothing(bad, error, match):
    index = qetvec.index_factory(8, "QET2x4_L0")
    index.train(np.random.default_rng(0).standard_normal((700, 8)).astype(np.float32))  # >= 39 rows per codeword
    with pytest.raises(error, match=match):
        index.add(bad)
    assert index.ntotal == 0


@pytest.mark.parametrize("description", ["QET10x8_S0", "IVF16,QET10x8_L1_S0"])
def test_factory_refuses_zero_stages(description):
    with pytest.raises(ValueError, match="stages must be >= 1, got 0"):
        qetvec.index_factory(50, description)


@pytest.mark.parametrize("make", [
    lambda: qetvec.IndexQET(8, 2, seed=-1),
    lambda: qetvec.IndexIVFQET(faiss.IndexFlatL2(8), 8, 4, 2, seed=-1),
    lambda: qetvec.IndexIVFQET(faiss.IndexFlatL2(8), 8, 4, 2, seed=2 ** 31),  # FAISS's k-means: a C int
])
def test_index_seed_is_checked_by_name(make):
    with pytest.raises(ValueError, match="seed must be in"):
        make()


def test_bound_messages_read_as_sentences():
    from qetvec._validation import check_positive_int
    with pytest.raises(ValueError, match="^k must be >= 1, got 0$"):
        check_positive_int(0, "k")
    with pytest.raises(ValueError, match=r"^nbits must be in \[1, 16\], got 17$"):
        check_positive_int(17, "nbits", 1, 16)
    index = qetvec.index_factory(8, "QET2x4_L0")
    index.train(np.random.default_rng(0).standard_normal((800, 8)).astype(np.float32))
    with pytest.raises(ValueError, match="^k must be >= 1, got 0$"):
        index.search(np.zeros((1, 8), np.float32), 0)


@pytest.mark.parametrize("description", [None, 10, b"QET2x4"])
def test_factory_description_must_be_a_string(description):
    with pytest.raises(TypeError, match="description must be a string"):
        qetvec.index_factory(50, description)


@pytest.mark.parametrize("make", [
    lambda: qetvec.QETQuantizer(8, 2, nbits=4),
    lambda: qetvec.IndexQET(8, 2, nbits=4),
    lambda: qetvec.IndexIVFQET(faiss.IndexFlatL2(8), 8, 4, 2, nbits=4),
])
def test_training_data_too_small_for_float32_distances_is_refused(make):
    """Below ~1e-19 squared norms leave float32's normal range, k-means and ADC distances
    underflow and codes come out near random without a word: refused, naming the fix.
    (Matrix mode rescales instead: see test_matrix.)"""
    x = np.random.default_rng(0).standard_normal((800, 8)).astype(np.float32)
    with pytest.raises(ValueError, match="squared row norms are at most .* below float32's smallest normal.*rescale"):
        make().train(x * np.float32(1e-25))
    make().train(x * np.float32(1e-17))  # small, still exact: accepted


@pytest.mark.parametrize("bbs", [0, 7, -32, "32"])
def test_fast_scan_block_size_is_checked(bbs):
    """bbs=0 made FAISS divide by zero and kill the process (SIGFPE)."""
    from qetvec_faiss.export import to_faiss_fast_scan
    index = qetvec.IndexQET(8, 2, nbits=4, levels=0)
    index.train(np.random.default_rng(0).standard_normal((800, 8)).astype(np.float32))
    with pytest.raises((TypeError, ValueError), match="bbs"):
        to_faiss_fast_scan(index, bbs)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(families="rq"), TypeError, "families must be a list"),  # was read as ["r", "q"]: "random-w1" too
    (dict(families=["pq", 3]), TypeError, "families must be a list"),
    (dict(seed=-1), ValueError, "seed must be in"),
])
def test_fit_codec_arguments_are_checked_by_name(kwargs, error, match):
    x = np.random.default_rng(0).standard_normal((200, 8)).astype(np.float32)
    with pytest.raises(error, match=match):
        qetvec.fit_codec(x, 8, progress=False, **kwargs)


@pytest.mark.parametrize("value, match", [
    (np.nan, r"x contains NaN or inf \(first in row 1\)"),
    (np.inf, r"x contains NaN or inf \(first in row 1\)"),
    (1e19, "x row 1 has a squared norm"),
])
@pytest.mark.parametrize("rows", [2, 3])
def test_small_float32_inputs_are_checked_as_large_ones(value, match, rows):
    """A query or a few contiguous float32 rows (checked by one dot product) get the errors
    of the full check; rows near the float32 limit but below it pass, as the same object."""
    x = np.ones((rows, 8), np.float32)
    x[1, 3:] = value
    with pytest.raises(ValueError, match=match):
        as_float_matrix(x, "x", 8)
    near = np.full((rows, 8), np.sqrt(0.9 * FLOAT32_MAX / (8 * rows)), np.float32)  # total ~0.9x the limit
    assert as_float_matrix(near, "x", 8) is near
    assert as_float_matrix(np.ones((rows, 8), np.float32), "x", 8).flags.c_contiguous
