"""Bit allocation: how many bits each component (or column group) of a code gets.

Reverse water-filling (Cover & Thomas, Theorem 10.3.3) is the closed form for independent
Gaussian components of variances s_i under a total rate R bits: each component is coded with
distortion D_i = min(theta, s_i), rate R_i = max(0, log2(s_i / theta) / 2), the water level
theta set so that sum_i R_i = R. It also gives the Gaussian rate-distortion bound of a
covariance (`gaussian_distortion`).

Real quantizers are not Gaussian-optimal, so codecs allocate whole bits on *measured*
distortion curves instead (`greedy_allocation`): each step buys the increment with the
largest distortion drop per bit, along each curve's lower convex hull (Shoham & Gersho 1988),
which is optimal at every budget the hull points reach.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

BISECTION_STEPS = 200


def water_level(variances: np.ndarray, total_bits: float) -> float:
    """theta with sum_i max(0, log2(variances_i / theta) / 2) = total_bits, for variances (d,)
    >= 0 (bisection; max(variances) when total_bits is 0)."""
    values = np.asarray(variances, np.float64)
    values = values[values > 0]
    if total_bits < 0:
        raise ValueError(f"total_bits must be >= 0, got {total_bits}")
    if not len(values):
        return 0.0
    lo, hi = 0.0, float(values.max())
    for _ in range(BISECTION_STEPS):
        theta = (lo + hi) / 2
        rate = 0.5 * np.log2(np.maximum(values / theta, 1.0)).sum()
        lo, hi = (theta, hi) if rate > total_bits else (lo, theta)
    return (lo + hi) / 2


def reverse_water_filling(variances: np.ndarray, total_bits: float) -> tuple[np.ndarray, np.ndarray]:
    """(rates (d,) float64 bits, distortions (d,) float64) of independent Gaussian components
    of variances (d,) under total_bits: D_i = min(theta, s_i), R_i = max(0, log2(s_i/theta)/2)."""
    values = np.asarray(variances, np.float64)
    theta = water_level(values, total_bits)
    distortions = np.minimum(values, theta)
    with np.errstate(divide="ignore"):
        rates = np.where(values > theta, 0.5 * np.log2(values / max(theta, 1e-300)), 0.0)
    return rates, distortions


def gaussian_distortion(variances: np.ndarray, total_bits: float) -> float:
    """The distortion-rate function D(R) (sum of squared errors per vector) of a Gaussian
    vector with these covariance eigenvalues (d,) at total_bits bits per vector."""
    return float(reverse_water_filling(variances, total_bits)[1].sum())


def _hull_steps(curve: np.ndarray) -> list[tuple[int, int, float]]:
    """Increments (from_bits, to_bits, drop per bit) along the lower convex hull of
    curve[b] (distortion at b bits), drops per bit non-increasing."""
    hull = [0]
    for b in range(1, len(curve)):
        while len(hull) >= 2:
            a, c = hull[-2], hull[-1]  # drop c if it lies on or above the chord a -> b
            if (curve[c] - curve[a]) * (b - a) >= (curve[b] - curve[a]) * (c - a):
                hull.pop()
            else:
                break
        hull.append(b)
    return [(a, b, (curve[a] - curve[b]) / (b - a)) for a, b in zip(hull[:-1], hull[1:])
            if curve[b] < curve[a]]


def greedy_allocation(curves: Sequence[np.ndarray], budget_bits: int,
                      bits_cost: Sequence[int] | None = None) -> np.ndarray:
    """Bits per component (G,) int64 spending at most budget_bits.

    curves[g][b]: measured distortion of component g at b bits (b = 0 .. len - 1);
    bits_cost[g]: bits one unit of b costs for g (default 1). Steps along each curve's lower
    convex hull are bought by largest distortion drop per bit spent; a step that does not fit
    the remaining budget is skipped and cheaper ones are still taken."""
    costs = np.ones(len(curves), np.int64) if bits_cost is None else np.asarray(bits_cost, np.int64)
    steps = [(rate / costs[g], g, a, b) for g, curve in enumerate(curves)
             for a, b, rate in _hull_steps(np.asarray(curve, np.float64))]
    steps.sort(key=lambda s: -s[0])
    bits = np.zeros(len(curves), np.int64)
    left = int(budget_bits)
    for _, g, a, b in steps:  # per curve, hull steps arrive in order (their rates decrease)
        price = (b - a) * costs[g]
        if bits[g] == a and price <= left:
            bits[g], left = b, left - price
    return bits
