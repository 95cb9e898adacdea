"""Beam search over residual stages, against exhaustive search and greedy encoding."""
import itertools

import numpy as np
import pytest

import qetvec
from qetvec.stage import QETStage, decode_stages, encode_stages, fit_stages


def _trained(x, groups, ksubs, seed=0):
    stages = [QETStage(x.shape[1], m, k, 0, seed=seed + s) for s, (m, k) in enumerate(zip(groups, ksubs))]
    fit_stages(stages, x)
    return stages


def _exhaustive(stages, x):
    """Smallest squared error (n,) over every combination of every stage's group codes."""
    choices = [list(itertools.product(*[range(k) for k in st.ksubs])) for st in stages]
    best = np.full(len(x), np.inf)
    for combo in itertools.product(*choices):
        parts = [(np.zeros((len(x), 0), bool), np.tile(np.array(c), (len(x), 1))) for c in combo]
        best = np.minimum(best, ((x - decode_stages(stages, parts)) ** 2).sum(1))
    return best


@pytest.mark.parametrize("groups, ksubs, beam", [((1, 1), (8, 8), 8), ((2, 1), (4, 8), 16), ((1, 2, 1), (4, 3, 4), 36)])
def test_a_beam_as_wide_as_every_choice_finds_the_optimum(rng, groups, ksubs, beam):
    """A beam at least as wide as the number of partial encodings (every combination of the
    stages so far) keeps them all, so beam search equals exhaustive search."""
    x = rng.standard_normal((400, 6)).astype(np.float32)
    stages = _trained(x, groups, ksubs)
    err = ((x - decode_stages(stages, encode_stages(stages, x, beam))) ** 2).sum(1)
    np.testing.assert_allclose(err, _exhaustive(stages, x), rtol=1e-5, atol=1e-6)


def test_beam_one_is_greedy_and_wider_beams_do_no_worse(rng):
    x = rng.standard_normal((2000, 8)).astype(np.float32)
    stages = _trained(x, (1, 1, 1), (16, 16, 16))
    greedy = encode_stages(stages, x)
    err = {b: ((x - decode_stages(stages, encode_stages(stages, x, b))) ** 2).sum(1).mean() for b in (1, 4, 16)}
    for (_, ours), (_, theirs) in zip(encode_stages(stages, x, 1), greedy):
        np.testing.assert_array_equal(ours, theirs)
    assert err[16] <= err[4] <= err[1] and err[16] < 0.97 * err[1]


def test_codec_with_beam_beats_greedy_on_held_out_rows(glove_split):
    train, test = glove_split
    mse = {}
    for beam in (1, 8):
        q = qetvec.QETQuantizer(50, 1, nbits=8, levels=0, stages=4, beam=beam).train(train)
        mse[beam] = ((test - q.decode(q.encode(test))) ** 2).sum(1).mean()
    assert mse[8] < 0.95 * mse[1]


def test_beam_with_a_tree_is_refused():
    with pytest.raises(ValueError, match="beam=4 needs levels 0"):
        qetvec.QETQuantizer(8, 2, levels=1, stages=2, beam=4)
