"""The textbook baseline for matrix compression.

Transform coder, every byte counted (the same whole-matrix budget as `compress_matrix`):

    x_hat = mean + B z_hat      B: the kept principal directions (d, p), entries stored at
                                `rotation_bits` bits with one float32 scale per direction;
                                z = least-squares coordinates of (x - mean) in B
    z_hat[:, i]                 uniform scalar quantizer of b_i bits per row (fixed-length
                                codes), its offset and step stored as two float32

Bits go to components by greedy reverse water-filling: each step buys the bit (or, for a
new component, its basis vector plus its first bit) with the largest error reduction per
stored bit, estimated from the component's variance, until the budget is spent. Step sizes
are the Gaussian-optimal uniform steps (Max, 1960), refined on the data.

The bound it is measured against is `qetvec.bench.rate_distortion.gaussian_rd_bound`.
"""
from __future__ import annotations

import numpy as np

from qetvec.transform import principal_axes

# optimal uniform quantizer step for a unit Gaussian, by bits (Max 1960)
GAUSSIAN_STEP = {1: 1.596, 2: 0.9957, 3: 0.5860, 4: 0.3352, 5: 0.1881, 6: 0.1041, 7: 0.0569,
                 8: 0.0308, 9: 0.0165, 10: 0.0088, 11: 0.0047, 12: 0.0025}
MAX_BITS = max(GAUSSIAN_STEP)


def _quantize_columns(b: np.ndarray, bits: int) -> np.ndarray:
    """Each column of b (d, p) rounded to `bits` bits on its own symmetric range."""
    scale = np.abs(b).max(axis=0) / (2 ** (bits - 1) - 1)
    return np.rint(b / scale) * scale


def _scalar_quantize(z: np.ndarray, bits: int) -> np.ndarray:
    """z (n,) through the best of a few uniform quantizers with 2**bits levels centred on
    z's mean, steps around the Gaussian-optimal one."""
    mu, sigma = z.mean(), z.std()
    levels = 2 ** bits
    best, best_err = z, np.inf
    for factor in (0.7, 0.85, 1.0, 1.2, 1.5):
        step = max(GAUSSIAN_STEP[bits] * sigma * factor, 1e-30)
        idx = np.clip(np.floor((z - mu) / step + levels / 2), 0, levels - 1)
        z_hat = mu + (idx - levels / 2 + 0.5) * step
        err = ((z - z_hat) ** 2).sum()
        if err < best_err:
            best, best_err = z_hat, err
    return best


def _allocate(variances: np.ndarray, n: int, d: int, budget_bits: float, rotation_bits: int) -> np.ndarray:
    """Integer bits per component (p,) by greedy reverse water-filling under the budget."""
    bits = np.zeros(len(variances), dtype=np.int64)
    first_cost = n + d * rotation_bits + 32 + 64  # first bit, basis vector, its scale, quantizer
    spent = 0.0
    while True:
        distortion = variances * 4.0 ** -bits.astype(float)
        gain = distortion * 0.75  # one more bit divides a component's error by 4
        cost = np.where(bits == 0, first_cost, n).astype(float)
        ratio = np.where((bits < MAX_BITS) & (spent + cost <= budget_bits), gain / cost, -1.0)
        best = int(np.argmax(ratio))
        if ratio[best] <= 0:
            return bits
        spent += cost[best]
        bits[best] += 1


def transform_code(x: np.ndarray, budget_bytes: int, rotation_bits: int = 8) -> tuple[np.ndarray, int]:
    """(x_hat (n, d) float32, bytes stored) of the transform coder under `budget_bytes`."""
    n, d = x.shape
    mean = x.mean(axis=0, dtype=np.float64)
    axes, variances = principal_axes(x)
    budget_bits = 8 * budget_bytes - 32 * d  # the mean, float32
    bits = _allocate(variances, n, d, budget_bits, rotation_bits)
    kept = np.flatnonzero(bits)
    basis = _quantize_columns(axes[kept].T, rotation_bits)
    z = (x - mean) @ np.linalg.pinv(basis).T  # (n, p), least squares: basis is near-orthogonal
    z_hat = np.stack([_scalar_quantize(z[:, i], int(bits[k])) for i, k in enumerate(kept)], axis=1) \
        if len(kept) else np.zeros((n, 0))
    x_hat = (mean + z_hat @ basis.T).astype(np.float32)
    stored_bits = 32 * d + len(kept) * (d * rotation_bits + 32 + 64) + n * int(bits.sum())
    return x_hat, (stored_bits + 7) // 8
