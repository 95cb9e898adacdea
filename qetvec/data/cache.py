"""The on-disk cache of derived datasets: one ``.npz`` file per dataset, written atomically,
holding the array (``x``) and the SHA-256 of its dtype, shape and bytes (``sha256``), checked
in full on every read."""
from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

import numpy as np

from qetvec.io import write_bytes_atomic


class CorruptCacheError(ValueError):
    """A cache file is truncated, altered, or holds something other than the dataset."""


def resolve_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """The cache directory: `cache_dir` if given, else ``$QETVEC_CACHE``, else ``~/.cache/qetvec``."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("QETVEC_CACHE") or Path.home() / ".cache" / "qetvec")


def array_digest(x: np.ndarray) -> str:
    """Hex SHA-256 of `x`'s dtype, shape and C-order bytes."""
    digest = hashlib.sha256(f"{x.dtype.str}{x.shape}".encode())
    digest.update(np.ascontiguousarray(x).data)
    return digest.hexdigest()


def write_cached(path: Path, x: np.ndarray) -> None:
    """Save `x` with its digest to `path` atomically (no reader sees a partial file)."""
    buffer = io.BytesIO()
    np.savez(buffer, x=x, sha256=np.array(array_digest(x)))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, buffer.getvalue())


def read_cached(path: Path, columns: int) -> np.ndarray:
    """The C-contiguous ``(n, columns)`` float32 array stored at `path` by `write_cached`.

    Raises CorruptCacheError naming the file and the problem (not a cache file, missing
    entries, wrong dtype or shape, NaN / inf, digest mismatch); the file is left in place.
    """
    try:
        stored = np.load(path, allow_pickle=False)
        if not isinstance(stored, np.lib.npyio.NpzFile):
            raise CorruptCacheError("a bare array, not a qetvec cache file")
        with stored:
            if sorted(stored.files) != ["sha256", "x"]:
                raise CorruptCacheError(f"entries {sorted(stored.files)}, expected ['sha256', 'x']")
            x, expected = stored["x"], str(stored["sha256"])
    except CorruptCacheError as err:
        raise CorruptCacheError(_message(path, str(err))) from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise CorruptCacheError(_message(path, f"unreadable: {err}")) from err
    if x.dtype != np.float32 or x.ndim != 2 or x.shape[1] != columns:
        raise CorruptCacheError(_message(path, f"holds a {x.dtype} array of shape {x.shape}, "
                                               f"expected float32 (n, {columns})"))
    if not np.isfinite(x).all():
        raise CorruptCacheError(_message(path, "contains NaN or inf"))
    if array_digest(x) != expected:
        raise CorruptCacheError(_message(path, "its data does not match its SHA-256"))
    return np.ascontiguousarray(x)


def _message(path: Path, problem: str) -> str:
    return f"dataset cache file {path} is damaged ({problem}); delete it and load again to rebuild it"
