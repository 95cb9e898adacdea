"""One QET stage: entanglement tree, then product quantization of the reordered columns.

A stage maps rows x (n, d) to swap bits (n, T) and group codes (n, m); stages are stacked
on residuals by `encode_stages` / `decode_stages`, one implementation for vector mode
(`qetvec.codec`) and matrix mode (`qetvec.matrix`).
"""
from __future__ import annotations

import math

import numpy as np

from qetvec.codebooks import (assign, check_training_size, dequantize_codebook,
                              quantize_codebook, train_kmeans)
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
        if codebook_bits is not None and not 1 <= codebook_bits <= 16:
            raise ValueError(f"codebook_bits must be in [1, 16] or None, got {codebook_bits}")
        self.d, self.m, self.ksub, self.levels = d, m, ksub, levels
        self.codebook_bits, self.seed, self.niter = codebook_bits, seed, niter
        self.tree = EntanglementTree(d, levels)
        self.bounds = group_bounds(d, m)
        self.width = math.ceil(math.log2(ksub)) if ksub > 1 else 0
        self.codebooks_: np.ndarray | None = None

    @property
    def dsub_max(self) -> int:
        return int(np.diff(self.bounds).max())

    def fit(self, x: np.ndarray) -> "QETStage":
        """Train the m codebooks on the reordered rows of x (n, d) float32."""
        check_training_size(len(x), self.ksub)
        y, _ = self.tree.apply(x)
        books = np.zeros((self.m, self.ksub, self.dsub_max), dtype=np.float32)
        for g, (a, b) in enumerate(zip(self.bounds[:-1], self.bounds[1:])):
            books[g, :, : b - a] = train_kmeans(y[:, a:b], self.ksub, self.seed + g, self.niter)
        if self.codebook_bits is not None:
            levels, low, step = quantize_codebook(books, self.codebook_bits)
            self.codebook_levels_, self.codebook_low_, self.codebook_step_ = levels, low, step
            books = dequantize_codebook(levels, low, step)
        self.codebooks_ = books
        return self

    def encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Swap bits (n, T) bool and group codes (n, m) int64 for rows x (n, d) float32."""
        y, bits = self.tree.apply(x)
        codes = np.empty((len(x), self.m), dtype=np.int64)
        for g, (a, b) in enumerate(zip(self.bounds[:-1], self.bounds[1:])):
            codes[:, g] = assign(y[:, a:b], self.codebooks_[g, :, : b - a])
        return bits, codes

    def decode_reordered(self, codes: np.ndarray) -> np.ndarray:
        """Reconstruction (n, d) float32 in the reordered (tree) space."""
        y = np.empty((len(codes), self.d), dtype=np.float32)
        for g, (a, b) in enumerate(zip(self.bounds[:-1], self.bounds[1:])):
            # y[i, a:b] = codebooks_[g][codes[i, g]][:b - a] for every row i
            y[:, a:b] = self.codebooks_[g, codes[:, g], : b - a]
        return y

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


def fit_stages(stages: list[QETStage], x: np.ndarray) -> None:
    """Train stage s on the residual left by stages 0..s-1 (x (n, d) float32)."""
    residual = x
    for stage in stages:
        stage.fit(residual)
        if stage is not stages[-1]:
            residual = residual - stage.decode(*stage.encode(residual))


def encode_stages(stages: list[QETStage], x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per stage (swap bits, codes) for rows x (n, d), each stage coding the residual."""
    parts, residual = [], x
    for stage in stages:
        bits, codes = stage.encode(residual)
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


def stages_state(stages: list[QETStage]) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Configuration and trained arrays of a stage stack, for `qetvec.io`."""
    metas, arrays = [], {}
    for s, stage in enumerate(stages):
        metas.append({"d": stage.d, "m": stage.m, "ksub": stage.ksub, "levels": stage.levels,
                      "codebook_bits": stage.codebook_bits, "seed": stage.seed, "niter": stage.niter,
                      "trained": stage.codebooks_ is not None})
        if stage.codebooks_ is None:
            continue
        if stage.codebook_bits is None:
            arrays[f"stage{s}.codebooks"] = stage.codebooks_
        else:
            arrays[f"stage{s}.codebook_levels"] = stage.codebook_levels_
            arrays[f"stage{s}.codebook_scale"] = np.array(
                [stage.codebook_low_, stage.codebook_step_], dtype=np.float64)
    return metas, arrays


def stages_from_state(metas: list[dict], arrays: dict[str, np.ndarray]) -> list[QETStage]:
    """Inverse of `stages_state`."""
    stages = []
    for s, meta in enumerate(metas):
        trained = meta.pop("trained")
        stage = QETStage(**meta)
        if trained and stage.codebook_bits is None:
            stage.codebooks_ = arrays[f"stage{s}.codebooks"]
        elif trained:
            low, step = (float(v) for v in arrays[f"stage{s}.codebook_scale"])
            stage.codebook_levels_ = arrays[f"stage{s}.codebook_levels"]
            stage.codebook_low_, stage.codebook_step_ = low, step
            stage.codebooks_ = dequantize_codebook(stage.codebook_levels_, low, step)
        stages.append(stage)
    return stages
