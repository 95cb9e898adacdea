"""Entropy-coded coefficients: the decoder returns exactly what the quantizer chose."""
import numpy as np
import pytest

from qetvec.matrix.entropy_coded import OFFSET_UNITS, EntropySettings, encode, quantize
from qetvec.trellis import next_state_table


@pytest.mark.parametrize("states", [0, 8])
@pytest.mark.parametrize("classes_per_octave", [0, 2])
def test_decode_returns_the_quantizers_levels_and_offsets(states, classes_per_octave, rng):
    y = rng.laplace(size=(300, 12)) * np.geomspace(4, 0.005, 12)
    settings = EntropySettings(states, classes_per_octave, block_rows=64)
    step = 0.1
    q = quantize(y, step, settings)
    coded = encode(q, step, *y.shape, settings)
    kept = np.flatnonzero(q.classes >= 0)
    assert 0 < len(kept) < 12  # the smallest components are not coded
    expected = np.zeros_like(y)
    for col, j in enumerate(kept):  # written out: level, plus its table's offset for the symbol
        for i in range(len(y)):
            t = q.ids[i, col]
            expected[i, j] = q.index[i, col] + q.offsets[t][q.symbols[i, col] - q.tables.low[t]] / OFFSET_UNITS
    np.testing.assert_array_equal(coded.decode(), expected * np.float32(step))
    if states:  # the index path walks the trellis: each level's parity is its state's
        table, state = next_state_table(states), np.zeros(len(y), np.int64)
        for col in range(len(kept)):
            assert ((q.index[:, col] & 1) == (state & 1)).all()
            state = table[state, (q.index[:, col] >> 1) & 1]
    # the centroid offsets lower the error of the plain levels
    plain = np.zeros_like(y)
    plain[:, kept] = q.index * np.float32(step)
    assert ((y - coded.decode()) ** 2).sum() < ((y - plain) ** 2).sum()
