"""Codebook update of full-width residual stages, against the least-squares problem it solves."""
from __future__ import annotations

import numpy as np
import pytest

from qetvec import io
from qetvec.codebook_update import update_codebooks
from qetvec.codebooks import train_group_codebooks
from qetvec.evaluation import relative_mse
from qetvec.quantizer import QETQuantizer
from qetvec.stage import QETStage


def _stages(rng: np.random.Generator, n_stages: int, ksub: int, d: int) -> list[QETStage]:
    return _stages_of(rng, [ksub] * n_stages, d)


def _stages_of(rng: np.random.Generator, ksubs: list[int], d: int) -> list[QETStage]:
    stages = [QETStage(d, 1, k, 0) for k in ksubs]
    for stage, k in zip(stages, ksubs):
        stage.codebooks_ = rng.standard_normal((1, k, d)).astype(np.float32)
    return stages


def _one_hot(codes: np.ndarray, ksubs: int | list[int]) -> np.ndarray:
    """(n, sum of ksubs) matrix with a 1 at each row's codeword of each stage."""
    n, n_stages = codes.shape
    ksubs = [ksubs] * n_stages if isinstance(ksubs, int) else ksubs
    onehot = np.zeros((n, sum(ksubs)))
    onehot[np.arange(n)[:, None], codes + np.cumsum([0] + ksubs[:-1])] = 1.0
    return onehot


@pytest.mark.parametrize("ksubs", [[4, 4, 4], [8, 8, 2]])
def test_update_converges_to_the_ridge_least_squares_codebooks(rng, ksubs):
    """Sweeps of per-stage means converge to argmin ||X - G C||^2 + lam ||C||^2, G the
    one-hot code matrix (solved here with numpy's dense solver); stages may differ in size."""
    n, d, lam = 300, 5, 2.0
    x = rng.standard_normal((n, d)).astype(np.float32)
    codes = np.stack([rng.integers(0, k, n) for k in ksubs], axis=1)
    stages = _stages_of(rng, ksubs, d)
    update_codebooks(stages, x, codes, pseudo_rows=lam, sweeps=300)
    g = _one_hot(codes, ksubs)
    expected = np.linalg.solve(g.T @ g + lam * np.eye(sum(ksubs)), g.T @ x)
    got = np.concatenate([stage.codebooks_[0] for stage in stages])
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_update_without_shrinkage_reaches_the_least_squares_reconstruction(rng):
    """pseudo_rows=0: the reconstructions G C equal those of numpy's least-squares solution
    (the codebooks themselves are not unique: a constant moves freely between stages)."""
    n, d, ksub, n_stages = 400, 6, 4, 3
    x = rng.standard_normal((n, d)).astype(np.float32)
    codes = rng.integers(0, ksub, (n, n_stages))
    stages = _stages(rng, n_stages, ksub, d)
    update_codebooks(stages, x, codes, pseudo_rows=0.0, sweeps=500)
    g = _one_hot(codes, ksub)
    expected = g @ np.linalg.lstsq(g, x, rcond=None)[0]
    got = sum(stage.codebooks_[0][codes[:, s]] for s, stage in enumerate(stages))
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_a_codeword_no_row_uses_becomes_zero(rng):
    x = rng.standard_normal((50, 4)).astype(np.float32)
    stages = _stages(rng, 2, 4, 4)
    codes = rng.integers(0, 3, (50, 2))  # codeword 3 unused in both stages
    update_codebooks(stages, x, codes)
    assert all(not stage.codebooks_[0, 3].any() for stage in stages)


def test_update_rounds_lower_held_out_error_of_residual_stages(glove_split):
    train, test = glove_split
    mse = []
    for rounds in (0, 2):
        codec = QETQuantizer(50, m=1, nbits=6, levels=0, stages=4, beam=4, update_rounds=rounds).train(train)
        mse.append(relative_mse(test, codec.decode(codec.encode(test))))
    assert mse[1] < 0.99 * mse[0]


def test_update_rounds_need_full_width_stages():
    with pytest.raises(ValueError, match="full-width residual stages"):
        QETQuantizer(8, m=2, nbits=4, levels=0, stages=2, update_rounds=1)
    with pytest.raises(ValueError, match="full-width residual stages"):
        QETQuantizer(8, m=1, nbits=4, levels=1, stages=2, update_rounds=1)


def test_shared_stage_seeds_train_every_stage_as_the_first_is_trained(glove_split):
    """stage_seeds="shared" (FAISS ResidualQuantizer's rule): each stage's codebook is k-means
    with the first stage's seed on the residual the stages before it leave."""
    train = glove_split[0][:3000]
    codec = QETQuantizer(50, m=1, nbits=5, levels=0, stages=3, seed=7, stage_seeds="shared").train(train)
    assert codec.stage_seeds == "shared"
    residual, bounds = train.copy(), np.array([0, 50])
    for stage in codec.stages:
        expected = train_group_codebooks(residual, bounds, 32, seed=7)
        np.testing.assert_array_equal(stage.codebooks_, expected)
        codes = stage.encode(residual)[1]
        residual = residual - stage.decode_reordered(codes)
    distinct = QETQuantizer(50, m=1, nbits=5, levels=0, stages=3, seed=7)
    assert distinct.stage_seeds == "distinct"
    with pytest.raises(ValueError, match="stage_seeds"):
        QETQuantizer(50, m=1, stages=2, stage_seeds="same")


def test_io_keeps_stage_seeds_and_update_rounds(glove_split, tmp_path):
    train, test = glove_split
    codec = QETQuantizer(50, m=1, nbits=5, levels=0, stages=3, beam=2, stage_seeds="shared",
                         update_rounds=1).train(train[:4000])
    io.write_index(codec, tmp_path / "codec.qet")
    loaded = io.read_index(tmp_path / "codec.qet")
    assert (loaded.stage_seeds, loaded.update_rounds) == ("shared", 1)
    np.testing.assert_array_equal(loaded.encode(test), codec.encode(test))
    retrained = loaded.train(train[:4000])
    np.testing.assert_array_equal(retrained.encode(test), codec.encode(test))
