"""Codecs under test that are not one FAISS index or one QETQuantizer: each has ``train(x)``,
``sa_encode(x) -> (n, code_size) uint8`` and ``sa_decode(codes) -> (n, d) float32``, like a
FAISS index, so the benchmark runner treats every method alike."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

FP16_MAX = float(np.finfo(np.float16).max)


class NormStoredCodec:
    """A code for unit vectors applied to any rows: each row's L2 norm is stored beside the
    inner code as float16 (2 bytes, counted in the code), the inner code encodes x / ||x||.

    Code layout per row: ``inner.sa_encode(x / ||x||)`` bytes, then the norm's 2 bytes (little
    endian float16). Decode: ``inner.sa_decode(...) * norm``. A zero row stays zero.
    """

    NORM_BYTES = 2

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @property
    def code_size(self) -> int:
        return int(self.inner.sa_code_size()) + self.NORM_BYTES

    def _split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        norms = np.linalg.norm(x, axis=1, keepdims=True).astype(np.float32)
        if norms.max(initial=0.0) > FP16_MAX:
            raise ValueError(f"a row norm of {norms.max():.3g} does not fit the float16 norm (max {FP16_MAX:g})")
        return x / np.maximum(norms, np.finfo(np.float32).tiny), norms

    def train(self, x: np.ndarray) -> None:
        self.inner.train(self._split(x)[0])

    def sa_encode(self, x: np.ndarray) -> np.ndarray:
        unit, norms = self._split(x)
        norm_bytes = norms.astype("<f2").view(np.uint8)
        return np.ascontiguousarray(np.hstack([self.inner.sa_encode(unit), norm_bytes]))

    def sa_decode(self, codes: np.ndarray) -> np.ndarray:
        inner_codes = np.ascontiguousarray(codes[:, : -self.NORM_BYTES])
        norms = np.ascontiguousarray(codes[:, -self.NORM_BYTES:]).view("<f2").astype(np.float32)
        return self.inner.sa_decode(inner_codes) * norms


class FitCodecAdapter:
    """`qetvec.fit_codec(x_train, bytes_per_row=B, metric=None, **options)` as a method:
    `train` runs the budget search on the training rows; encode / decode go through the codec
    it returns. metric=None: B bytes of code alone, as FAISS's sa_encode counts them (under
    "l2" a codec with residual stages would give 4 of them to a norm stored for the index's
    scan). `options` bound the search (families, sample_rows, beam)."""

    def __init__(self, fit_codec: Callable[..., Any], bytes_per_row: int, **options: Any) -> None:
        self.fit_codec, self.bytes_per_row, self.options = fit_codec, bytes_per_row, options
        self.codec: Any = None

    def train(self, x: np.ndarray) -> None:
        self.codec = self.fit_codec(x, bytes_per_row=self.bytes_per_row, metric=None, **self.options)

    def sa_encode(self, x: np.ndarray) -> np.ndarray:
        return self.codec.encode(x)

    def sa_decode(self, codes: np.ndarray) -> np.ndarray:
        return self.codec.decode(codes)

    def details(self) -> dict[str, Any]:
        """The winner and fit_codec's report (every candidate it measured), for the results."""
        return {"winner": str(getattr(self.codec, "report_winner", repr(self.codec))),
                "fit_report": _plain(getattr(self.codec, "report", None))}


def _plain(value: Any) -> Any:
    """`value` as JSON-ready lists, dicts, strings and numbers (anything else as its repr)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)
