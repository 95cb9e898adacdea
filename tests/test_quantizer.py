"""QETQuantizer's transform stage and per-group bits, against independent statements:
textbook Lloyd-Max quantizers, rotating back an unrotated codec, brute-force distances."""
import faiss
import numpy as np
import pytest

import qetvec
import qetvec.codebooks
from qetvec.stage import QETStage, fit_stages

# Lloyd-Max quantizer of a unit Gaussian (Max 1960): positive output levels and MSE
LLOYD_MAX = {1: ([0.7979], 0.3634), 2: ([0.4528, 1.510], 0.1175),
             3: ([0.2451, 0.7560, 1.344, 2.152], 0.03454)}


def lloyd_max_1d(z, levels, iters=200):
    """Lloyd's algorithm in one dimension, written out: thresholds at midpoints, levels at
    the conditional means, from quantile starts."""
    levels = np.quantile(z, (np.arange(levels) + 0.5) / levels)
    for _ in range(iters):
        cells = np.searchsorted((levels[1:] + levels[:-1]) / 2, z)
        levels = np.array([z[cells == c].mean() for c in range(len(levels))])
    return levels


@pytest.mark.parametrize("bits", [1, 2, 3])
def test_width_one_groups_are_lloyd_max_quantizers(rng, monkeypatch, bits):
    """One group per column: each codebook is the 1-D Lloyd-Max quantizer of its column,
    equal to the textbook levels for Gaussian columns and to a 1-D Lloyd iteration written
    here on a skewed one; the MSE is the textbook distortion. (k-means trains on every row
    here, not FAISS's 256 per codeword: a 512-row sample has other Lloyd fixed points.)"""
    monkeypatch.setattr(qetvec.codebooks, "MAX_POINTS_PER_CENTROID", 10 ** 6)
    n = 60_000
    x = np.stack([rng.standard_normal(n), rng.standard_normal(n) * 3.0, rng.exponential(1.0, n)], 1)
    codec = qetvec.QETQuantizer(3, 3, nbits=bits, levels=0, niter=300).train(x.astype(np.float32))
    books = np.sort(codec.stages[0].codebooks_[:, :, 0], axis=1)
    positive, distortion = LLOYD_MAX[bits]
    textbook = np.concatenate([-np.array(positive)[::-1], positive])
    np.testing.assert_allclose(books[0], textbook, atol=0.06)
    np.testing.assert_allclose(books[1], 3.0 * textbook, atol=0.18)
    np.testing.assert_allclose(books[2], lloyd_max_1d(x[:, 2], 2 ** bits), atol=0.04 * 2 ** bits)
    err = ((x - codec.decode(codec.encode(x.astype(np.float32)))) ** 2).mean(0)
    assert err[0] == pytest.approx(distortion, rel=0.04)
    assert err[1] == pytest.approx(9 * distortion, rel=0.04)


@pytest.mark.parametrize("kind", ["pca", "random"])
def test_rotated_codec_decodes_to_the_rotated_back_unrotated_decode(glove_split, kind):
    """Codec with a transform R == an identical codec without one, trained and applied on
    rotated rows, decoded then rotated back: same codes, x_hat = R^T y_hat."""
    train, test = glove_split
    settings = dict(m=[[10, 10, 30], 1], nbits=[[8, 6, 4], 6], levels=0, stages=2, seed=5)
    rotated = qetvec.QETQuantizer(50, transform=kind, **settings).train(train[:10000])  # >= 39 rows per codeword
    r = rotated.rotation.matrix_
    plain = qetvec.QETQuantizer(50, **settings).train(train[:10000] @ r.T)
    codes = rotated.encode(test[:500])
    np.testing.assert_array_equal(codes, plain.encode(test[:500] @ r.T))
    np.testing.assert_allclose(rotated.decode(codes), plain.decode(codes) @ r, atol=1e-4)


def test_unequal_groups_and_zero_bit_groups_count_their_bits(rng):
    """Group widths and bits as given; a 0-bit group costs nothing and decodes to its mean."""
    x = rng.standard_normal((5000, 12)).astype(np.float32) + 5.0
    codec = qetvec.QETQuantizer(12, [[2, 4, 6]], nbits=[[7, 5, 0]], levels=0).train(x)
    assert codec.code_size == 2 and codec.nbits == [[7, 5, 0]]
    decoded = codec.decode(codec.encode(x))
    np.testing.assert_allclose(decoded[:, 6:], np.broadcast_to(x[:, 6:].mean(0), (5000, 6)), atol=1e-4)
    stage = QETStage(12, [2, 4, 6], [128, 32, 1], 0)
    fit_stages([stage], x)
    assert stage.entries == 2 * 128 + 4 * 32 + 6 and stage.codebook_bytes() == 4 * stage.entries


@pytest.mark.parametrize("metric", ["l2", "ip"])
@pytest.mark.parametrize("settings", [
    dict(m=[[5, 10, 20, 15]], nbits=[[7, 6, 3, 0]], levels=0, transform="pca"),
    dict(m=50, nbits=2, levels=0, transform="random"),
    dict(m=[[25, 25], 1], nbits=[[7, 5], 6], levels=0, stages=2, beam=4, transform="pca"),
    dict(m=[[10, 10, 10, 10, 6, 4]], nbits=[[3, 5, 4, 4, 1, 0]], levels=0, transform="pca"),  # product units
])
@pytest.mark.parametrize("ivf", [False, True])
def test_adc_equals_distance_to_decoded_rows_for_new_codecs(glove_split, settings, metric, ivf):
    """Flat and IVF (by residual) search over codecs with a transform, unequal groups and a
    beam: the scores equal brute-force distances to the decoded rows."""
    train, test = glove_split
    codec = qetvec.QETQuantizer(50, **settings)
    if ivf:
        index = qetvec.IndexIVFQET(faiss.IndexFlatL2(50), 50, 8, metric=metric, codec=codec)
        index.nprobe = 8
    else:
        index = qetvec.IndexQET(50, metric=metric, codec=codec)
    index.train(train[:6000])
    index.add(train[6000:8000])
    queries = test[:30]
    decoded = index.reconstruct_n(0, index.ntotal)
    exact = ((queries[:, None] - decoded[None]) ** 2).sum(-1) if metric == "l2" else queries @ decoded.T
    D, I = index.search(queries, 10)
    ref = np.sort(exact, 1)[:, :10] if metric == "l2" else -np.sort(-exact, 1)[:, :10]
    scale = np.abs(exact).max()
    np.testing.assert_allclose(D, ref, atol=1e-4 * scale)
    np.testing.assert_allclose(np.take_along_axis(exact, I, 1), ref, atol=1e-4 * scale)


def test_io_round_trip_of_new_codecs(tmp_path, glove_split):
    train, test = glove_split
    for i, settings in enumerate([dict(m=[[5, 45]], nbits=[[7, 6]], transform="pca"),
                                  dict(m=50, nbits=1, transform="random", seed=9),
                                  dict(m=1, nbits=[6, 6, 6], stages=3, beam=5)]):
        codec = qetvec.QETQuantizer(50, levels=0, **settings).train(train[:6000])
        qetvec.write_index(codec, tmp_path / f"c{i}.qet")
        back = qetvec.read_index(tmp_path / f"c{i}.qet")
        np.testing.assert_array_equal(back.encode(test[:200]), codec.encode(test[:200]))
        np.testing.assert_array_equal(back.decode(codec.encode(test[:200])), codec.decode(codec.encode(test[:200])))
        assert back.codebook_bytes() == codec.codebook_bytes()
