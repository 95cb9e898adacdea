"""Distance to the limit: the distortion-rate functions that MSE tables are compared with.

`gaussian_rd_bound`: the distortion-rate function of a Gaussian source with the data's
covariance (reverse water-filling over its eigenvalues, `qetvec.allocation`), codes only, no
side information. A Gaussian is the hardest source of a given covariance, so the data's own
bound lies at or below it; a code under this line exploits non-Gaussian structure.

`iid_gaussian_bound`: the same for i.i.d. Gaussian elements of one variance, sigma^2 4^-R
per element, i.e. 4^-R relative to the variance: what a code gets if it cannot use any
difference between the directions' variances.
"""
from __future__ import annotations

import numpy as np

from qetvec.allocation import gaussian_distortion
from qetvec.transform import principal_axes


def gaussian_rd_bound(x: np.ndarray, bits_per_element: float) -> float:
    """Relative MSE of the Gaussian distortion-rate function at `bits_per_element` * d bits
    per row (reverse water-filling over the covariance eigenvalues of x (n, d); codes only)."""
    variances = principal_axes(x)[1]
    return gaussian_distortion(variances, bits_per_element * x.shape[1]) / float(variances.sum())


def iid_gaussian_bound(bits_per_element: float) -> float:
    """Relative MSE sigma^2 4^-R / sigma^2 = 4^-R of an i.i.d. Gaussian source at R bits per element."""
    return float(4.0 ** -bits_per_element)


def matrix_rd_bound(x: np.ndarray, bits_per_element: float) -> tuple[float, str]:
    """(bound, side) for a whole matrix x (n, d) at bits_per_element * n * d bits in all: the
    Gaussian distortion-rate function of the covariance of the side whose covariance can have
    full rank (the rows as samples, d x d, when n >= d; else the columns, n x n: with n < d
    the rows' covariance has rank < n and the bound collapses), its total squared error
    divided by the matrix's own ||x - mean of the rows||^2 (`relative_mse`'s denominator).
    side names the side and the covariance's numerical rank."""
    n, d = x.shape
    samples = x if n >= d else x.T
    variances = principal_axes(samples)[1]
    total = len(samples) * gaussian_distortion(variances, bits_per_element * samples.shape[1])
    x64 = x.astype(np.float64)
    rank = int((variances > 1e-10 * variances.max(initial=0.0)).sum())
    side = f"rows (covariance {d}x{d}, rank {rank})" if n >= d else f"columns (covariance {n}x{n}, rank {rank})"
    return float(total / ((x64 - x64.mean(axis=0)) ** 2).sum()), side
