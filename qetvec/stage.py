"""One QET stage: entanglement tree, then product quantization of the reordered columns.

A stage maps rows x (n, d) to swap bits (n, T) and group codes (n, m); stages are stacked
on residuals by `encode_stages` / `decode_stages`, one implementation for vector mode
(`qetvec.codec`) and matrix mode (`qetvec.matrix`).
"""
from __future__ import annotations

import copy
import math
from typing import Callable

import numpy as np

from qetvec._validation import check_positive_int
from qetvec.codebooks import (assign_group_codes, check_training_size, decode_group_codes,
                              dequantize_codebook, pack_uints, quantize_codebook,
                              train_group_codebooks, unpack_uints)
from qetvec.tree import EntanglementTree


def group_bounds(d: int, m: int) -> np.ndarray:
    """Column bounds (m + 1,) int64 of m contiguous groups; when m does not divide d the
    first d % m groups get one column more (numpy.array_split's rule)."""
    if not 1 <= m <= d:
        raise ValueError(f"m must be in [1, d={d}], got {m}")
    sizes = np.full(m, d // m, dtype=np.int64)
    sizes[: d % m] += 1
    return np.concatenate([[0], np.cumsum(sizes)])


class QETStage:
    """Tree of depth `levels`, m column groups, `ksub` codewords per group.

    Trained state: codebooks_ (m, ksub, dsub_max) float32, zero-padded past each group's
    width; with `codebook_bits`, also codebook_levels_ (uint16, same shape), codebook_low_
    and codebook_step_, and codebooks_ holds their dequantized values."""

    def __init__(self, d: int, m: int, ksub: int, levels: int,
                 codebook_bits: int | None = None, seed: int = 0, niter: int = 25):
        if not 1 <= ksub <= 2 ** 16:
            raise ValueError(f"ksub must be in [1, 65536], got {ksub}")
        if codebook_bits is not None:
            check_positive_int(codebook_bits, "codebook_bits", 1, 16)
        check_positive_int(niter, "niter")
        self.d, self.m, self.ksub, self.levels = d, m, ksub, levels
        self.codebook_bits, self.seed, self.niter = codebook_bits, seed, niter
        self.tree = EntanglementTree(d, levels)
        self.bounds = group_bounds(d, m)
        self.width = math.ceil(math.log2(ksub)) if ksub > 1 else 0
        self.codebooks_: np.ndarray | None = None

    @property
    def dsub_max(self) -> int:
        return int(np.diff(self.bounds).max())

    def fit_encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Train the m codebooks on the reordered rows of x (n, d) float32 and return their
        codes as `encode` would: (swap bits (n, T) bool, group codes (n, m) int64)."""
        y, bits = self.tree.apply(x)
        books = train_group_codebooks(y, self.bounds, self.ksub, self.seed, self.niter)
        if self.codebook_bits is not None:  # scales from the stored entries, not the padding
            levels, low, step = quantize_codebook(_unpadded(self, books), self.codebook_bits)
            self.codebook_levels_ = _padded(self, levels, np.uint16)
            self.codebook_low_, self.codebook_step_ = low, step
            books = dequantize_codebook(self.codebook_levels_, low, step)
        self.codebooks_ = books
        return bits, assign_group_codes(y, self.bounds, books)

    def encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Swap bits (n, T) bool and group codes (n, m) int64 for rows x (n, d) float32."""
        y, bits = self.tree.apply(x)
        return bits, assign_group_codes(y, self.bounds, self.codebooks_)

    def decode_reordered(self, codes: np.ndarray) -> np.ndarray:
        """Reconstruction (n, d) float32 in the reordered (tree) space."""
        return decode_group_codes(codes, self.bounds, self.codebooks_)

    def decode(self, bits: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Reconstruction (n, d) float32 in the original column order."""
        return self.tree.unpermute(self.decode_reordered(codes), bits)

    def codebook_bytes(self) -> int:
        """Bytes to store the codebooks: entries at codebook_bits each (bit-packed) plus
        8 bytes for (low, step), or float32 entries without codebook quantization.
        Padding of unequal groups is not stored: d * ksub entries in all."""
        entries = self.d * self.ksub
        if self.codebook_bits is None:
            return 4 * entries
        return (entries * self.codebook_bits + 7) // 8 + 8


def fit_stages(stages: list[QETStage], x: np.ndarray,
               warn_few_rows: bool = True) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train stage s on the residual left by stages 0..s-1 (x (n, d) float32); return the
    codes of x as `encode_stages` would. All or nothing: the stages are trained as copies and
    take the new state only once every stage has trained, so a failure leaves them as they were.
    Warns when a stage has < 39 rows per codeword unless `warn_few_rows` is False."""
    for stage in stages:
        check_training_size(len(x), stage.ksub, warn=warn_few_rows)
    trained = copy.deepcopy(stages)
    parts = _stack(trained, x, QETStage.fit_encode)
    for old, new in zip(stages, trained):
        old.__dict__.update(new.__dict__)
    return parts


def encode_stages(stages: list[QETStage], x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per stage (swap bits, codes) for rows x (n, d), each stage coding the residual."""
    return _stack(stages, x, QETStage.encode)


def _stack(stages: list[QETStage], x: np.ndarray, code: Callable) -> list[tuple[np.ndarray, np.ndarray]]:
    """code(stage, residual) -> (bits, codes) for each stage in turn, each on the residual
    the stages before it left."""
    parts, residual = [], x
    for stage in stages:
        bits, codes = code(stage, residual)
        parts.append((bits, codes))
        if stage is not stages[-1]:
            residual = residual - stage.decode(bits, codes)
    return parts


def decode_stages(stages: list[QETStage], parts: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Sum of every stage's reconstruction (n, d) float32, each undoing its own swaps."""
    x_hat = stages[0].decode(*parts[0])
    for stage, (bits, codes) in zip(stages[1:], parts[1:]):
        x_hat += stage.decode(bits, codes)
    return x_hat


def _unpadded(stage: QETStage, books: np.ndarray) -> np.ndarray:
    """The d * ksub stored entries of books (m, ksub, dsub_max): group by group, codeword by
    codeword, the group's own columns only (padding is not stored)."""
    return np.concatenate([books[g, :, : b - a].reshape(-1)
                           for g, (a, b) in enumerate(zip(stage.bounds[:-1], stage.bounds[1:]))])


def _padded(stage: QETStage, entries: np.ndarray, dtype: type) -> np.ndarray:
    """Inverse of `_unpadded`: books (m, ksub, dsub_max) with zero padding."""
    books = np.zeros((stage.m, stage.ksub, stage.dsub_max), dtype=dtype)
    start = 0
    for g, (a, b) in enumerate(zip(stage.bounds[:-1], stage.bounds[1:])):
        size = stage.ksub * (b - a)
        books[g, :, : b - a] = entries[start:start + size].reshape(stage.ksub, b - a)
        start += size
    return books


def stages_state(stages: list[QETStage]) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Configuration and trained arrays of a stage stack, for `qetvec.io`.

    Codebooks are stored as `codebook_bytes()` counts them: d * ksub entries (no padding),
    float32, or bit-packed at codebook_bits with (low, step) as two float32."""
    metas, arrays = [], {}
    for s, stage in enumerate(stages):
        metas.append({"d": stage.d, "m": stage.m, "ksub": stage.ksub, "levels": stage.levels,
                      "codebook_bits": stage.codebook_bits, "seed": stage.seed, "niter": stage.niter,
                      "trained": stage.codebooks_ is not None})
        if stage.codebooks_ is None:
            continue
        if stage.codebook_bits is None:
            arrays[f"stage{s}.codebooks"] = _unpadded(stage, stage.codebooks_)
        else:
            arrays[f"stage{s}.codebook_levels"] = pack_uints(
                _unpadded(stage, stage.codebook_levels_), stage.codebook_bits)
            arrays[f"stage{s}.codebook_scale"] = np.array(
                [stage.codebook_low_, stage.codebook_step_], dtype=np.float32)
    return metas, arrays


def _stored(arrays: dict[str, np.ndarray], name: str, dtype: type, size: int) -> np.ndarray:
    """arrays[name], which must be a 1-D `dtype` array of `size` entries (ValueError naming it)."""
    arr = arrays[name]
    if arr.dtype != dtype or arr.shape != (size,):
        raise ValueError(f"{name} must be {np.dtype(dtype)} ({size},), got {arr.dtype} {arr.shape}")
    return arr


def stages_from_state(metas: list[dict], arrays: dict[str, np.ndarray]) -> list[QETStage]:
    """Inverse of `stages_state`."""
    stages = []
    for s, meta in enumerate(metas):
        meta = dict(meta)
        trained = meta.pop("trained")
        stage = QETStage(**meta)
        entries = stage.d * stage.ksub
        if trained and stage.codebook_bits is None:
            books = _stored(arrays, f"stage{s}.codebooks", np.float32, entries)
            stage.codebooks_ = _padded(stage, books, np.float32)
        elif trained:
            low, step = (float(v) for v in _stored(arrays, f"stage{s}.codebook_scale", np.float32, 2))
            packed = _stored(arrays, f"stage{s}.codebook_levels", np.uint8,
                             (entries * stage.codebook_bits + 7) // 8)
            entries = unpack_uints(packed, entries, stage.codebook_bits)
            stage.codebook_levels_ = _padded(stage, entries, np.uint16)
            stage.codebook_low_, stage.codebook_step_ = low, step
            stage.codebooks_ = dequantize_codebook(stage.codebook_levels_, low, step)
        stages.append(stage)
    return stages
