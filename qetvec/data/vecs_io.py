"""Readers and writers for the TEXMEX ``.fvecs`` / ``.ivecs`` / ``.bvecs`` formats.

Each vector is stored as a little-endian int32 dimension ``d`` followed by ``d``
values: float32 (fvecs), int32 (ivecs) or uint8 (bvecs). See
http://corpus-texmex.irisa.fr/. All vectors of a file must have the same ``d``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from qetvec.data._atomic import atomic_write


def _view(raw: np.ndarray, path: str | Path, dtype: np.dtype) -> np.ndarray:
    """Reshape the raw bytes of a vecs file to ``(n, d)`` values of `dtype`, checking it."""
    size = raw.shape[0]
    if size == 0:
        return np.zeros((0, 0), dtype=dtype)
    if size < 4:
        raise ValueError(f"{path}: {size} bytes is too short for a vecs file")
    d = int(raw[:4].view("<i4")[0])
    if d <= 0:
        raise ValueError(f"{path}: invalid dimension {d} in the first record")
    record = 4 + d * dtype.itemsize
    if size % record:
        raise ValueError(
            f"{path}: size {size} bytes is not a whole number of records of dimension {d} "
            f"({record} bytes each); the file is truncated or its dimensions are inconsistent"
        )
    rows = raw.reshape(-1, record)
    dims = rows[:, :4].view("<i4")[:, 0]
    bad = np.flatnonzero(dims != d)
    if bad.size:
        raise ValueError(f"{path}: record {bad[0]} has dimension {dims[bad[0]]}, expected {d}")
    return rows[:, 4:].view(dtype)


def _read(path: str | Path, dtype: str, mmap: bool) -> np.ndarray:
    dt = np.dtype(dtype)
    raw = np.memmap(path, dtype=np.uint8, mode="r") if mmap else np.fromfile(path, dtype=np.uint8)
    x = _view(raw, path, dt)
    return x if mmap else np.ascontiguousarray(x)


def read_fvecs(path: str | Path) -> np.ndarray:
    """Read an ``.fvecs`` file into a C-contiguous ``(n, d)`` float32 array."""
    return _read(path, "<f4", mmap=False)


def read_ivecs(path: str | Path) -> np.ndarray:
    """Read an ``.ivecs`` file into a C-contiguous ``(n, d)`` int32 array."""
    return _read(path, "<i4", mmap=False)


def read_bvecs(path: str | Path) -> np.ndarray:
    """Read a ``.bvecs`` file into a C-contiguous ``(n, d)`` uint8 array."""
    return _read(path, "u1", mmap=False)


def read_fvecs_mmap(path: str | Path) -> np.ndarray:
    """Memory-map an ``.fvecs`` file as a read-only, strided ``(n, d)`` float32 view."""
    return _read(path, "<f4", mmap=True)


def read_ivecs_mmap(path: str | Path) -> np.ndarray:
    """Memory-map an ``.ivecs`` file as a read-only, strided ``(n, d)`` int32 view."""
    return _read(path, "<i4", mmap=True)


def read_bvecs_mmap(path: str | Path) -> np.ndarray:
    """Memory-map a ``.bvecs`` file as a read-only, strided ``(n, d)`` uint8 view."""
    return _read(path, "u1", mmap=True)


def _write(path: str | Path, x: np.ndarray, dtype: str) -> None:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {x.shape}")
    n, d = x.shape
    out = np.empty((n, d + 1), dtype="<i4")
    out[:, 0] = d
    out[:, 1:].view(dtype)[:] = x
    with atomic_write(path) as f:
        out.tofile(f)


def write_fvecs(path: str | Path, x: np.ndarray) -> None:
    """Atomically write an ``(n, d)`` array as ``.fvecs`` (values cast to float32)."""
    _write(path, x, "<f4")


def write_ivecs(path: str | Path, x: np.ndarray) -> None:
    """Atomically write an ``(n, d)`` integer array as ``.ivecs`` (values cast to int32)."""
    _write(path, x, "<i4")
