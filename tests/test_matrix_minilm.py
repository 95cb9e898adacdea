"""The budget search on a real K cache (MiniLM, layer 3, head 0: 8,192 tokens x 32)."""
import numpy as np
import pytest

import qetvec
from qetvec.bench.audit import audit_matrix
from qetvec.bench.rate_distortion import matrix_rd_bound
from qetvec.evaluation import relative_mse

pytestmark = pytest.mark.minilm


def test_auto_on_a_k_cache_head_is_within_twice_the_gaussian_bound():
    x = audit_matrix("minilm-kcache")
    budget = int(4 * x.size / 8)
    cm = qetvec.compress_matrix(x, budget)
    assert cm.nbytes <= budget
    assert relative_mse(x, cm.decode()) <= 2 * matrix_rd_bound(x, 4.0)[0]
    np.testing.assert_array_equal(cm.decode(1000, 1300), cm.decode()[1000:1300])  # a token range
