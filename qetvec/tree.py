"""The entanglement tree: a lossless, recorded compare-and-swap reordering of each row.

Level 1 pairs columns (0,1), (2,3), ... of the whole row; the smaller value of pair i goes
to position i of the left half, the larger to position i of the right half, and one bit per
pair records whether the pair was swapped (bit = 1 when the first column held the larger
value). Each further level does the same inside every segment of the level before, so after
L levels the columns form a binary tree of "smaller"/"larger" segments. Every level compares
the output of the level before (never the original row): that is what sorts by rank.

Odd segment lengths are handled, not refused: a segment of length s has s // 2 pairs; the
left child gets the s // 2 minima, the right child the s // 2 maxima followed by the
unpaired last column, which stays where it is. Example, d = 5, one level:

    input   x0 x1 | x2 x3 | x4          pairs (0,1), (2,3); x4 unpaired
    output  min01 min23 | max01 max23 x4

Swap bits are numbered level by level, segment by segment, pair by pair; this is the order
they are stored in a code (see `qetvec.layout`), and it keeps the bits a column group
depends on in a few contiguous runs, which the ADC scan relies on.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qetvec import _tree_kernels
from qetvec.metric import PARALLEL_MIN_ROWS, serial_if


@dataclass(frozen=True)
class TreeLevel:
    """Index arrays of one level, all of shape (pairs,), int64: pair i compares input
    positions first[i] and second[i] and writes its min to low[i], its max to high[i]."""

    first: np.ndarray
    second: np.ndarray
    low: np.ndarray
    high: np.ndarray


class EntanglementTree:
    """Swap tree of depth `levels` over `d` columns (levels = 0 is the identity)."""

    def __init__(self, d: int, levels: int):
        if levels < 0:
            raise ValueError(f"levels must be >= 0, got {levels}")
        self.d = d
        self.levels = levels
        self.layers: list[TreeLevel] = []
        segments = [(0, d)]
        for level in range(levels):
            first, second, low, high, children = [], [], [], [], []
            for start, length in segments:
                pairs = length // 2
                idx = np.arange(pairs)
                first.append(start + 2 * idx)
                second.append(start + 2 * idx + 1)
                low.append(start + idx)
                high.append(start + pairs + idx)
                children += [(start, pairs), (start + pairs, length - pairs)]
            if not any(length >= 2 for _, length in segments):
                raise ValueError(
                    f"levels={levels} is too deep for d={d}: level {level + 1} has no pair left")
            self.layers.append(TreeLevel(*(np.concatenate(a).astype(np.int64)
                                           for a in (first, second, low, high))))
            segments = children
        flat = [np.concatenate([getattr(layer, f) for layer in self.layers] or [np.zeros(0, np.int64)])
                for f in ("first", "second", "low", "high")]
        level_ptr = np.cumsum([0] + [len(layer.first) for layer in self.layers]).astype(np.int64)
        self._kernel_args = (*flat, level_ptr)  # every level's pairs, for the numba kernels

    @property
    def n_bits(self) -> int:
        """Swap bits per row: the number of pairs summed over levels."""
        return sum(len(layer.first) for layer in self.layers)

    def apply(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Reorder rows of x (n, d) float32; return (y (n, d) float32, bits (n, n_bits) bool).

        Each level compares the pairs of the level before's output (not of x), so the halves
        hold values of similar rank (numba, parallel over rows)."""
        if not self.n_bits:  # no levels: nothing to reorder (a one-row add skips the kernel)
            return np.array(x, order="C"), np.zeros((len(x), 0), dtype=bool)
        with serial_if(len(x) < PARALLEL_MIN_ROWS):
            return _tree_kernels.apply_levels(np.ascontiguousarray(x), *self._kernel_args)

    def permute(self, x: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """Apply recorded swaps `bits` (n, n_bits) to rows of x (n, d); any dtype.

        Used for data (where bits come from the data itself) and for queries, which ADC
        permutes the way each stored row was permuted: <q, unpermute(y)> = <permute(q), y>.
        """
        y = x.copy()
        offset = 0
        for layer in self.layers:
            swap = bits[:, offset:offset + len(layer.first)]
            a, b = y[:, layer.first], y[:, layer.second]
            y[:, layer.low] = np.where(swap, b, a)
            y[:, layer.high] = np.where(swap, a, b)
            offset += len(layer.first)
        return y

    def unpermute(self, y: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """Undo `permute`: restore rows (n, d) from the reordered y, last level first."""
        if not self.n_bits:
            return np.array(y, order="C")
        with serial_if(len(y) < PARALLEL_MIN_ROWS):
            return _tree_kernels.unpermute_levels(np.ascontiguousarray(y), np.ascontiguousarray(bits),
                                                  *self._kernel_args)

    def dependencies(self) -> list[list[int]]:
        """For each output position j, the sorted swap-bit indices that decide which input
        column lands at j (2**levels - 1 bits at most)."""
        deps: list[frozenset[int]] = [frozenset()] * self.d
        offset = 0
        for layer in self.layers:
            new = list(deps)
            for i, (a, b, lo, hi) in enumerate(zip(layer.first, layer.second, layer.low, layer.high)):
                new[lo] = new[hi] = deps[a] | deps[b] | {offset + i}
            deps = new
            offset += len(layer.first)
        return [sorted(s) for s in deps]
