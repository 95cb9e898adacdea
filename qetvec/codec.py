"""Vector mode: `QETQuantizer`, a FAISS-style codec with a fixed code size per row.

Every bit a reader needs is inside the row's code (swap records of every level, every
stage's group codes; layout in `qetvec.layout`); codebooks are shared state, reported by
`codebook_bytes()`. Encoding streams over `batch_size` rows so peak memory stays bounded.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from qetvec._validation import as_codes, as_float_matrix, check_positive_int, check_seed, check_stages, per_stage
from qetvec.io import register
from qetvec.layout import CodeLayout
from qetvec.stage import (QETStage, decode_stages, encode_stages, fit_stages, stages_from_state,
                          stages_state)


@register("QETQuantizer")
class QETQuantizer:
    """QET codec: `stages` stacked (tree -> m groups -> k-means) stages on residuals.

    Parameters
    ----------
    d : vector dimension.
    m : column groups per stage (need not divide d: see `qetvec.stage.group_bounds`).
    nbits : bits per group code, 1..16 (ksub = 2**nbits codewords), one int or one per stage.
    levels : tree depth, 0 = plain product quantization; one int or one per stage.
    stages : 1 + number of residual stages.
    codebook_bits : quantize codebooks to this many bits (CQO), or None for float32.
    seed, niter : k-means seed and iterations (faiss.Kmeans).
    batch_size : rows encoded / decoded at once.

    Code: uint8 (n, code_size), code_size = ceil(sum_s (T_s + m * nbits_s) / 8) bytes,
    T_s the swap bits of stage s's tree.
    """

    def __init__(self, d: int, m: int, nbits: int | Sequence[int] = 8,
                 levels: int | Sequence[int] = 1, stages: int = 1,
                 codebook_bits: int | None = None, seed: int = 0, niter: int = 25,
                 batch_size: int = 65536):
        self.d = check_positive_int(d, "d")
        self.m = check_positive_int(m, "m", high=self.d)
        n_stages = check_positive_int(stages, "stages")
        self.nbits = [check_positive_int(b, "nbits", 1, 16) for b in per_stage(nbits, n_stages, "nbits")]
        self.levels = [check_positive_int(v, "levels", 0) for v in per_stage(levels, n_stages, "levels")]
        seed = check_seed(seed)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.stages = [QETStage(self.d, self.m, 2 ** b, lv, codebook_bits, seed + 1000 * s, niter)
                       for s, (b, lv) in enumerate(zip(self.nbits, self.levels))]
        self.codebook_bits = self.stages[0].codebook_bits
        self.layout = CodeLayout([(st.tree.n_bits, st.m, st.width) for st in self.stages])
        self.code_size = self.layout.code_size

    @property
    def is_trained(self) -> bool:
        return all(stage.codebooks_ is not None for stage in self.stages)

    def train(self, x: np.ndarray) -> "QETQuantizer":
        """Learn every stage's codebooks from rows x (n, d); returns self."""
        fit_stages(self.stages, as_float_matrix(x, "x", self.d))
        return self

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Codes uint8 (n, code_size) for rows x (n, d)."""
        return self.encode_valid(as_float_matrix(x, "x", self.d, allow_empty=True))

    def encode_valid(self, x: np.ndarray) -> np.ndarray:
        """`encode` for rows that `as_float_matrix` already returned (float32, C order, d
        columns, finite): the indexes' add path, which validates once."""
        self._check_trained()
        codes = np.empty((len(x), self.code_size), dtype=np.uint8)
        for i in range(0, len(x), self.batch_size):
            codes[i:i + self.batch_size] = self.layout.pack(self.encode_fields(x[i:i + self.batch_size]))
        return codes

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Reconstructions float32 (n, d) of codes uint8 (n, code_size)."""
        codes = as_codes(codes, self.code_size)
        self._check_trained()
        out = np.empty((len(codes), self.d), dtype=np.float32)
        for i in range(0, len(codes), self.batch_size):
            batch = codes[i:i + self.batch_size]
            out[i:i + len(batch)] = self.decode_fields(self.layout.unpack(batch, len(batch)))
        return out

    def encode_fields(self, x: np.ndarray) -> np.ndarray:
        """Unpacked field values (n, fields) int64 in layout order, for validated rows x."""
        parts = encode_stages(self.stages, x)
        return np.concatenate([np.concatenate([bits, codes], axis=1) for bits, codes in parts], axis=1)

    def decode_fields(self, values: np.ndarray) -> np.ndarray:
        """Reconstructions (n, d) float32 from unpacked field values (n, fields)."""
        return decode_stages(self.stages, self.layout.split(values))

    def codebook_bytes(self) -> int:
        """Bytes of shared state (codebooks, and their scales with codebook quantization)."""
        return sum(stage.codebook_bytes() for stage in self.stages)

    # FAISS codec names (faiss.Index.sa_encode / sa_decode / sa_code_size)
    def sa_encode(self, x: np.ndarray) -> np.ndarray:
        return self.encode(x)

    def sa_decode(self, codes: np.ndarray) -> np.ndarray:
        return self.decode(codes)

    def sa_code_size(self) -> int:
        return self.code_size

    def _check_trained(self) -> None:
        if not self.is_trained:
            raise RuntimeError("QETQuantizer is not trained: call train(x) first")

    def __repr__(self) -> str:
        return (f"QETQuantizer(d={self.d}, m={self.m}, nbits={self.nbits}, levels={self.levels}, "
                f"stages={len(self.stages)}, codebook_bits={self.codebook_bits}, "
                f"code_size={self.code_size})")

    def _state(self) -> tuple[dict, dict[str, np.ndarray]]:
        metas, arrays = stages_state(self.stages)
        return {"d": self.d, "m": self.m, "batch_size": self.batch_size, "stages": metas}, arrays

    @classmethod
    def _from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "QETQuantizer":
        stages = stages_from_state(meta["stages"], arrays)
        q = cls(meta["d"], meta["m"], nbits=[s.width for s in stages],
                levels=[s.levels for s in stages], stages=len(stages),
                codebook_bits=stages[0].codebook_bits, batch_size=meta["batch_size"])
        q.stages = stages
        return q

    def _check_state(self) -> None:
        """After reading a file: stages agree with (d, m) and hold well-shaped codebooks."""
        check_stages(self.stages, self.d, self.m, ksub_power_of_two=True)
