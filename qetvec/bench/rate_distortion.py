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
