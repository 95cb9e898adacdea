"""The one bit layout of a QET code, used by encode, decode, ADC and storage.

A row's code is a bit stream, LSB first (bit t is bit t % 8 of byte t // 8). Stages follow
each other; inside a stage the swap record comes first, then the group codes:

    bit 0                                                                     row_bits
    | swaps s0 (T0 x 1) | codes s0 (m0 x w0) | swaps s1 (T1 x 1) | codes s1 (m1 x w1) | ... | pad |

    T_s = swap bits of stage s's tree (level by level, see `qetvec.tree`)
    w_s = ceil(log2 ksub) bits per group code (0 for a group with a single codeword); the
          groups of a stage may differ in width (per-group bit allocation)

Vector mode pads every row to whole bytes: code_size = ceil(row_bits / 8) and codes are a
uint8 array (n, code_size). Matrix mode concatenates rows without padding (one stream of
ceil(n * row_bits / 8) bytes), as the paper's budget counts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from qetvec import _kernels


@dataclass(frozen=True)
class StageFields:
    """Where one stage's fields sit in a row: its swap run, then group g's code at bit
    code_offsets[g], code_widths[g] bits wide."""

    swap_offset: int
    n_swap: int
    code_offsets: tuple[int, ...]
    code_widths: tuple[int, ...]

    @property
    def m(self) -> int:
        return len(self.code_widths)


class CodeLayout:
    """Field offsets and widths for a sequence of stages given as (n_swap, m, width), width
    one int for every group or a sequence of m per-group widths."""

    def __init__(self, stages: Sequence[tuple[int, int, int | Sequence[int]]]):
        self.stages: list[StageFields] = []
        offsets, widths, bit = [], [], 0
        for n_swap, m, width in stages:
            group_widths = [int(width)] * m if np.ndim(width) == 0 else [int(w) for w in width]
            if len(group_widths) != m:
                raise ValueError(f"{len(group_widths)} group widths for m={m} groups")
            starts = bit + n_swap + np.concatenate([[0], np.cumsum(group_widths)[:-1]]).astype(int)
            fields = StageFields(bit, n_swap, tuple(int(a) for a in starts), tuple(group_widths))
            self.stages.append(fields)
            offsets += list(range(bit, bit + n_swap)) + list(fields.code_offsets)
            widths += [1] * n_swap + group_widths
            bit += n_swap + sum(group_widths)
        self.row_bits = bit
        self.code_size = (bit + 7) // 8
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.widths = np.asarray(widths, dtype=np.int64)

    def pack(self, values: np.ndarray, row_stride_bits: int | None = None) -> np.ndarray:
        """Pack field values (n, fields) int64 into a stream.

        Vector mode (default): uint8 (n, code_size). Matrix mode (`row_stride_bits` =
        row_bits): a flat uint8 stream of ceil(n * row_bits / 8) bytes."""
        n = len(values)
        if row_stride_bits is None:
            out = np.zeros((n, self.code_size), dtype=np.uint8)
            _kernels.pack_fields(values, self.offsets, self.widths, 8 * self.code_size, out.reshape(-1))
            return out
        out = np.zeros((n * row_stride_bits + 7) // 8, dtype=np.uint8)
        _kernels.pack_fields(values, self.offsets, self.widths, row_stride_bits, out)
        return out

    def unpack(self, stream: np.ndarray, n: int, row_stride_bits: int | None = None) -> np.ndarray:
        """Read field values (n, fields) int64 back from `pack`'s output."""
        stride = 8 * self.code_size if row_stride_bits is None else row_stride_bits
        return _kernels.unpack_fields(stream.reshape(-1), self.offsets, self.widths, stride, n)

    def split(self, values: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Cut unpacked values (n, fields) into per-stage (swap bits (n, T) bool, codes (n, m))."""
        out, col = [], 0
        for s in self.stages:
            bits = values[:, col:col + s.n_swap].astype(bool)
            codes = values[:, col + s.n_swap:col + s.n_swap + s.m]
            out.append((bits, codes))
            col += s.n_swap + s.m
        return out
