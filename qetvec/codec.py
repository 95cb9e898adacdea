"""The codec interface: what indexes, the ADC, `io` and the adapters need from a vector codec.

A codec maps rows x (n, d) float32 to fixed-size codes uint8 (n, code_size) and back. For
search it also describes its reconstruction as a sum of *lookup units* in a rotated space:

    x_hat = R^T y_hat,   y_hat[j] = sum over units u covering position j of book_u[c_u][j]

R (d, d) orthogonal (`rotate`; the identity for codecs without a transform), and each unit u
reads one codeword index c_u (`code_width[u]` bits at bit `code_bit[u]` of the row's code,
LSB first as in `qetvec.layout`) and a pattern p_u (bits gathered from the code by runs), and
adds book_u[c_u] at positions that depend on p_u: position j of the unit takes query column
sources[u][p_u, j]. Inner products then split over units,

    <q, x_hat> = <R q, y_hat> = sum_u  T_u[p_u, c_u],   T_u[p, c] = sum_j (Rq)[sources[u][p, j]] * books[u][c, j]

which is all the ADC scans (`qetvec.adc`). Plain PQ has one unit per group and one pattern;
QET's swap tree adds patterns (the swap bits that move query columns into a group); residual
stages add units that overlap, so ||x_hat||^2 no longer splits over units (`per_row_norm`:
an L2 index then stores it per row).

Implementations register with `qetvec.io.register` and provide `_state()` / `_from_state()`
(and optionally `_check_state()`); indexes store them with `codec_state` / `codec_from_state`,
so an index holds any registered codec. `QETQuantizer` (`qetvec.quantizer`) is the one
built in.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from qetvec.io import kind_class


@dataclass
class LookupUnits:
    """Every table lookup of a scan (U units, R pattern runs), as flat int64 arrays for the
    kernels, and the tables' contents.

    code_bit[u], code_width[u]: bit offset / width of unit u's codeword index in the row;
    ksub[u]: codewords; table_off[u]: first table entry (tables are laid out unit by unit,
    pattern-major: entry table_off[u] + p * ksub[u] + c); the unit's pattern is the OR of runs
    r in run_ptr[u]:run_ptr[u+1], each run_len[r] bits read at bit run_start[r] and shifted
    left by run_shift[r]. sources[u] (2**r, npos) int64: the rotated query's column at each of
    the unit's positions, per pattern; books[u] (ksub, npos) float32: each codeword's entries
    at those positions."""

    code_bit: np.ndarray
    code_width: np.ndarray
    ksub: np.ndarray
    table_off: np.ndarray
    run_ptr: np.ndarray
    run_start: np.ndarray
    run_len: np.ndarray
    run_shift: np.ndarray
    sources: list[np.ndarray]
    books: list[np.ndarray]
    table_size: int

    def kernel_args(self) -> tuple[np.ndarray, ...]:
        """The arrays the scan kernels read a row's table entries with."""
        return (self.code_bit, self.code_width, self.ksub, self.table_off,
                self.run_ptr, self.run_start, self.run_len, self.run_shift)


class Codec(ABC):
    """A trained-or-not vector codec with a fixed code size (see the module docstring).

    Attributes every codec has: d (input dimension), code_size (bytes per row of `encode`)."""

    d: int
    code_size: int

    @property
    @abstractmethod
    def is_trained(self) -> bool:
        """Whether `encode` / `decode` can run."""

    @abstractmethod
    def train(self, x: np.ndarray) -> "Codec":
        """Learn from rows x (n, d) and return the trained codec: self, or, for a codec chosen
        at training time (`qetvec.fit.FitCodec`), the one chosen. A failure leaves the codec
        as it was. Its code_size and per_row_norm hold once trained."""

    @abstractmethod
    def encode(self, x: np.ndarray) -> np.ndarray:
        """Codes uint8 (n, code_size) of rows x (n, d)."""

    @abstractmethod
    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Reconstructions float32 (n, d) of codes uint8 (n, code_size)."""

    @abstractmethod
    def codebook_bytes(self) -> int:
        """Bytes of shared state (codebooks, transform, scales), reported apart from codes."""

    @property
    @abstractmethod
    def per_row_norm(self) -> bool:
        """True when units overlap (residual stages), so an L2 search needs ||x_hat||^2 per row."""

    @abstractmethod
    def lookup_units(self) -> LookupUnits | None:
        """The trained codec's lookup units, or None when its tables would be too large
        (the ADC then scores decoded rows: exact, slower)."""

    def rotate(self, x: np.ndarray) -> np.ndarray:
        """Rows x (n, d) float32 in the space the lookup units live in (x @ R.T); identity here."""
        return x

    def pq_codebooks(self) -> np.ndarray:
        """Codebooks (M, ksub, dsub) float32 when this trained codec is plain product
        quantization of its rotated rows `rotate(x)` (M groups of dsub columns, codes of
        log2(ksub) bits packed LSB first: FAISS's ProductQuantizer layout); ValueError otherwise."""
        raise ValueError(f"{self} is not plain product quantization")

    # FAISS's codec names (faiss.Index.sa_encode / sa_decode / sa_code_size)
    def sa_encode(self, x: np.ndarray) -> np.ndarray:
        return self.encode(x)

    def sa_decode(self, codes: np.ndarray) -> np.ndarray:
        return self.decode(codes)

    def sa_code_size(self) -> int:
        return self.code_size

    def _check_trained(self) -> None:
        if not self.is_trained:
            raise RuntimeError(f"{type(self).__name__} is not trained: call train(x) first")


def codec_state(codec: Codec) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) storing a registered codec inside another object's state: meta
    {"kind", "meta"}, arrays prefixed "codec."."""
    kind = getattr(type(codec), "_kind", None)
    if kind is None or not isinstance(codec, Codec):
        raise TypeError(f"codec must be a registered qetvec codec, got {type(codec).__name__}")
    meta, arrays = codec._state()
    return {"kind": kind, "meta": meta}, {f"codec.{name}": arr for name, arr in arrays.items()}


def codec_from_state(meta: Any, arrays: Any) -> Codec:
    """Inverse of `codec_state` (arrays: the enclosing object's arrays, `qetvec.io`'s mapping);
    ValueError naming the problem for an unknown or non-codec kind."""
    if not isinstance(meta, dict) or set(meta) != {"kind", "meta"}:
        raise ValueError(f"codec: expected {{'kind', 'meta'}}, got {meta!r}")
    cls = kind_class(meta["kind"])
    if not issubclass(cls, Codec):
        raise ValueError(f"codec: kind {meta['kind']!r} is not a codec")
    codec = cls._from_state(meta["meta"], arrays.prefixed("codec."))
    check = getattr(codec, "_check_state", None)
    if check is not None:
        check()
    return codec


def stored_codec(meta: dict, arrays: Any) -> Codec:
    """The codec inside an index's or table's state: meta["codec"] (`codec_state`), or, in
    files written before the codec interface, meta["quantizer"] (a QETQuantizer whose arrays
    are not prefixed)."""
    if "codec" in meta:
        return codec_from_state(meta["codec"], arrays)
    codec = kind_class("QETQuantizer")._from_state(meta["quantizer"], arrays)
    codec._check_state()
    return codec


def make_codec(d: int, codec: Codec | None, **qet_settings: Any) -> Codec:
    """The codec an index is built with: `codec` (any `Codec` of dimension d, untrained or
    trained), or else a `QETQuantizer(d, **qet_settings)` (qet_settings["m"] required)."""
    if codec is None:
        if qet_settings.get("m") is None:
            raise TypeError("give m (column groups) to build a QETQuantizer, or a codec")
        return kind_class("QETQuantizer")(d, **qet_settings)
    if not isinstance(codec, Codec):
        raise TypeError(f"codec must be a qetvec.codec.Codec, got {type(codec).__name__}")
    if codec.d != d:
        raise ValueError(f"codec has d={codec.d}, the index d={d}")
    if qet_settings.get("m") is not None:
        raise TypeError("give either a codec or m (and the other QETQuantizer settings), not both")
    return codec
