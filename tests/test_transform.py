"""Orthogonal transforms: PCA against its definition, random rotations against Haar facts."""
import numpy as np
import pytest

from qetvec.transform import Rotation, principal_axes, random_rotation


def test_pca_axes_diagonalize_the_covariance_with_descending_variances(rng):
    """A known covariance: axes are its eigenvectors, the rotated data's covariance is
    diag(variances), largest first."""
    basis, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    scales = np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.1])
    x = (rng.standard_normal((100_000, 6)) * scales) @ basis.T + 7.0
    axes, variances = principal_axes(x)
    np.testing.assert_allclose(variances, scales ** 2, rtol=0.03)
    np.testing.assert_allclose(np.abs(axes @ basis), np.eye(6), atol=0.02)  # up to sign
    y = Rotation(6, "pca").fit(x.astype(np.float32)).apply(x.astype(np.float32))
    cov = np.cov(y.T)
    np.testing.assert_allclose(np.diag(cov), variances, rtol=1e-3)
    assert np.abs(cov - np.diag(np.diag(cov))).max() < 1e-3 * variances[0]


def test_random_rotation_is_orthogonal_deterministic_and_seeded():
    r = random_rotation(20, seed=3)
    np.testing.assert_allclose(r @ r.T, np.eye(20), atol=1e-12)
    np.testing.assert_array_equal(r, random_rotation(20, seed=3))
    assert not np.allclose(r, random_rotation(20, seed=4))


def test_random_rotation_is_haar_distributed():
    """For a Haar-random rotation an entry has mean 0 and variance 1/d, and the trace has
    mean 0 (E tr Q = 0 for the Haar measure on O(d)); a QR without the sign fix has E tr > 0."""
    d, trials = 8, 4000
    traces = np.array([np.trace(random_rotation(d, s)) for s in range(trials)])
    entries = np.array([random_rotation(d, s)[0, 0] for s in range(trials)])
    assert abs(traces.mean()) < 4 / np.sqrt(trials)  # var(tr Q) = 1 for O(d)
    assert entries.var() == pytest.approx(1 / d, rel=0.1)


@pytest.mark.parametrize("kind", ["pca", "random", "none"])
def test_rotation_preserves_distances_and_inverts(kind, rng):
    x = rng.standard_normal((200, 10)).astype(np.float32)
    rot = Rotation(10, kind, seed=1).fit(x)
    y = rot.apply(x)
    np.testing.assert_allclose(np.linalg.norm(y[1:] - y[0], axis=1), np.linalg.norm(x[1:] - x[0], axis=1),
                               rtol=1e-5)
    np.testing.assert_allclose(rot.invert(y), x, atol=1e-5)


def test_state_round_trip_and_a_foreign_fingerprint_is_refused():
    rot = Rotation(12, "random", seed=5)
    meta, arrays = rot._state()
    np.testing.assert_array_equal(Rotation._from_state(meta, arrays).matrix_, rot.matrix_)
    assert rot.nbytes() == 8
    with pytest.raises(ValueError, match="rotation_fingerprint"):
        Rotation._from_state(meta, {"rotation_fingerprint": arrays["rotation_fingerprint"] + 0.01})


def test_pca_state_refuses_a_matrix_that_is_not_orthogonal(rng):
    rot = Rotation(4, "pca").fit(rng.standard_normal((100, 4)).astype(np.float32))
    meta, arrays = rot._state()
    assert rot.nbytes() == 4 * 16
    with pytest.raises(ValueError, match="not orthogonal"):
        Rotation._from_state(meta, {"rotation": arrays["rotation"] * 2})


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind must be one of"):
        Rotation(4, "hadamard")
