"""`write_index` / `read_index`: one checked, versioned file format for every qetvec object.

    offset 0   magic  b"QETVEC\\r\\n"                        8 bytes
           8   format version                             uint32 little-endian
          12   header length H                            uint64 little-endian
          20   header: JSON {"kind", "meta", "arrays": [{name, dtype, shape, offset, nbytes}]}
        20+H   array payload (raw C-order bytes, offsets relative to here)
    size-32    SHA-256 of every byte before it

Files are written to a temporary file in the target directory, fsynced and renamed, so a
crash leaves either the old file or the new one (and the next write removes a killed
writer's temporary). A file that is truncated, altered, of an unknown version or kind, whose
array table does not tile the payload, or whose arrays contradict its metadata or each other
raises `CorruptIndexError` naming the problem. Registered classes also pickle through this format. Classes join the format with `@register`,
exposing `_state() -> (meta, arrays)` and `_from_state(meta, arrays)` (which validates and
raises ValueError naming the field), and optionally `_check_state()`.
"""
from __future__ import annotations

import errno
import glob
import hashlib
import json
import math
import os
import struct
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np

MAGIC = b"QETVEC\r\n"
FORMAT_VERSION = 2  # 2: codebooks stored unpadded and bit-packed (qetvec.stage.stages_state)
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
        cls.__reduce__ = _reduce  # type: ignore[attr-defined]  # pickle = the checked format
        return cls
    return wrap


STALE_TMP_SECONDS = 60  # temp files of a target older than this are left by killed writers


def _reduce(obj: Any) -> tuple:
    """Pickle support for registered classes (e.g. LangChain's serialize_to_bytes): the
    object travels as its `serialize` bytes and is read back with every check."""
    return deserialize, (serialize(obj),)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that readers never see a partial file: a unique temporary
    `.<name>.*.tmp` beside it, fsynced, renamed over `path`; removed on any error. Temp
    files of the same target older than STALE_TMP_SECONDS (a writer killed mid-write) are
    deleted first. A path that cannot be written (empty, a directory, in a missing folder)
    raises before anything is created, naming `path`."""
    if os.fspath(path) in ("", b""):
        raise ValueError("path is empty: name the file to write")
    path = Path(path)
    directory = path.parent
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, f"cannot write {path}: it is a directory")
    if not directory.exists():
        raise FileNotFoundError(errno.ENOENT, f"cannot write {path}: folder {directory} does not exist")
    if not directory.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"cannot write {path}: {directory} is not a directory")
    now = time.time()
    for stale in directory.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if now - stale.stat().st_mtime > STALE_TMP_SECONDS:
                stale.unlink()
        except FileNotFoundError:  # another writer cleaned it
            pass
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as err:  # e.g. no write permission: name the target, not the temporary
        raise type(err)(err.errno, f"cannot write {path}: {err.strerror}") from err
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
    return pack(kind, *obj._state())


def pack(kind: str, meta: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """File bytes for a kind, its JSON metadata and its named arrays (format above)."""
    entries, chunks, offset = [], [], 0
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        entries.append({"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape),
                        "offset": offset, "nbytes": arr.nbytes})
        chunks.append(arr.tobytes())
        offset += arr.nbytes
    header = json.dumps({"kind": kind, "meta": meta, "arrays": entries}, default=_json_scalar).encode()
    body = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header)) + header + b"".join(chunks)
    return body + hashlib.sha256(body).digest()


def kind_class(kind: object) -> type:
    """The class registered under `kind`; ValueError naming it if there is none."""
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ValueError(f"unknown kind {kind!r}; known: {', '.join(sorted(_KINDS))}")
    return _KINDS[kind]


def _json_scalar(value: Any) -> Any:
    """numpy scalars in metadata (settings given as np.int64, np.float32, np.bool_) as the
    Python numbers JSON holds; anything else is not metadata (TypeError naming its type)."""
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    raise TypeError(f"metadata value {value!r} of type {type(value).__name__} cannot be stored")


class _Missing(KeyError):
    """A field `_from_state` needs is not in the file (its message names it)."""

    def __str__(self) -> str:
        return str(self.args[0])


class _Meta(dict):
    """The file's metadata (and the objects nested in it): a missing key is named."""

    def __getitem__(self, key: str) -> Any:
        if key not in self:
            raise _Missing(f"metadata lacks {key!r} (has {sorted(self)})")
        value = super().__getitem__(key)
        return _Meta(value) if isinstance(value, dict) else value

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default


class _Arrays(dict):
    """The file's arrays, remembering which ones `_from_state` read."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self:
            raise _Missing(f"array {name!r} is missing")
        self.read.add(name)
        return super().__getitem__(name)

    def unused(self) -> set[str]:
        return set(self) - self.read

    def prefixed(self, prefix: str) -> "_Prefixed":
        """The arrays named `prefix` + name, as a mapping by name (reads are remembered)."""
        return _Prefixed(self, prefix)


class _Prefixed(dict):
    """A view of `_Arrays` under a name prefix, for a nested object's `_from_state`."""

    def __init__(self, parent: _Arrays, prefix: str) -> None:
        super().__init__({k[len(prefix):]: v for k, v in dict.items(parent) if k.startswith(prefix)})
        self.parent, self.prefix = parent, prefix

    def __getitem__(self, name: str) -> np.ndarray:
        return self.parent[self.prefix + name]

    def prefixed(self, prefix: str) -> "_Prefixed":
        return _Prefixed(self.parent, self.prefix + prefix)


def _load(kind: str, meta: dict, arrays: dict[str, np.ndarray]) -> Any:
    """The object of `kind` a file's metadata and arrays describe, checked (`_from_state`,
    `_check_state`, every array used); raises what the first failed check raised."""
    reading = _Arrays(arrays)
    obj = _KINDS[kind]._from_state(_Meta(meta), reading)
    check = getattr(obj, "_check_state", None)
    if check is not None:
        check()
    if reading.unused():
        raise ValueError(f"arrays {sorted(reading.unused())} are not used by the metadata")
    return obj


def _other_kind(kind: str, meta: dict, arrays: dict[str, np.ndarray]) -> str | None:
    """The one other registered kind whose checks the contents pass, if any: a header
    naming the wrong kind (altered, or written by hand) is then reported as such."""
    for other in _KINDS:
        if other != kind:
            try:
                _load(other, meta, arrays)
            except Exception:  # noqa: BLE001 - not this kind either
                continue
            return other
    return None


def _entries(header: object, payload_len: int, source: str) -> list[dict]:
    """The header's array entries, checked: names distinct, plain numeric dtypes,
    non-negative shapes whose byte count is nbytes, laid end to end over the payload."""
    if not isinstance(header, dict) or not isinstance(header.get("meta"), dict) \
            or not isinstance(header.get("arrays"), list) or header.get("kind") not in _KINDS:
        kind = header.get("kind") if isinstance(header, dict) else None
        raise CorruptIndexError(f"{source}: header must hold a known kind, a meta object and an "
                                f"arrays list (kind {kind!r})")
    offset, names = 0, set()
    for e in header["arrays"]:
        if not isinstance(e, dict) or set(e) != {"name", "dtype", "shape", "offset", "nbytes"}:
            raise CorruptIndexError(f"{source}: malformed array entry {e!r}")
        name, shape = e["name"], e["shape"]
        ints = [e["offset"], e["nbytes"], *shape] if isinstance(shape, list) else None
        if not isinstance(name, str) or name in names or ints is None or not all(
                type(v) is int and v >= 0 for v in ints):
            raise CorruptIndexError(f"{source}: array {name!r}: bad name, shape, offset or nbytes")
        try:
            dtype = np.dtype(e["dtype"])
        except TypeError as err:
            raise CorruptIndexError(f"{source}: array {name!r}: bad dtype {e['dtype']!r}") from err
        if dtype.kind not in "biuf" or dtype.str != e["dtype"]:
            raise CorruptIndexError(f"{source}: array {name!r}: dtype {e['dtype']!r} is not a plain number type")
        if e["offset"] != offset or e["nbytes"] != math.prod(shape) * dtype.itemsize:
            raise CorruptIndexError(f"{source}: array {name!r}: offset/nbytes disagree with its "
                                    f"shape {shape} and the arrays before it")
        names.add(name)
        offset += e["nbytes"]
    if offset != payload_len:
        raise CorruptIndexError(f"{source}: arrays cover {offset} payload bytes, the file has {payload_len}")
    return header["arrays"]


def deserialize(data: bytes, source: str = "<bytes>") -> Any:
    """Inverse of `serialize`. Checks size, magic, version and checksum, then the header's
    array table, then (in each class's `_from_state`) that the arrays agree with the
    metadata and with each other; any failure is a CorruptIndexError naming the problem."""
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
    if _PREFIX.size + header_len > len(body):
        raise CorruptIndexError(f"{source}: header length {header_len} runs past the end of the file")
    try:
        header = json.loads(body[_PREFIX.size:_PREFIX.size + header_len])
    except ValueError as err:
        raise CorruptIndexError(f"{source}: unreadable header ({err})") from err
    payload = body[_PREFIX.size + header_len:]
    arrays = {e["name"]: np.frombuffer(payload, np.dtype(e["dtype"]), math.prod(e["shape"]),
                                       e["offset"]).reshape(e["shape"]).copy()
              for e in _entries(header, len(payload), source)}
    kind = header["kind"]
    try:
        return _load(kind, header["meta"], arrays)
    except CorruptIndexError:
        raise
    except Exception as err:  # noqa: BLE001 - any inconsistency of a file is corruption
        other = _other_kind(kind, header["meta"], arrays)
        if other is not None:
            raise CorruptIndexError(f"{source}: header names kind {kind!r}, but the metadata and "
                                    f"arrays are those of kind {other!r}") from err
        what = "" if isinstance(err, (ValueError, _Missing)) else f"{type(err).__name__}: "
        raise CorruptIndexError(f"{source}: inconsistent {kind} ({what}{err})") from err


def write_index(obj: Any, path: str | os.PathLike) -> None:
    """Write a trained qetvec object (codec, index or compressed matrix) to `path`, atomically."""
    write_bytes_atomic(path, serialize(obj))


def read_index(path: str | os.PathLike) -> Any:
    """Read back an object written by `write_index`; raises CorruptIndexError if damaged."""
    return deserialize(Path(path).read_bytes(), source=str(path))
