"""Numba kernels of `qetvec.transform`: the fast Walsh-Hadamard transform."""
from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, parallel=True)
def fwht_rows(x):
    """Each row of x (n, D) float64, D a power of two, times the normalized Sylvester Hadamard
    matrix H_D / sqrt(D) (symmetric and orthogonal, its own inverse), in place."""
    n, size = x.shape
    scale = 1.0 / np.sqrt(size)
    for i in numba.prange(n):
        h = 1
        while h < size:
            for start in range(0, size, 2 * h):
                for j in range(start, start + h):
                    a, b = x[i, j], x[i, j + h]
                    x[i, j], x[i, j + h] = a + b, a - b
            h *= 2
        for j in range(size):
            x[i, j] *= scale
