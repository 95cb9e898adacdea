"""`write_index` / `read_index`: one checked, versioned file format for every qetvec object.

    offset 0   magic  b"QETVEC\\r\\n"                        8 bytes
           8   format version                             uint32 little-endian
          12   header length H                            uint64 little-endian
          20   header: JSON {"kind", "meta", "arrays": [{name, dtype, shape, offset, nbytes}]}
        20+H   array payload (raw C-order bytes, offsets relative to here)
    size-32    SHA-256 of every byte before it

Files are written to a temporary file in the target directory, fsynced and renamed, so a
crash leaves either the old file or the new one. A file that is truncated, altered, of an
unknown version or of an unknown kind raises `CorruptIndexError` naming the problem.
Classes join the format with `@register`, exposing `_state() -> (meta, arrays)` and
`_from_state(meta, arrays)`.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np

MAGIC = b"QETVEC\r\n"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sIQ")
_DIGEST = 32
_KINDS: dict[str, type] = {}

T = TypeVar("T", bound=type)


class CorruptIndexError(ValueError):
    """A qetvec file is truncated, altered, or not a qetvec file."""


def register(kind: str) -> Callable[[T], T]:
    """Class decorator: make instances writable and readable under the name `kind`."""
    def wrap(cls: T) -> T:
        _KINDS[kind] = cls
        cls._kind = kind  # type: ignore[attr-defined]
        return cls
    return wrap


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that readers never see a partial file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def serialize(obj: Any) -> bytes:
    """The bytes `write_index` writes for a registered object."""
    kind = getattr(type(obj), "_kind", None)
    if kind is None:
        raise TypeError(f"cannot serialize {type(obj).__name__}: not a qetvec index or codec")
    meta, arrays = obj._state()
    entries, chunks, offset = [], [], 0
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        entries.append({"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape),
                        "offset": offset, "nbytes": arr.nbytes})
        chunks.append(arr.tobytes())
        offset += arr.nbytes
    header = json.dumps({"kind": kind, "meta": meta, "arrays": entries}).encode()
    body = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header)) + header + b"".join(chunks)
    return body + hashlib.sha256(body).digest()


def deserialize(data: bytes, source: str = "<bytes>") -> Any:
    """Inverse of `serialize`; checks size, magic, version and checksum first."""
    if len(data) < _PREFIX.size + _DIGEST:
        raise CorruptIndexError(f"{source}: {len(data)} bytes is too short for a qetvec file")
    magic, version, header_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise CorruptIndexError(f"{source}: not a qetvec file (bad magic {magic!r})")
    if version != FORMAT_VERSION:
        raise CorruptIndexError(f"{source}: format version {version}, this qetvec reads {FORMAT_VERSION}")
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise CorruptIndexError(f"{source}: checksum mismatch (file truncated or altered)")
    try:
        header = json.loads(body[_PREFIX.size:_PREFIX.size + header_len])
        payload = body[_PREFIX.size + header_len:]
        arrays = {}
        for e in header["arrays"]:
            if e["offset"] + e["nbytes"] > len(payload):
                raise CorruptIndexError(f"{source}: array {e['name']} runs past the end of the file")
            raw = payload[e["offset"]:e["offset"] + e["nbytes"]]
            arrays[e["name"]] = np.frombuffer(raw, dtype=np.dtype(e["dtype"])).reshape(e["shape"]).copy()
        cls = _KINDS[header["kind"]]
    except (KeyError, ValueError, TypeError) as err:
        if isinstance(err, CorruptIndexError):
            raise
        raise CorruptIndexError(f"{source}: unreadable header ({err!r})") from err
    return cls._from_state(header["meta"], arrays)


def write_index(obj: Any, path: str | os.PathLike) -> None:
    """Write a trained qetvec object (codec, index or compressed matrix) to `path`, atomically."""
    write_bytes_atomic(path, serialize(obj))


def read_index(path: str | os.PathLike) -> Any:
    """Read back an object written by `write_index`; raises CorruptIndexError if damaged."""
    return deserialize(Path(path).read_bytes(), source=str(path))
