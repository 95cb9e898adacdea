"""Lloyd-Max scalar quantizers against Max's (1960) table and the Lloyd conditions."""
import numpy as np
import pytest

from qetvec.scalar import gaussian_distortion, gaussian_lloyd_max, lloyd_max, lloyd_max_curve, quantize

# Max (1960), Table I: mean squared error of the optimum quantizer of a unit Gaussian and its
# largest output level, at 2, 4, 8, 16 levels. (Max's 16-level error, 0.009497, is 0.04 %
# below the exact optimum; quadrature of the same levels gives 0.009501.)
MAX_TABLE = {1: (0.3634, 0.7979), 2: (0.1175, 1.510), 3: (0.03454, 2.152), 4: (0.009497, 2.733)}


@pytest.mark.parametrize("bits", sorted(MAX_TABLE))
def test_gaussian_levels_reproduce_max_table(bits):
    distortion, top = MAX_TABLE[bits]
    levels = gaussian_lloyd_max(bits)
    assert gaussian_distortion(levels) == pytest.approx(distortion, rel=1e-3)
    assert levels[-1] == pytest.approx(top, abs=1e-3)
    np.testing.assert_allclose(levels, -levels[::-1], atol=1e-12)


def test_gaussian_distortion_agrees_with_monte_carlo(rng):
    x = rng.standard_normal(2_000_000)
    levels = gaussian_lloyd_max(3)
    assert ((x - levels[quantize(x, levels)]) ** 2).mean() == pytest.approx(gaussian_distortion(levels), rel=0.01)


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_levels_from_gaussian_samples_approach_the_textbook(bits, rng):
    x = rng.standard_normal(400_000)
    levels = lloyd_max(x, bits)
    mse = ((x - levels[quantize(x, levels)]) ** 2).mean()
    assert mse == pytest.approx(MAX_TABLE[bits][0], rel=0.02)
    np.testing.assert_allclose(levels, gaussian_lloyd_max(bits), atol=0.06)  # outer levels: few samples


def test_data_levels_meet_both_lloyd_conditions(rng):
    """Each level is the mean of the samples nearest to it (and nearest means midpoint
    thresholds, which `quantize` applies): a fixed point of Lloyd's iteration."""
    x = rng.laplace(size=50_000)
    levels = lloyd_max(x, 3)
    index = quantize(x, levels)
    means = np.array([x[index == k].mean() for k in range(len(levels))])
    np.testing.assert_allclose(levels, means, atol=1e-9)
    brute = np.abs(x[:, None] - levels[None]).argmin(axis=1)
    np.testing.assert_array_equal(index, brute)


def test_curve_matches_quantizing_with_its_levels(rng):
    x = rng.standard_normal(5000) * 3 + 1
    levels, curve = lloyd_max_curve(x, 5)
    assert curve[0] == pytest.approx((x ** 2).sum())
    for b, lv in enumerate(levels, start=1):
        assert curve[b] == pytest.approx(((x - lv[quantize(x, lv)]) ** 2).sum(), rel=1e-9)
    assert (np.diff(curve) < 0).all()


def test_fewer_distinct_samples_than_levels_are_coded_exactly():
    x = np.array([1.0, 1.0, 2.0, 5.0])
    levels = lloyd_max(x, 2)
    np.testing.assert_array_equal(levels[quantize(x, levels)], x)
