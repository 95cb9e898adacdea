"""Matrix mode (the paper's QEM setting): compress one matrix under one byte budget.

Everything stored counts: the bit-packed stream of every row's swap records and group codes
(no per-row padding), every stage's quantized codebooks and their (low, step) scales.
Codebooks are trained on the matrix itself, as the paper does.

On disk (`qetvec.write_index`) a compressed matrix takes exactly `nbytes` for its arrays (the
stream, bit-packed codebooks without padding, float32 scales) plus the file's header and
checksum, at most `file_overhead_bytes(stages)`.

Budget split, following the reference implementation: swap records and scales are paid
first; what remains is shared by the stages in the proportions `budget_split`; each stage
takes the largest codebook size ksub whose codes and codebook fit its share. Unlike the
reference, a stage's unspent share rolls over to the next stage.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from qetvec._validation import as_float_matrix, check_positive_int, check_seed, check_stages
from qetvec.io import register
from qetvec.layout import CodeLayout
from qetvec.stage import (QETStage, decode_stages, fit_stages, stages_from_state,
                          stages_state)
from qetvec.tree import EntanglementTree

MAX_KSUB = 2 ** 16


def file_overhead_bytes(stages: int) -> int:
    """Upper bound of what `write_index` adds to `CompressedMatrix.nbytes`: the 20-byte
    prefix, the 32-byte SHA-256 and the JSON header (array table and stage settings, about
    280 bytes per stage, bounded here by 384 per stage plus 460)."""
    return 20 + 32 + 460 + 384 * stages


@register("CompressedMatrix")
class CompressedMatrix:
    """A matrix (n, d) compressed by `compress_matrix`; `decode()` restores an approximation."""

    def __init__(self, n: int, stages: list[QETStage], stream: np.ndarray):
        self.n, self.d = n, stages[0].d
        self.stages = stages
        self.layout = CodeLayout([(s.tree.n_bits, s.m, s.width) for s in stages])
        self.stream = stream  # uint8, ceil(n * layout.row_bits / 8) bytes

    @property
    def shape(self) -> tuple[int, int]:
        return self.n, self.d

    @property
    def ksub(self) -> list[int]:
        """Codebook size chosen for each stage."""
        return [s.ksub for s in self.stages]

    @property
    def nbytes(self) -> int:
        """Exact bytes stored: code/swap stream plus every stage's codebooks and scales."""
        return len(self.stream) + sum(s.codebook_bytes() for s in self.stages)

    def decode(self) -> np.ndarray:
        """Approximation (n, d) float32 of the compressed matrix."""
        values = self.layout.unpack(self.stream, self.n, row_stride_bits=self.layout.row_bits)
        return decode_stages(self.stages, self.layout.split(values))

    def __repr__(self) -> str:
        return f"CompressedMatrix(shape={self.shape}, ksub={self.ksub}, nbytes={self.nbytes})"

    def _state(self) -> tuple[dict, dict[str, np.ndarray]]:
        metas, arrays = stages_state(self.stages)
        return {"n": self.n, "stages": metas}, {"stream": self.stream, **arrays}

    @classmethod
    def _from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "CompressedMatrix":
        return cls(meta["n"], stages_from_state(meta["stages"], arrays), arrays["stream"])

    def _check_state(self) -> None:
        """After reading a file: stages consistent, stream uint8 of exactly n rows' bytes."""
        check_stages(self.stages, self.d)
        nbytes = (check_positive_int(self.n, "n", low=0) * self.layout.row_bits + 7) // 8
        if self.stream.dtype != np.uint8 or self.stream.shape != (nbytes,):
            raise ValueError(f"stream must be uint8 ({nbytes},) for n={self.n}, got "
                             f"{self.stream.dtype} {self.stream.shape}")


def _largest_ksub(n: int, d: int, m: int, entry_bits: int, target_bits: float) -> int | None:
    """Largest ksub in [1, min(n, 2**16)] whose codes and codebook fit `target_bits`."""
    def cost(k: int) -> int:
        width = math.ceil(math.log2(k)) if k > 1 else 0
        return n * m * width + 8 * ((k * d * entry_bits + 7) // 8)

    if cost(1) > target_bits:
        return None
    lo, hi = 1, min(n, MAX_KSUB)
    while lo < hi:  # cost is non-decreasing in k
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if cost(mid) <= target_bits else (lo, mid - 1)
    return lo


def plan_ksubs(n: int, d: int, budget_bytes: int, m: int, levels: Sequence[int],
               budget_split: Sequence[float], codebook_bits: int | None) -> list[int]:
    """Codebook size of each stage for an (n, d) matrix under `budget_bytes`: swap records
    and scales are paid first, stage s then gets budget_split[s] of the rest plus what the
    stages before it left unspent, and takes the largest ksub that fits. ValueError if some
    stage cannot hold even one codeword per group."""
    entry_bits = 32 if codebook_bits is None else codebook_bits
    swap_bits = n * sum(EntanglementTree(d, lv).n_bits for lv in levels)
    scale_bits = 64 * len(levels) if codebook_bits is not None else 0
    spendable = 8 * budget_bytes - swap_bits - scale_bits - 7  # 7: last byte of the stream
    ksubs, carry = [], 0.0
    for s, share in enumerate(budget_split):
        target = share * spendable + carry
        k = _largest_ksub(n, d, m, entry_bits, target)
        if k is None:
            raise ValueError(
                f"budget_bytes={budget_bytes} is too small: stage {s} cannot store even one "
                f"codeword per group after {swap_bits // 8} bytes of swap records")
        width = math.ceil(math.log2(k)) if k > 1 else 0
        carry = target - (n * m * width + 8 * ((k * d * entry_bits + 7) // 8))
        ksubs.append(k)
    return ksubs


def _per_stage(values: object, name: str) -> list:
    """`values` as a list, one entry per stage; TypeError for a scalar or a string."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a sequence with one entry per stage, got {values!r}")
    return list(values)


def _check_settings(d: int, m: object, levels: object, budget_split: object,
                    codebook_bits: object, seed: object,
                    niter: object) -> tuple[int, list[int], list[float], int]:
    """Validated (m, levels, budget_split, seed); errors name the argument and what was given."""
    m = check_positive_int(m, "m", high=d)
    levels = [check_positive_int(v, "levels", low=0) for v in _per_stage(levels, "levels")]
    split = _per_stage(budget_split, "budget_split")
    if not all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in split):
        raise TypeError(f"budget_split must hold numbers, got {budget_split!r}")
    split = [float(v) for v in split]
    if len(levels) != len(split) or not levels:
        raise ValueError(f"levels ({len(levels)}) and budget_split ({len(split)}) need one entry "
                         "per stage, at least one stage")
    if not all(math.isfinite(v) and v > 0 for v in split) or sum(split) > 1 + 1e-9:
        raise ValueError(f"budget_split must be positive finite shares summing to <= 1, got {budget_split}")
    if codebook_bits is not None:
        check_positive_int(codebook_bits, "codebook_bits", 1, 16)
    check_positive_int(niter, "niter")
    return m, levels, split, check_seed(seed)


def compress_matrix(x: np.ndarray, budget_bytes: int, m: int,
                    levels: Sequence[int] = (3, 0), budget_split: Sequence[float] = (0.7, 0.3),
                    codebook_bits: int | None = 10, seed: int = 0,
                    niter: int = 25) -> CompressedMatrix:
    """Compress x (n, d) into at most `budget_bytes` bytes, everything included.

    Defaults are the reference implementation's: 2 stages, tree depths 3 and 0, 70% / 30%
    of the budget after swap records (`plan_ksubs`), 10-bit codebooks. `levels` and
    `budget_split` give one entry per stage. Raises ValueError if the budget cannot hold
    even one codeword per group in some stage.

    Scale-invariant: the stages are trained on x * 2**-e, e the exponent that brings
    max |x| into [0.5, 1) (exact in float32), and their codebooks scaled back by 2**e, so
    compressing s * x (s a power of two) gives s times the reconstruction of x, bit for bit,
    from 1e-38 to 1e38: k-means never squares numbers outside float32's range. The scale
    costs no byte: it lives in the codebooks (or their (low, step))."""
    x = as_float_matrix(x, "x", check_norms=False)  # rescaled below: any finite float32 is fine
    n, d = x.shape
    budget_bytes = check_positive_int(budget_bytes, "budget_bytes")
    m, levels, budget_split, seed = _check_settings(d, m, levels, budget_split, codebook_bits, seed, niter)
    ksubs = plan_ksubs(n, d, budget_bytes, m, levels, budget_split, codebook_bits)
    stages = [QETStage(d, m, k, lv, codebook_bits, seed + 1000 * s, niter)
              for s, (k, lv) in enumerate(zip(ksubs, levels))]
    exponent = math.frexp(float(np.abs(x).max()))[1]  # max |x| = f * 2**exponent, f in [0.5, 1)
    # the matrix is its own training set, and its quality is measured on itself: few rows per
    # codeword is matrix mode's regime (the budget decides), not a poorly trained codebook
    parts = fit_stages(stages, np.ldexp(x, -exponent), warn_few_rows=False)
    for stage in stages:
        stage.scale_codebooks(exponent)
    layout = CodeLayout([(st.tree.n_bits, st.m, st.width) for st in stages])
    values = np.concatenate([np.concatenate([b, c], axis=1) for b, c in parts], axis=1)
    return CompressedMatrix(n, stages, layout.pack(values, row_stride_bits=layout.row_bits))
