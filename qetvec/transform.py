"""Orthogonal transforms in front of a codec's column groups: y = x @ R.T, R (d, d) orthogonal.

An orthogonal R keeps every distance and inner product (||q - x|| = ||Rq - Rx||,
<q, x> = <Rq, Rx>), so a codec can quantize y instead of x and a search rotates each query
once and scores it in the rotated space against the codes.

    "pca"     R's rows are the principal axes of the training rows, largest variance first
              (the Karhunen-Loeve transform): the energy gathers in the first columns, where
              bit allocation spends the bits. Shared state: R as float32, 4 d^2 bytes.
    "random"  a seeded Haar-random orthogonal R (QR of a Gaussian matrix, signs fixed):
              spreads the energy evenly over the columns, as TurboQuant and RaBitQ do.
              Stored as its seed and a fingerprint (R's row sums) that refuses to load under
              a numpy whose generator would rebuild a different R.
    "none"    R = identity (nothing stored).
"""
from __future__ import annotations

import numpy as np

from qetvec._validation import check_positive_int

KINDS = ("none", "pca", "random")
FINGERPRINT_TOLERANCE = 1e-4  # rebuilt R's row sums vs the stored ones (BLAS rounding is ~1e-7)


def principal_axes(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(axes (d, d) float64, one per row, variances (d,) float64), largest variance first, of
    rows x (n, d) about their mean. Each axis's largest-magnitude entry is made positive, so
    the result does not depend on the eigensolver's sign choices."""
    centred = x - x.mean(axis=0, dtype=np.float64)
    values, vectors = np.linalg.eigh(centred.T @ centred / len(x))
    order = np.argsort(values)[::-1]
    axes = vectors[:, order].T
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    return axes * signs[:, None], np.maximum(values[order], 0.0)


def random_rotation(d: int, seed: int) -> np.ndarray:
    """A Haar-random orthogonal matrix (d, d) float64 determined by `seed`: Q of the QR
    decomposition of a standard Gaussian matrix, each column's sign set by R's diagonal
    (Mezzadri 2007), so the distribution is uniform over rotations and reflections."""
    gaussian = np.random.default_rng(seed).standard_normal((d, d))
    q, r = np.linalg.qr(gaussian)
    return q * np.sign(np.diag(r))


class Rotation:
    """An orthogonal transform of d-dimensional rows (kinds in the module docstring).

    Trained state: matrix_ (d, d) float32, orthogonal, rows = output axes."""

    def __init__(self, d: int, kind: str = "pca", seed: int = 0):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.d = check_positive_int(d, "d")
        self.kind = kind
        self.seed = check_positive_int(seed, "seed", low=0)
        self.matrix_: np.ndarray | None = None
        if kind != "pca":
            self.matrix_ = self._rebuild()

    @property
    def is_trained(self) -> bool:
        return self.matrix_ is not None

    @property
    def is_identity(self) -> bool:
        return self.kind == "none"

    def fit(self, x: np.ndarray) -> "Rotation":
        """Learn the PCA axes of validated rows x (n, d) float32 (no-op for other kinds)."""
        if self.kind == "pca":
            self.matrix_ = principal_axes(x)[0].astype(np.float32)
        return self

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Rotated rows x @ R.T (n, d) float32 of rows x (n, d) float32."""
        if self.is_identity:
            return x
        return np.ascontiguousarray(x @ self.matrix_.T, dtype=np.float32)

    def invert(self, y: np.ndarray) -> np.ndarray:
        """Rows y @ R (n, d) float32 back in the input space, for rotated rows y (n, d)."""
        if self.is_identity:
            return y
        return np.ascontiguousarray(y @ self.matrix_, dtype=np.float32)

    def nbytes(self) -> int:
        """Shared-state bytes: 4 d^2 for PCA, the 8-byte seed for a random rotation (its
        fingerprint only checks a rebuild), 0 for none."""
        return {"pca": 4 * self.d * self.d, "random": 8, "none": 0}[self.kind]

    def _rebuild(self) -> np.ndarray | None:
        if self.kind == "random":
            return random_rotation(self.d, self.seed).astype(np.float32)
        return None if self.kind == "pca" else np.eye(self.d, dtype=np.float32)

    def _state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {"d": self.d, "kind": self.kind, "seed": self.seed, "trained": self.is_trained}
        if self.kind == "pca" and self.is_trained:
            return meta, {"rotation": self.matrix_}
        if self.kind == "random":
            return meta, {"rotation_fingerprint": self.matrix_.sum(axis=1, dtype=np.float32)}
        return meta, {}

    @classmethod
    def _from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "Rotation":
        """Inverse of `_state`; ValueError naming the array that disagrees with the metadata."""
        rotation = cls(meta["d"], meta["kind"], meta["seed"])
        d = rotation.d
        if rotation.kind == "pca" and meta["trained"]:
            matrix = arrays["rotation"]
            if matrix.dtype != np.float32 or matrix.shape != (d, d) or not np.isfinite(matrix).all():
                raise ValueError(f"rotation must be finite float32 ({d}, {d}), got {matrix.dtype} {matrix.shape}")
            if not np.allclose(matrix @ matrix.T, np.eye(d), atol=1e-3):
                raise ValueError("rotation is not orthogonal")
            rotation.matrix_ = matrix
        elif rotation.kind == "random":
            stored = arrays["rotation_fingerprint"]
            if stored.dtype != np.float32 or stored.shape != (d,) or not np.allclose(
                    stored, rotation.matrix_.sum(axis=1), atol=FINGERPRINT_TOLERANCE):
                raise ValueError(f"rotation_fingerprint: the random rotation rebuilt from seed "
                                 f"{rotation.seed} differs from the one the codes were made with "
                                 "(another numpy random generator?)")
        return rotation

    def __repr__(self) -> str:
        return f"Rotation(d={self.d}, kind={self.kind!r}, seed={self.seed})"
