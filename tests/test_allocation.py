"""Bit allocation against closed forms: reverse water-filling and the convex-hull greedy."""
import itertools

import numpy as np
import pytest

from qetvec.allocation import gaussian_distortion, greedy_allocation, reverse_water_filling


def test_water_filling_matches_the_closed_form_on_a_diagonal_gaussian():
    """Variances 4, 1, 1/16 at 3 bits: theta = 1/4, since log2(4 / (1/4)) / 2 + log2(1 / (1/4)) / 2
    = 2 + 1 = 3; the last component lies below the water, gets no bits and keeps its variance."""
    rates, distortions = reverse_water_filling(np.array([4.0, 1.0, 1 / 16]), 3.0)
    np.testing.assert_allclose(rates, [2.0, 1.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(distortions, [0.25, 0.25, 1 / 16], atol=1e-9)


@pytest.mark.parametrize("bits", [0.5, 4.0, 17.0])
def test_water_filling_spends_exactly_the_rate_and_equalizes_distortion(bits):
    variances = np.geomspace(10.0, 0.01, 12)
    rates, distortions = reverse_water_filling(variances, bits)
    assert rates.sum() == pytest.approx(bits, abs=1e-6)
    coded = rates > 0
    np.testing.assert_allclose(distortions[coded], distortions[coded][0], rtol=1e-6)
    np.testing.assert_allclose(distortions[~coded], variances[~coded])
    # each coded component follows the Gaussian D(R) = s 4^-R
    np.testing.assert_allclose(distortions[coded], variances[coded] * 4.0 ** -rates[coded], rtol=1e-6)


def test_gaussian_distortion_of_equal_variances_is_four_to_the_minus_rate():
    assert gaussian_distortion(np.full(8, 2.0), 8 * 1.5) == pytest.approx(8 * 2.0 * 4 ** -1.5, rel=1e-6)


def _brute_force(curves, budget, costs):
    best = None
    for bits in itertools.product(*[range(len(c)) for c in curves]):
        if sum(b * k for b, k in zip(bits, costs)) <= budget:
            total = sum(c[b] for c, b in zip(curves, bits))
            best = total if best is None else min(best, total)
    return best


@pytest.mark.parametrize("budget", [0, 3, 7, 12])
def test_greedy_allocation_is_optimal_on_convex_curves(budget):
    """Gaussian-like convex curves s 4^-b: the greedy equals exhaustive search."""
    curves = [s * 4.0 ** -np.arange(6) for s in (5.0, 1.0, 0.3)]
    bits = greedy_allocation(curves, budget)
    assert bits.sum() <= budget
    assert sum(c[b] for c, b in zip(curves, bits)) == pytest.approx(_brute_force(curves, budget, [1, 1, 1]))


def test_greedy_allocation_jumps_over_a_non_convex_step():
    """A curve whose first bit buys little and second much: the hull goes 0 -> 2 directly,
    so with 2 bits the greedy takes both there (a bit-by-bit greedy would spend them elsewhere)."""
    curves = [np.array([10.0, 9.5, 1.0]), np.array([4.0, 1.0, 0.9])]
    np.testing.assert_array_equal(greedy_allocation(curves, 2), [2, 0])
    assert _brute_force(curves, 2, [1, 1]) == pytest.approx(1.0 + 4.0)


def test_greedy_allocation_weighs_bits_by_their_cost():
    """Equal drops, but component 0's bits cost 3 each: with 3 bits, component 1 gets all."""
    curves = [np.array([8.0, 4.0, 2.0, 1.0])] * 2
    np.testing.assert_array_equal(greedy_allocation(curves, 3, bits_cost=[3, 1]), [0, 3])
