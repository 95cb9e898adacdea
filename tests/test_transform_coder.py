"""The audit's transform-coder baseline and Gaussian rate-distortion bound."""
import numpy as np
import pytest

from qetvec.bench.transform_coder import gaussian_rd_bound, transform_code
from qetvec.evaluation import relative_mse


@pytest.mark.parametrize("bits", [1.0, 2.5, 4.0])
def test_bound_of_isotropic_gaussian_is_four_to_the_minus_rate(bits, rng):
    """Equal eigenvalues: reverse water-filling gives D / sigma^2 = 2^(-2R) per element."""
    x = rng.standard_normal((200_000, 8))
    assert gaussian_rd_bound(x, bits) == pytest.approx(4.0 ** -bits, rel=0.02)


def test_bound_spends_nothing_on_components_below_the_water_level(rng):
    """Variances 1 and 1e-6 at 0.5 bit per element: all the rate goes to the first component,
    whose error is 4^-1 of its variance, and the second keeps its full variance."""
    x = rng.standard_normal((200_000, 2)) * np.array([1.0, 1e-3])
    expected = (4.0 ** -1 + 1e-6) / (1 + 1e-6)
    assert gaussian_rd_bound(x, 0.5) == pytest.approx(expected, rel=0.02)


def test_transform_coder_stays_within_budget_and_near_the_bound(rng):
    scales = np.linspace(3.0, 0.1, 16)
    x = (rng.standard_normal((4000, 16)) * scales).astype(np.float32)
    errors = []
    for bits in (2.0, 3.0, 4.0):
        budget = int(bits * x.size / 8)
        x_hat, nbytes = transform_code(x, budget)
        assert nbytes <= budget and x_hat.shape == x.shape
        errors.append(relative_mse(x, x_hat))
        # fixed-length scalar quantizers lose ~2x to the bound; side information (basis, scales) more
        assert errors[-1] < 4.0 * gaussian_rd_bound(x, bits)
    assert errors[0] > errors[1] > errors[2]
