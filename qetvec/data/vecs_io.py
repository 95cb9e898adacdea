"""TEXMEX ``.fvecs`` / ``.ivecs`` / ``.bvecs`` files (format: http://corpus-texmex.irisa.fr/).

Each vector is a little-endian int32 dimension ``d`` followed by ``d`` values: float32
(fvecs), int32 (ivecs) or uint8 (bvecs). Reading is `faiss.contrib.vecs_io`'s; this module
adds only what it lacks: a check of the file size and of every record's ``d`` first (contrib
reshapes a truncated file with an opaque numpy error and silently misreads a file whose
records disagree on ``d``), empty files, an in-memory bvecs reader, and atomic writes.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from faiss.contrib import vecs_io

from qetvec.io import write_bytes_atomic

_READERS = {  # value dtype -> (in-memory reader, memory-mapped reader), both (n, d)
    "<f4": (vecs_io.fvecs_read, vecs_io.fvecs_mmap),
    "<i4": (vecs_io.ivecs_read, vecs_io.ivecs_mmap),
    "u1": (lambda path: np.ascontiguousarray(vecs_io.bvecs_mmap(path)), vecs_io.bvecs_mmap),
}


def _check(path: str | Path, itemsize: int) -> None:
    """Raise ValueError naming `path` unless it is whole records that all share one ``d``."""
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    if raw.shape[0] < 4:
        raise ValueError(f"{path}: {raw.shape[0]} bytes is too short for a vecs file")
    d = int(raw[:4].view("<i4")[0])
    if d <= 0:
        raise ValueError(f"{path}: invalid dimension {d} in the first record")
    record = 4 + d * itemsize
    if raw.shape[0] % record:
        raise ValueError(
            f"{path}: size {raw.shape[0]} bytes is not a whole number of records of dimension {d} "
            f"({record} bytes each); the file is truncated or its dimensions are inconsistent"
        )
    dims = raw.reshape(-1, record)[:, :4].view("<i4")[:, 0]
    bad = np.flatnonzero(dims != d)
    if bad.size:
        raise ValueError(f"{path}: record {bad[0]} has dimension {dims[bad[0]]}, expected {d}")


def _read(path: str | Path, dtype: str, mmap: bool) -> np.ndarray:
    if os.path.getsize(path) == 0:
        return np.zeros((0, 0), dtype=dtype)
    _check(path, np.dtype(dtype).itemsize)
    return _READERS[dtype][mmap](str(path))


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
        raise ValueError(f"x must be a 2-D (n, d) array, got shape {x.shape}")
    n, d = x.shape
    out = np.empty((n, d + 1), dtype="<i4")
    out[:, 0] = d
    out[:, 1:].view(dtype)[:] = x
    write_bytes_atomic(path, out.tobytes())


def write_fvecs(path: str | Path, x: np.ndarray) -> None:
    """Atomically write an ``(n, d)`` array as ``.fvecs`` (values cast to float32)."""
    _write(path, x, "<f4")


def write_ivecs(path: str | Path, x: np.ndarray) -> None:
    """Atomically write an ``(n, d)`` integer array as ``.ivecs`` (values cast to int32)."""
    _write(path, x, "<i4")
