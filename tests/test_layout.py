"""Bit packing round-trips for every code width, in both vector and matrix mode."""
import numpy as np
import pytest

from qetvec.layout import CodeLayout


@pytest.mark.parametrize("nbits", range(1, 17))
def test_pack_round_trip_every_width(nbits, rng):
    layout = CodeLayout([(7, 5, nbits), (0, 3, nbits)])
    values = np.concatenate([rng.integers(0, 2, (100, 7)), rng.integers(0, 2 ** nbits, (100, 8))], axis=1)
    codes = layout.pack(values)
    assert codes.dtype == np.uint8 and codes.shape == (100, (7 + 8 * nbits + 7) // 8)
    np.testing.assert_array_equal(layout.unpack(codes, 100), values)
    stream = layout.pack(values, row_stride_bits=layout.row_bits)  # matrix mode: no row padding
    assert len(stream) == (100 * layout.row_bits + 7) // 8
    np.testing.assert_array_equal(layout.unpack(stream, 100, row_stride_bits=layout.row_bits), values)


def test_fields_are_lsb_first():
    layout = CodeLayout([(2, 1, 4)])  # bits: s0 s1 c0 c1 c2 c3
    codes = layout.pack(np.array([[1, 0, 0b1011]]))
    assert codes.tolist() == [[0b101101]]
