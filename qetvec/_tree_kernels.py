"""Numba kernels of the entanglement tree: every level of every row in one pass.

A tree is given as flat pair arrays over all levels, level l being pairs
level_ptr[l]:level_ptr[l + 1] of (first, second, low, high) (see `qetvec.tree.TreeLevel`);
pair p is also swap bit p of a row. Rows are independent, so the kernels run in parallel
over rows, each with one row of scratch.
"""
from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, parallel=True)
def apply_levels(x, first, second, low, high, level_ptr):
    """(y (n, d) float32, bits (n, pairs) bool): each level compares the pairs of the level
    before's output; the smaller value goes to `low`, the larger to `high`."""
    n, d = x.shape
    y = np.empty_like(x)
    bits = np.empty((n, first.shape[0]), np.bool_)
    for i in numba.prange(n):
        row = x[i].copy()
        out = np.empty(d, x.dtype)
        for level in range(level_ptr.shape[0] - 1):
            out[:] = row  # unpaired columns stay where they are
            for p in range(level_ptr[level], level_ptr[level + 1]):
                a, b = row[first[p]], row[second[p]]
                swap = a > b
                bits[i, p] = swap
                out[low[p]] = b if swap else a
                out[high[p]] = a if swap else b
            row, out = out, row
        y[i] = row
    return y, bits


@numba.njit(cache=True, parallel=True)
def unpermute_levels(y, bits, first, second, low, high, level_ptr):
    """Rows (n, d) restored from the reordered y (n, d) and their swap bits (n, pairs), last
    level first."""
    n, d = y.shape
    x = np.empty_like(y)
    for i in numba.prange(n):
        row = y[i].copy()
        out = np.empty(d, y.dtype)
        for level in range(level_ptr.shape[0] - 2, -1, -1):
            out[:] = row
            for p in range(level_ptr[level], level_ptr[level + 1]):
                lo, hi = row[low[p]], row[high[p]]
                swap = bits[i, p]
                out[first[p]] = hi if swap else lo
                out[second[p]] = lo if swap else hi
            row, out = out, row
        x[i] = row
    return x

