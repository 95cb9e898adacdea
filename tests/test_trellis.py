"""Trellis-coded quantization against brute force and the trellis's own parity check."""
import itertools

import numpy as np
import pytest

from qetvec.trellis import STATES, UNGERBOECK_1D, next_state_table, union_parities, viterbi, viterbi_grid


def _paths(levels_per_position, table):
    """Every level-index sequence the trellis allows from state 0 (brute force)."""
    for seq in itertools.product(*[range(k) for k in levels_per_position]):
        state, ok = 0, True
        for k in seq:
            if (k & 1) != (state & 1):
                ok = False
                break
            state = table[state, (k >> 1) & 1]
        if ok:
            yield seq


@pytest.mark.parametrize("states", [4, 8, 32])
def test_viterbi_finds_the_nearest_allowed_sequence(states, rng):
    table = next_state_table(states)
    for _ in range(6):
        sizes = [8, 4, 8, 12]
        levels = [np.sort(rng.standard_normal(k) * 2) for k in sizes]
        y = rng.standard_normal((1, len(sizes))) * 2
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        k = viterbi(y, offsets, np.concatenate(levels), states)[0]
        error = lambda seq: sum((y[0, t] - levels[t][j]) ** 2 for t, j in enumerate(seq))  # noqa: E731
        best = min(error(seq) for seq in _paths(sizes, table))
        assert error(k) == pytest.approx(best, abs=1e-12)
        assert tuple(k) in set(_paths(sizes, table))


@pytest.mark.parametrize("states", STATES)
def test_every_path_satisfies_the_parity_check(states, rng):
    """The trellis is Ungerboeck's code: sum_k h0_k z0_(t-k) ^ h1_k z1_(t-k) = 0 at every t
    (z0 = union bit, z1 = subset bit), checked on random paths from state 0."""
    nu = states.bit_length() - 1
    h1, h0 = UNGERBOECK_1D[nu]
    table = next_state_table(states)
    for _ in range(20):
        state, z0s, z1s = 0, [], []
        for _ in range(40):
            z0, z1 = state & 1, int(rng.integers(2))
            z0s.append(z0)
            z1s.append(z1)
            state = table[state, z1]
        for t in range(len(z0s)):
            parity = 0
            for k in range(nu + 1):
                if t - k >= 0:
                    parity ^= (((h0 >> k) & 1) & z0s[t - k]) ^ (((h1 >> k) & 1) & z1s[t - k])
            assert parity == 0


def test_decoder_recovers_the_levels_from_union_indexes(rng):
    levels = np.tile(np.arange(16, dtype=np.float64), 30)
    y = rng.uniform(0, 15, (50, 30))
    k = viterbi(y, np.arange(31) * 16, levels, 8).astype(np.int64)
    u = union_parities(k >> 1, 8)
    np.testing.assert_array_equal(2 * (k >> 1) + u, k)


@pytest.mark.parametrize("states", [8, 256])
def test_grid_kernel_equals_the_general_one(states, rng):
    z = rng.standard_normal((200, 24)) * 4
    low = 4 * np.floor(z.min(axis=0) / 4).astype(np.int64) - 4
    high = 4 * np.ceil(z.max(axis=0) / 4).astype(np.int64) + 4
    grid = np.concatenate([np.arange(a, b, dtype=np.float64) for a, b in zip(low, high)])
    general = viterbi(z, np.concatenate([[0], np.cumsum(high - low)]), grid, states) + low
    np.testing.assert_array_equal(viterbi_grid(z, low, high, states), general)


def test_granular_gain_grows_with_the_states(rng):
    """On a uniform source far from the codebook's edges TCQ's error falls below the scalar
    quantizer's of the same rate (step 2 per union codebook: 4/12) by its granular gain,
    about 1 dB for 8 states and more for 256 (the limit is 1.53 dB)."""
    y = rng.uniform(8, 56, (2000, 64))
    levels = np.tile(np.arange(64, dtype=np.float64), 64)
    gains = {s: 10 * np.log10((4 / 12) / ((y - viterbi(y, np.arange(65) * 64, levels, s)) ** 2).mean())
             for s in (8, 256)}
    assert 0.9 < gains[8] < gains[256] < 1.53


def test_bad_level_lists_are_refused():
    with pytest.raises(ValueError, match="at least 4 levels"):
        viterbi(np.zeros((1, 2)), np.array([0, 4, 6]), np.arange(6.0), 8)
    with pytest.raises(ValueError, match="states must be one of"):
        next_state_table(6)


@pytest.mark.parametrize("bits", [2, 3])
def test_fixed_rate_tcq_gains_about_a_decibel_over_lloyd_max(bits, rng):
    """Memoryless unit Gaussian at b bits per sample: Lloyd-Max gives 9.30 / 14.62 dB (Max
    1960); 8-state TCQ with Lloyd-Max (b + 1)-bit codebooks about 1 dB more (Marcellin &
    Fischer 1990: 10.4 / 15.8 dB)."""
    from qetvec.matrix.fixed_rate import FixedRateSettings, fit
    y = rng.standard_normal((3000, 64))
    snr = {}
    for states in (0, 8):
        levels = 2 ** (bits + (1 if states else 0))
        budget = bits * y.size + 8 * 64 + 16 * levels * 64 + 7  # codes, bits array, float16 levels
        coded = fit(y, budget, FixedRateSettings(states))
        assert set(coded.bits.tolist()) == {bits}
        snr[states] = -10 * np.log10(((y - coded.decode()) ** 2).mean())
    assert snr[0] == pytest.approx({2: 9.30, 3: 14.62}[bits], abs=0.15)
    assert snr[8] - snr[0] > 0.8
