"""Distance to the limit: the distortion-rate functions that MSE tables are compared with.

`gaussian_rd_bound`: the distortion-rate function of a Gaussian source with the data's
covariance (reverse water-filling over its eigenvalues), codes only, no side information. A
Gaussian is the hardest source of a given covariance, so the data's own bound lies at or
below it; a code under this line exploits non-Gaussian structure.

`iid_gaussian_bound`: the same for i.i.d. Gaussian elements of one variance, sigma^2 4^-R
per element, i.e. 4^-R relative to the variance: what a code gets if it cannot use any
difference between the directions' variances.
"""
from __future__ import annotations

import numpy as np


def principal_axes(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean (d,), eigenvalues (d,) descending and >= 0, eigenvectors (d, d) as columns) of
    the covariance of x (n, d), float64."""
    mean = x.mean(axis=0, dtype=np.float64)
    centred = x - mean
    values, vectors = np.linalg.eigh(centred.T @ centred / len(x))
    order = np.argsort(values)[::-1]
    return mean, np.maximum(values[order], 0.0), vectors[:, order]


def gaussian_rd_bound(x: np.ndarray, bits_per_element: float) -> float:
    """Relative MSE of the Gaussian distortion-rate function at `bits_per_element` * d bits
    per row (reverse water-filling over the covariance eigenvalues of x (n, d); codes only)."""
    _, values, _ = principal_axes(x)
    rate = bits_per_element * x.shape[1]
    values = values[values > 0]
    lo, hi = 0.0, float(values.max())
    for _ in range(200):  # bisection on the water level theta
        theta = (lo + hi) / 2
        r = 0.5 * np.log2(np.maximum(values / theta, 1.0)).sum()
        lo, hi = (theta, hi) if r > rate else (lo, theta)
    theta = (lo + hi) / 2
    return float(np.minimum(values, theta).sum() / values.sum())


def iid_gaussian_bound(bits_per_element: float) -> float:
    """Relative MSE sigma^2 4^-R / sigma^2 = 4^-R of an i.i.d. Gaussian source at R bits per element."""
    return float(4.0 ** -bits_per_element)
