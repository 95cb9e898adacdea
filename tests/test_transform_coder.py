"""The audit's transform-coder baseline."""
import numpy as np
import pytest

from qetvec.bench.rate_distortion import gaussian_rd_bound
from qetvec.bench.transform_coder import transform_code
from qetvec.evaluation import relative_mse


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
