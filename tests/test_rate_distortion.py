"""The Gaussian rate-distortion bounds beside every MSE table, against their closed forms."""
import numpy as np
import pytest

from qetvec.bench.rate_distortion import gaussian_rd_bound, iid_gaussian_bound


@pytest.mark.parametrize("bits", [1.0, 2.5, 4.0])
def test_bound_of_isotropic_gaussian_is_four_to_the_minus_rate(bits, rng):
    """Equal eigenvalues: reverse water-filling gives D / sigma^2 = 2^(-2R) per element."""
    x = rng.standard_normal((200_000, 8))
    assert gaussian_rd_bound(x, bits) == pytest.approx(4.0 ** -bits, rel=0.02)
    assert iid_gaussian_bound(bits) == 4.0 ** -bits


def test_bound_spends_nothing_on_components_below_the_water_level(rng):
    """Variances 1 and 1e-6 at 0.5 bit per element: all the rate goes to the first component,
    whose error is 4^-1 of its variance, and the second keeps its full variance."""
    x = rng.standard_normal((200_000, 2)) * np.array([1.0, 1e-3])
    expected = (4.0 ** -1 + 1e-6) / (1 + 1e-6)
    assert gaussian_rd_bound(x, 0.5) == pytest.approx(expected, rel=0.02)
