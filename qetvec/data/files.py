"""Loading users' own vector files: ``.npy``, TEXMEX vecs and ann-benchmarks HDF5."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from qetvec._optional import require
from qetvec.data.vecs_io import read_bvecs, read_fvecs, read_ivecs

ANN_BENCHMARKS_KEYS = ("train", "test", "neighbors", "distances")


def read_hdf5(path: str | Path) -> dict[str, np.ndarray]:
    """Read an ann-benchmarks HDF5 file.

    Returns a dict with whichever of ``train`` (n, d), ``test`` (nq, d), ``neighbors``
    (nq, k) int and ``distances`` (nq, k) float are present, each as an in-memory array.
    The file's ``distance`` attribute (e.g. ``"euclidean"``, ``"angular"``), if present,
    is not returned; read it with h5py (``bench`` extra). Raises ValueError if ``train`` is missing.
    """
    with require("h5py", "bench").File(path, "r") as f:
        out = {key: np.asarray(f[key]) for key in ANN_BENCHMARKS_KEYS if key in f}
    if "train" not in out:
        raise ValueError(f"{path}: no 'train' dataset; not an ann-benchmarks HDF5 file")
    return out


def load_file(path: str | Path) -> np.ndarray:
    """Load the vectors of a user file as an ``(n, d)`` array, by file extension.

    ``.npy`` -> the stored array (must be 2-D); ``.fvecs`` -> float32; ``.ivecs`` -> int32;
    ``.bvecs`` -> uint8; ``.hdf5`` / ``.h5`` (ann-benchmarks layout) -> the ``train`` array.
    Arrays are returned as stored (no dtype conversion). Raises ValueError for any other
    extension or a ``.npy`` file that is not 2-D.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".npy":
        x = np.load(path)
        if x.ndim != 2:
            raise ValueError(f"{path}: expected a 2-D array, got shape {x.shape}")
        return np.ascontiguousarray(x)
    readers = {".fvecs": read_fvecs, ".ivecs": read_ivecs, ".bvecs": read_bvecs}
    if suffix in readers:
        return readers[suffix](path)
    if suffix in (".hdf5", ".h5"):
        return read_hdf5(path)["train"]
    raise ValueError(
        f"{path}: unknown extension {suffix!r}; expected .npy, .fvecs, .ivecs, .bvecs, .hdf5 or .h5"
    )
