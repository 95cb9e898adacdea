"""One QET stage: entanglement tree, then product quantization of the reordered columns.

A stage maps rows x (n, d) to swap bits (n, T) and group codes (n, m); stages are stacked
on residuals by `encode_stages` / `decode_stages`, one implementation for vector mode
(`qetvec.quantizer`) and matrix mode (`qetvec.matrix`).

Groups are contiguous columns of the reordered rows, of equal widths (`m` groups, the first
d % m one column wider: numpy.array_split's rule) or of given widths, and each group has its
own codebook size ksub_g (per-group bit allocation; a group of width 1 is a scalar quantizer
whose k-means codebook is the Lloyd-Max quantizer of that column).
"""
from __future__ import annotations

import copy
import math
from typing import Callable, Sequence

import numpy as np

from qetvec._validation import check_bool, check_positive_int, check_training_scale
from qetvec.beam import beam_encode, search_stages
from qetvec.codebook_update import check_updatable, update_codebooks
from qetvec.codebooks import (assign_group_codes, check_training_size, decode_group_codes,
                              dequantize_codebook, pack_uints, quantize_codebook,
                              train_group_codebooks, unpack_uints)
from qetvec.tree import EntanglementTree


BEAM_TRAIN_BYTES = 1 << 30  # residuals of all beam entries held while training with a beam
MAX_TRAIN_BEAM = 8  # training's beam width (measured on GloVe-50, 10 x 11-bit stages: training with
                    # beam 8 and encoding with 32 reach held-out MSE 0.0872; beam 16: 0.0891)


def group_bounds(d: int, m: int | Sequence[int]) -> np.ndarray:
    """Column bounds (m + 1,) int64 of contiguous groups: m equal groups (the first d % m one
    column wider, numpy.array_split's rule) for an int m, or groups of the given widths."""
    if np.ndim(m) == 0:
        if not 1 <= m <= d:
            raise ValueError(f"m must be in [1, d={d}], got {m}")
        sizes = np.full(m, d // m, dtype=np.int64)
        sizes[: d % m] += 1
    else:
        sizes = np.asarray([check_positive_int(w, "group width") for w in m], np.int64)
        if sizes.sum() != d:
            raise ValueError(f"group widths {sizes.tolist()} sum to {sizes.sum()}, expected d={d}")
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def code_width(ksub: int) -> int:
    """Bits of a code indexing ksub codewords: ceil(log2 ksub), 0 for a single codeword."""
    return math.ceil(math.log2(ksub)) if ksub > 1 else 0


class QETStage:
    """Tree of depth `levels`, column groups (m: a count or per-group widths), `ksub`
    codewords per group (one int, or one per group).

    Trained state: codebooks_ (m, ksub_max, dsub_max) float32, zero-padded past each group's
    codewords and width; with `codebook_bits`, also codebook_levels_ (uint16, same shape),
    codebook_low_ and codebook_step_, and codebooks_ holds their dequantized values."""

    def __init__(self, d: int, m: int | Sequence[int], ksub: int | Sequence[int], levels: int,
                 codebook_bits: int | None = None, seed: int = 0, niter: int = 25):
        self.d = check_positive_int(d, "d")
        self.levels = check_positive_int(levels, "levels", low=0)
        self.codebook_bits = None if codebook_bits is None else \
            check_positive_int(codebook_bits, "codebook_bits", 1, 16)
        self.seed = check_positive_int(seed, "seed", low=0)  # numpy's generators: any size
        self.niter = check_positive_int(niter, "niter")
        self.tree = EntanglementTree(self.d, self.levels)
        self.bounds = group_bounds(self.d, check_positive_int(m, "m", 1, self.d) if np.ndim(m) == 0 else m)
        self.m = len(self.bounds) - 1
        ksubs = [ksub] * self.m if np.ndim(ksub) == 0 else list(ksub)
        if len(ksubs) != self.m:
            raise ValueError(f"ksub has {len(ksubs)} entries for {self.m} groups")
        self.ksubs = np.asarray([check_positive_int(k, "ksub", 1, 2 ** 16) for k in ksubs], np.int64)
        self.widths = np.asarray([code_width(int(k)) for k in self.ksubs], np.int64)
        self.codebooks_: np.ndarray | None = None

    @property
    def ksub(self) -> int:
        """The codebook size shared by every group (ValueError if groups differ)."""
        return int(self._uniform(self.ksubs, "codebook sizes"))

    @property
    def width(self) -> int:
        """The code width shared by every group (ValueError if groups differ)."""
        return int(self._uniform(self.widths, "code widths"))

    def _uniform(self, values: np.ndarray, what: str) -> int:
        if (values != values[0]).any():
            raise ValueError(f"this stage's groups have unequal {what}: {values.tolist()}")
        return int(values[0])

    @property
    def dsub_max(self) -> int:
        return int(np.diff(self.bounds).max())

    @property
    def code_bits(self) -> int:
        """Bits of one row's code in this stage: swap record plus every group code."""
        return self.tree.n_bits + int(self.widths.sum())

    def fields(self) -> tuple[int, int, list[int]]:
        """(swap bits, groups, per-group code widths): this stage in a `qetvec.layout.CodeLayout`."""
        return self.tree.n_bits, self.m, self.widths.tolist()

    def fit_encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Train the m codebooks on the reordered rows of x (n, d) float32 and return their
        codes as `encode` would: (swap bits (n, T) bool, group codes (n, m) int64)."""
        y, bits = self.tree.apply(x)
        self.fit_reordered(y)
        return bits, assign_group_codes(y, self.bounds, self.codebooks_, self.ksubs)

    def fit_reordered(self, y: np.ndarray) -> None:
        """Train the m codebooks (quantized with `codebook_bits`) on reordered rows y (n, d)."""
        books = train_group_codebooks(y, self.bounds, self.ksubs, self.seed, self.niter)
        if self.codebook_bits is not None:  # scales from the stored entries, not the padding
            levels, low, step = quantize_codebook(self.unpadded(books), self.codebook_bits)
            self.codebook_levels_ = self.padded(levels, np.uint16)
            self.codebook_low_, self.codebook_step_ = low, step
            books = dequantize_codebook(self.codebook_levels_, low, step)
        self.codebooks_ = books

    def encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Swap bits (n, T) bool and group codes (n, m) int64 for rows x (n, d) float32."""
        y, bits = self.tree.apply(x)
        return bits, assign_group_codes(y, self.bounds, self.codebooks_, self.ksubs)

    def decode_reordered(self, codes: np.ndarray) -> np.ndarray:
        """Reconstruction (n, d) float32 in the reordered (tree) space."""
        return decode_group_codes(codes, self.bounds, self.codebooks_)

    def decode(self, bits: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Reconstruction (n, d) float32 in the original column order."""
        return self.tree.unpermute(self.decode_reordered(codes), bits)

    def scale_codebooks(self, exponent: int) -> None:
        """Multiply the trained codebooks by 2**exponent. A power of two scales float32
        exactly, so a stage trained on x * 2**-exponent, then scaled, decodes the codes of x to
        2**exponent times its reconstructions bit for bit (`qetvec.matrix` trains on rows
        rescaled to [-1, 1) so that k-means never squares numbers outside float32's range).
        With codebook quantization the levels stay and (low, step) are scaled."""
        if self.codebook_bits is None:
            books = np.ldexp(self.codebooks_, exponent)
        else:
            self.codebook_low_ = math.ldexp(self.codebook_low_, exponent)
            self.codebook_step_ = math.ldexp(self.codebook_step_, exponent)
            books = dequantize_codebook(self.codebook_levels_, self.codebook_low_, self.codebook_step_)
        if not np.isfinite(books).all():
            raise ValueError(f"codebooks scaled by 2**{exponent} overflow float32: the data reach "
                             "float32's largest values")
        self.codebooks_ = books

    @property
    def entries(self) -> int:
        """Codebook entries stored: sum over groups of ksub_g * width_g (no padding)."""
        return int((self.ksubs * np.diff(self.bounds)).sum())

    def codebook_bytes(self) -> int:
        """Bytes to store the codebooks: entries at codebook_bits each (bit-packed) plus
        8 bytes for (low, step), or float32 entries without codebook quantization."""
        if self.codebook_bits is None:
            return 4 * self.entries
        return (self.entries * self.codebook_bits + 7) // 8 + 8

    def unpadded(self, books: np.ndarray) -> np.ndarray:
        """The stored entries (entries,) of books (m, ksub_max, dsub_max): group by group,
        codeword by codeword, the group's own codewords and columns only."""
        return np.concatenate([books[g, :k, : b - a].reshape(-1) for g, (a, b, k) in
                               enumerate(zip(self.bounds[:-1], self.bounds[1:], self.ksubs))])

    def padded(self, entries: np.ndarray, dtype: type) -> np.ndarray:
        """Inverse of `unpadded`: books (m, ksub_max, dsub_max) with zero padding."""
        books = np.zeros((self.m, int(self.ksubs.max()), self.dsub_max), dtype=dtype)
        start = 0
        for g, (a, b, k) in enumerate(zip(self.bounds[:-1], self.bounds[1:], self.ksubs)):
            size = k * (b - a)
            books[g, :k, : b - a] = entries[start:start + size].reshape(k, b - a)
            start += size
        return books


def fit_stages(stages: list[QETStage], x: np.ndarray, beam: int = 1, seed: int = 0,
               warn_few_rows: bool = True, codes: bool = True,
               update_rounds: int = 0) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Train stage s on the residual left by stages 0..s-1 (x (n, d) float32); return the
    codes of x as `encode_stages` would (None if not `codes`). With beam > 1, residuals are
    those of every entry of a beam search (`qetvec.beam`) of width min(beam, MAX_TRAIN_BEAM)
    over a seeded sample of at most BEAM_TRAIN_BYTES of them (encoding then searches with the
    whole beam: the codebooks cost that much less to train). All or nothing: the stages are
    trained as copies and take the new state only once every stage has trained, so a failure
    leaves them as they were. Warns when a stage has < 39 rows per codeword unless
    `warn_few_rows` is False. `update_rounds` rounds of codebook update follow
    (`qetvec.codebook_update`: full-width stages only), each encoding x with the whole beam."""
    check_training_scale(x)
    if update_rounds:
        check_updatable(stages)
    for stage in stages:
        check_training_size(len(x), int(stage.ksubs.max()), warn=warn_few_rows)
    trained = copy.deepcopy(stages)
    if beam == 1:
        parts = _stack(trained, x, QETStage.fit_encode)
    else:
        width = min(beam, MAX_TRAIN_BEAM)
        rows = min(len(x), max(1, BEAM_TRAIN_BYTES // (4 * width * x.shape[1])))
        sample = x[np.sort(np.random.default_rng(seed).choice(len(x), rows, replace=False))]
        search_stages(trained, sample, width, fit=lambda stage, residuals: stage.fit_reordered(residuals))
        parts = beam_encode(trained, x, beam) if codes else None
    for _ in range(update_rounds):
        update_codebooks(trained, x, np.concatenate([c for _, c in encode_stages(trained, x, beam)], axis=1))
    if update_rounds and codes:
        parts = encode_stages(trained, x, beam)
    for old, new in zip(stages, trained):
        old.__dict__.update(new.__dict__)
    return parts


def encode_stages(stages: list[QETStage], x: np.ndarray, beam: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per stage (swap bits, codes) for rows x (n, d), each stage coding the residual:
    greedily, or by a beam search of width `beam` (stages without trees)."""
    return _stack(stages, x, QETStage.encode) if beam == 1 else beam_encode(stages, x, beam)


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


def stages_state(stages: list[QETStage]) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Configuration and trained arrays of a stage stack, for `qetvec.io`.

    Codebooks are stored as `codebook_bytes()` counts them: the unpadded entries, float32, or
    bit-packed at codebook_bits with (low, step) as two float32. Group widths (columns) and
    codebook sizes are stored per group: the entries' count alone would not pin them."""
    metas, arrays = [], {}
    for s, stage in enumerate(stages):
        metas.append({"d": stage.d, "widths": np.diff(stage.bounds).tolist(), "ksubs": stage.ksubs.tolist(),
                      "levels": stage.levels, "codebook_bits": stage.codebook_bits, "seed": stage.seed,
                      "niter": stage.niter, "trained": stage.codebooks_ is not None})
        if stage.codebooks_ is None:
            continue
        if stage.codebook_bits is None:
            arrays[f"stage{s}.codebooks"] = stage.unpadded(stage.codebooks_)
        else:
            arrays[f"stage{s}.codebook_levels"] = pack_uints(
                stage.unpadded(stage.codebook_levels_), stage.codebook_bits)
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
    """Inverse of `stages_state` (files written before per-group settings give "m" and "ksub")."""
    stages = []
    for s, meta in enumerate(metas):
        meta = dict(meta)
        trained = check_bool(meta.pop("trained"), f"stage{s}.trained")
        groups, ksubs = (meta.pop("widths"), meta.pop("ksubs")) if "widths" in meta else (meta.pop("m"), meta.pop("ksub"))
        if not isinstance(groups, (int, list)) or not isinstance(ksubs, (int, list)):
            raise ValueError(f"stage{s}: group widths and codebook sizes must be ints or lists, got {groups!r}, {ksubs!r}")
        stage = QETStage(m=groups, ksub=ksubs, **meta)
        if trained and stage.codebook_bits is None:
            books = _stored(arrays, f"stage{s}.codebooks", np.float32, stage.entries)
            stage.codebooks_ = stage.padded(books, np.float32)
        elif trained:
            low, step = (float(v) for v in _stored(arrays, f"stage{s}.codebook_scale", np.float32, 2))
            packed = _stored(arrays, f"stage{s}.codebook_levels", np.uint8,
                             (stage.entries * stage.codebook_bits + 7) // 8)
            entries = unpack_uints(packed, stage.entries, stage.codebook_bits)
            stage.codebook_levels_ = stage.padded(entries, np.uint16)
            stage.codebook_low_, stage.codebook_step_ = low, step
            stage.codebooks_ = dequantize_codebook(stage.codebook_levels_, low, step)
        stages.append(stage)
    return stages
