"""Numba kernels of the bit layout (pack, unpack, read one field); the scan kernels are in
`qetvec._scan_kernels`. The Python layer validates and shapes; these loops only compute.

Bit order everywhere: bit t of a bit stream is bit (t % 8) of byte t // 8 (LSB first), and
a field of width w holds its value's bit b at stream bit (offset + b).
"""
from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def pack_fields(values, offsets, widths, row_stride_bits, out):
    """Write values[i, j] (n, f) int64 into the zeroed bit stream `out` (uint8, 1-D) at bit
    i * row_stride_bits + offsets[j], widths[j] bits each.

    Serial on purpose: with a stride that is not a multiple of 8 (matrix mode) two rows
    share a byte, and parallel writers would race."""
    n, f = values.shape
    for i in range(n):
        base = i * row_stride_bits
        for j in range(f):
            v = values[i, j]
            w = widths[j]
            pos = base + offsets[j]
            while w > 0:
                byte = pos >> 3
                shift = pos & 7
                take = min(8 - shift, w)
                out[byte] |= np.uint8(((v & ((1 << take) - 1)) << shift) & 0xFF)
                v >>= take
                pos += take
                w -= take


@numba.njit(cache=True, parallel=True)
def unpack_fields(stream, offsets, widths, row_stride_bits, n):
    """Inverse of `pack_fields`: return values (n, f) int64 read from the uint8 stream."""
    f = offsets.shape[0]
    values = np.empty((n, f), dtype=np.int64)
    for i in numba.prange(n):
        base = i * row_stride_bits
        for j in range(f):
            w = widths[j]
            pos = base + offsets[j]
            v = 0
            got = 0
            while got < w:
                byte = pos >> 3
                shift = pos & 7
                take = min(8 - shift, w - got)
                v |= ((np.int64(stream[byte]) >> shift) & ((1 << take) - 1)) << got
                got += take
                pos += take
            values[i, j] = v
    return values


@numba.njit(cache=True, inline="always")
def read_bits(codes, row, bit, width):
    """Value of the `width`-bit field at bit offset `bit` of codes[row] (LSB first)."""
    byte = bit >> 3
    shift = bit & 7
    need = (shift + width + 7) >> 3
    v = np.int64(0)
    for t in range(need):
        v |= np.int64(codes[row, byte + t]) << (8 * t)
    return (v >> shift) & ((1 << width) - 1)
