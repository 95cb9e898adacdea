"""Matrix mode: the budget holds, quality improves with budget, files round-trip."""
import numpy as np
import pytest

import qetvec


@pytest.mark.parametrize("shape,m", [((2000, 32), 8), ((1500, 50), 10), ((384, 96), 12)])
@pytest.mark.parametrize("bytes_per_value", [0.3, 0.5, 1.0])
def test_nbytes_never_exceeds_budget(shape, m, bytes_per_value, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    budget = int(bytes_per_value * x.size)
    cm = qetvec.compress_matrix(x, budget, m=m, niter=5)
    assert cm.nbytes <= budget
    assert cm.decode().shape == shape


def test_more_budget_gives_lower_error(glove):
    x = np.ascontiguousarray(glove[:4000])
    errors = [float(((x - qetvec.compress_matrix(x, b, m=10, niter=10).decode()) ** 2).mean())
              for b in (60_000, 90_000, 140_000)]
    assert errors[0] > errors[1] > errors[2]


def test_too_small_budget_is_a_clear_error(rng):
    x = rng.standard_normal((1000, 16)).astype(np.float32)
    with pytest.raises(ValueError, match="too small"):
        qetvec.compress_matrix(x, 100, m=4)


def test_round_trip_through_file(tmp_path, rng):
    x = rng.standard_normal((800, 24)).astype(np.float32)
    cm = qetvec.compress_matrix(x, 8000, m=6, niter=5)
    qetvec.write_index(cm, tmp_path / "m.qet")
    back = qetvec.read_index(tmp_path / "m.qet")
    assert back.nbytes == cm.nbytes and back.ksub == cm.ksub
    np.testing.assert_array_equal(back.decode(), cm.decode())
