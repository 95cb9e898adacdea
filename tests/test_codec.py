"""QETQuantizer: FAISS parity at levels=0, residual stages, bit accounting, errors."""
import warnings

import faiss
import numpy as np
import pytest

import qetvec


def relative_mse(x, x_hat):
    return float(((x - x_hat) ** 2).sum(1).mean() / ((x - x.mean(0)) ** 2).sum(1).mean())


def test_levels0_matches_faiss_product_quantizer(glove_split):
    train, test = glove_split
    ours = qetvec.QETQuantizer(50, 10, nbits=8, levels=0).train(train)
    pq = faiss.ProductQuantizer(50, 10, 8)
    pq.train(train)
    mse_ours = relative_mse(test, ours.decode(ours.encode(test)))
    mse_faiss = relative_mse(test, pq.decode(pq.compute_codes(test)))
    assert ours.code_size == pq.code_size == 10
    assert abs(mse_ours - mse_faiss) <= 0.02 * mse_faiss


def test_each_residual_stage_lowers_held_out_mse(glove_split):
    train, test = glove_split
    mses = []
    for stages in (1, 2, 3):
        q = qetvec.QETQuantizer(50, 10, nbits=6, levels=1, stages=stages).train(train[:8000])
        mses.append(relative_mse(test, q.decode(q.encode(test))))
    assert mses[0] > mses[1] > mses[2]


def test_code_size_counts_every_bit():
    q = qetvec.QETQuantizer(50, 10, nbits=[8, 4], levels=[2, 0], stages=2)
    swap_bits = 25 + 12 + 12
    assert q.code_size == -(-(swap_bits + 10 * 8 + 10 * 4) // 8)
    assert q.sa_code_size() == q.code_size


@pytest.mark.parametrize("nbits", [1, 3, 9, 12])
def test_odd_widths_and_uneven_groups_round_trip(nbits, rng):
    n = 2 ** nbits + 3000
    x = rng.standard_normal((n, 37)).astype(np.float32)
    q = qetvec.QETQuantizer(37, 5, nbits=nbits, levels=2, stages=2, batch_size=700, niter=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few rows per codeword at nbits >= 9: not under test here
        q.train(x)
    codes = q.encode(x)
    assert codes.shape == (n, q.code_size)
    x_hat = q.decode(codes)
    np.testing.assert_array_equal(q.encode(x_hat[:0]), np.zeros((0, q.code_size), np.uint8))
    assert relative_mse(x, x_hat) < 1.0


def test_codebook_quantization_is_what_encoding_uses(glove_split):
    train, test = glove_split
    q = qetvec.QETQuantizer(50, 10, nbits=6, levels=1, codebook_bits=6).train(train)
    books = q.stages[0].codebooks_
    step = q.stages[0].codebook_step_
    grid = (books - q.stages[0].codebook_low_) / step
    np.testing.assert_allclose(grid, np.rint(grid), atol=1e-3)
    assert q.codebook_bytes() == (50 * 64 * 6 + 7) // 8 + 8
    assert relative_mse(test, q.decode(q.encode(test))) < 0.5


def test_write_read_round_trip(tmp_path, glove_split):
    train, test = glove_split
    q = qetvec.QETQuantizer(50, 10, nbits=5, levels=1, stages=2, codebook_bits=8).train(train[:5000])
    path = tmp_path / "q.qet"
    qetvec.write_index(q, path)
    q2 = qetvec.read_index(path)
    np.testing.assert_array_equal(q2.encode(test[:500]), q.encode(test[:500]))
    np.testing.assert_array_equal(q2.decode(q.encode(test[:500])), q.decode(q.encode(test[:500])))


def test_corrupt_and_truncated_files_are_refused(tmp_path, rng):
    q = qetvec.QETQuantizer(8, 2, nbits=2, levels=1).train(rng.standard_normal((500, 8)))
    path = tmp_path / "q.qet"
    qetvec.write_index(q, path)
    data = bytearray(path.read_bytes())
    (tmp_path / "trunc.qet").write_bytes(data[:-10])
    with pytest.raises(qetvec.CorruptIndexError, match="checksum"):
        qetvec.read_index(tmp_path / "trunc.qet")
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "flip.qet").write_bytes(bytes(data))
    with pytest.raises(qetvec.CorruptIndexError, match="checksum"):
        qetvec.read_index(tmp_path / "flip.qet")
    (tmp_path / "junk.qet").write_bytes(b"not an index at all, just some text " * 3)
    with pytest.raises(qetvec.CorruptIndexError, match="magic"):
        qetvec.read_index(tmp_path / "junk.qet")


def test_bad_input_gives_clear_errors(rng):
    q = qetvec.QETQuantizer(8, 2, nbits=4, levels=1)
    x = rng.standard_normal((1000, 8)).astype(np.float32)
    with pytest.raises(RuntimeError, match="not trained"):
        q.encode(x)
    with pytest.raises(ValueError, match="columns, expected d=8"):
        q.train(x[:, :7])
    with pytest.raises(ValueError, match="NaN or inf"):
        q.train(np.where(x > 2, np.nan, x))
    with pytest.raises(ValueError, match="empty"):
        q.train(x[:0])
    with pytest.raises(TypeError, match="real numbers"):
        q.train(x.astype(complex))
    with pytest.raises(ValueError, match="fewer than the 16 codewords"):
        q.train(x[:10])
    with pytest.warns(UserWarning, match="poorly trained"):
        q.train(x[:100])
    q.train(x[::-1])  # non-contiguous input is converted, not refused
    assert q.code_size == 2  # 4 swap bits + 2 codes of 4 bits = 12 bits
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        q.decode(np.zeros((3, 5), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        q.decode(np.zeros((3, 2), np.int32))
    with pytest.raises(ValueError, match="nbits must be in"):
        qetvec.QETQuantizer(8, 2, nbits=17)
    with pytest.raises(ValueError, match="too deep"):
        qetvec.QETQuantizer(8, 2, levels=4)


def test_failed_training_leaves_the_trained_state_as_it_was(rng):
    """Stage 2 cannot train on 100 rows (256 codewords): nothing is re-trained, stage 1 included."""
    q = qetvec.QETQuantizer(8, 2, nbits=[2, 8], levels=[1, 0], stages=2, niter=3)
    q.train(rng.standard_normal((10000, 8)).astype(np.float32))  # >= 39 rows per codeword
    before = [stage.codebooks_.copy() for stage in q.stages]
    with pytest.warns(UserWarning, match="100 rows for 4 codewords"), \
            pytest.raises(ValueError, match="fewer than the 256 codewords"):
        q.train(rng.standard_normal((100, 8)).astype(np.float32) + 5)
    for stage, books in zip(q.stages, before):
        np.testing.assert_array_equal(stage.codebooks_, books)
