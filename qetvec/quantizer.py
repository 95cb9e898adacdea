"""Vector mode: `QETQuantizer`, the built-in codec (`qetvec.codec.Codec`), fixed code size per row.

    x (n, d) --transform--> y = x @ R.T --stage 1: tree -> groups -> k-means--> codes 1
                                        residual --stage 2 ...                -> codes 2 ...

Every bit a reader needs is inside the row's code (swap records of every level, every
stage's group codes; layout in `qetvec.layout`); codebooks and the transform are shared state,
reported by `codebook_bytes()`. Encoding streams over `batch_size` rows so peak memory stays
bounded.

Groups and bits, per stage: `m` is a group count (equal widths) or a list of group widths
(columns), `nbits` one int or one per group; a list with one entry per stage gives each
stage its own (e.g. m=[[20, 30]], nbits=[[12, 6]]: one stage, groups of 20 and 30 columns
with 12- and 6-bit codes; m=10, nbits=[8, 6]: two stages of 10 groups, 8 then 6 bits).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from qetvec._validation import as_codes, as_float_matrix, check_positive_int, check_seed, check_stages, per_stage
from qetvec.codebook_update import check_updatable
from qetvec.codec import Codec, LookupUnits
from qetvec.io import register
from qetvec.layout import CodeLayout
from qetvec.stage import QETStage, decode_stages, encode_stages, fit_stages, stages_from_state, stages_state
from qetvec.transform import Rotation
from qetvec.units import plan_units


STAGE_SEEDS = ("distinct", "shared")


def _per_stage_groups(value: Any, stages: int, name: str) -> list[Any]:
    """`value` broadcast to one entry per stage: an int, or a list of per-group ints (a
    list of lists, or a list of ints with one per stage, gives each stage its own)."""
    if isinstance(value, (int, np.integer)) or not hasattr(value, "__iter__"):
        return [value] * stages
    entries = list(value)
    if len(entries) != stages:
        raise ValueError(f"{name} has {len(entries)} entries, expected one per stage ({stages})")
    return entries


def _check_beam(beam: object, levels: list[int]) -> int:
    """A beam width >= 1; above 1 only for stages without a tree."""
    beam = check_positive_int(beam, "beam")
    if beam > 1 and any(levels):
        raise ValueError(f"beam={beam} needs levels 0 in every stage (got levels={levels}): a "
                         "swap tree reorders each beam entry differently")
    return beam


@register("QETQuantizer")
class QETQuantizer(Codec):
    """QET codec: a transform, then `stages` stacked (tree -> column groups -> k-means)
    stages on residuals.

    Parameters
    ----------
    d : vector dimension.
    m : column groups per stage: a count (equal widths, need not divide d: see
        `qetvec.stage.group_bounds`) or a list of group widths; one for all stages or one per stage.
    nbits : bits per group code, 1..16 (ksub = 2**nbits codewords): one int, one per stage,
        or per stage a list with one per group (where 0 bits codes a group by its mean).
    levels : tree depth, 0 = plain product quantization; one int or one per stage.
    stages : 1 + number of residual stages.
    codebook_bits : quantize codebooks to this many bits (CQO), or None for float32.
    transform : "none", "pca" (learned principal axes) or "random" (seeded rotation); see
        `qetvec.transform`.
    beam : beam width of the search over stages (`qetvec.beam`), 1 = greedy encoding; above
        1, stages must have no tree (levels 0). Training searches with min(beam, 8).
    seed, niter : k-means (and random rotation) seed, k-means iterations.
    stage_seeds : "distinct": stage s starts k-means from rows drawn with seed + 1000 s;
        "shared": every stage from the same rows (FAISS ResidualQuantizer's rule, one seed
        for all stages), so residual stages start from the residuals of the rows that seeded
        the first stage, which are small. Which is better depends on the data (held-out
        relative MSE, 24 stages of 256 codewords on 10,000 384-d MiniLM rows: 0.257
        distinct, 0.223 shared; 4 stages of 64 on 4,000 128-d Gaussian rows: 0.497 / 0.519);
        `qetvec.fit_codec` measures both.
    update_rounds : rounds of codebook update after training (`qetvec.codebook_update`;
        every stage a full-width group: m=1, levels 0, no codebook quantization).
    batch_size : rows encoded / decoded at once.

    Code: uint8 (n, code_size), code_size = ceil(sum_s (T_s + sum_g nbits_sg) / 8) bytes,
    T_s the swap bits of stage s's tree.
    """

    def __init__(self, d: int, m: int | Sequence[Any], nbits: int | Sequence[Any] = 8,
                 levels: int | Sequence[int] = 1, stages: int = 1,
                 codebook_bits: int | None = None, seed: int = 0, niter: int = 25,
                 batch_size: int = 65536, transform: str = "none", beam: int = 1,
                 stage_seeds: str = "distinct", update_rounds: int = 0):
        self.d = check_positive_int(d, "d")
        if stage_seeds not in STAGE_SEEDS:
            raise ValueError(f"stage_seeds must be one of {STAGE_SEEDS}, got {stage_seeds!r}")
        self.update_rounds = check_positive_int(update_rounds, "update_rounds", low=0)
        n_stages = check_positive_int(stages, "stages")
        self.seed = check_seed(seed)
        self.levels = [check_positive_int(v, "levels", 0) for v in per_stage(levels, n_stages, "levels")]
        groups = _per_stage_groups(m, n_stages, "m")
        bits = _per_stage_groups(nbits, n_stages, "nbits")
        built = []
        for s, (g, b, lv) in enumerate(zip(groups, bits, self.levels)):
            if np.ndim(g) == 0:
                g = check_positive_int(g, "m", high=self.d)
            b = ([check_positive_int(b, "nbits", 1, 16)] if np.ndim(b) == 0  # per group, 0 bits =
                 else [check_positive_int(v, "nbits", 0, 16) for v in b])   # the group's mean
            ksub = 2 ** b[0] if len(b) == 1 else [2 ** v for v in b]
            stage_seed = self.seed + (1000 * s if stage_seeds == "distinct" else 0)
            built.append(QETStage(self.d, g, ksub, lv, codebook_bits, stage_seed, niter))
        self.rotation = Rotation(self.d, transform, self.seed)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.beam = _check_beam(beam, self.levels)
        if self.update_rounds:
            check_updatable(built)
        self._set_stages(built)

    def _set_stages(self, stages: list[QETStage]) -> None:
        self.stages = stages
        self.layout = CodeLayout([stage.fields() for stage in stages])
        self.code_size = self.layout.code_size
        self._units: LookupUnits | None = None

    @property
    def m(self) -> int:
        """Groups of the first stage."""
        return self.stages[0].m

    @property
    def nbits(self) -> list[list[int]]:
        """Code bits of every group, per stage."""
        return [stage.widths.tolist() for stage in self.stages]

    @property
    def codebook_bits(self) -> int | None:
        return self.stages[0].codebook_bits

    @property
    def stage_seeds(self) -> str:
        """"shared" if every stage seeds k-means alike (and there are several), else "distinct"."""
        return "shared" if len(self.stages) > 1 and len({s.seed for s in self.stages}) == 1 else "distinct"

    @property
    def transform(self) -> str:
        return self.rotation.kind

    @property
    def is_trained(self) -> bool:
        return self.rotation.is_trained and all(stage.codebooks_ is not None for stage in self.stages)

    @property
    def per_row_norm(self) -> bool:
        return len(self.stages) > 1

    def train(self, x: np.ndarray) -> "QETQuantizer":
        """Learn the transform, then every stage's codebooks, from rows x (n, d); returns
        self. A failure leaves the previous state as it was."""
        x = as_float_matrix(x, "x", self.d)
        rotation = Rotation(self.d, self.rotation.kind, self.rotation.seed).fit(x)
        fit_stages(self.stages, rotation.apply(x), self.beam, self.seed, codes=False,  # all or nothing
                   update_rounds=self.update_rounds)
        self.rotation = rotation
        self._set_stages(self.stages)
        return self

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Codes uint8 (n, code_size) for rows x (n, d)."""
        x = as_float_matrix(x, "x", self.d, allow_empty=True)
        self._check_trained()
        codes = np.empty((len(x), self.code_size), dtype=np.uint8)
        for i in range(0, len(x), self.batch_size):
            batch = self.rotation.apply(x[i:i + self.batch_size])
            parts = encode_stages(self.stages, batch, self.beam)
            values = np.concatenate([np.concatenate([bits, c], axis=1) for bits, c in parts], axis=1)
            codes[i:i + self.batch_size] = self.layout.pack(values)
        return codes

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Reconstructions float32 (n, d) of codes uint8 (n, code_size)."""
        codes = as_codes(codes, self.code_size)
        self._check_trained()
        out = np.empty((len(codes), self.d), dtype=np.float32)
        for i in range(0, len(codes), self.batch_size):
            batch = codes[i:i + self.batch_size]
            y = decode_stages(self.stages, self.layout.split(self.layout.unpack(batch, len(batch))))
            out[i:i + len(batch)] = self.rotation.invert(y)
        return out

    def rotate(self, x: np.ndarray) -> np.ndarray:
        return self.rotation.apply(x)

    def lookup_units(self) -> LookupUnits | None:
        self._check_trained()
        if self._units is None:
            self._units = plan_units(self.stages, self.layout)
        return self._units

    def pq_codebooks(self) -> np.ndarray:
        """Codebooks (M, ksub, dsub) float32 if this is plain PQ of the rotated rows
        (`rotate`): one stage, levels 0, M equal groups, one power-of-two ksub; ValueError
        otherwise."""
        self._check_trained()
        stage = self.stages[0]
        if len(self.stages) != 1 or stage.levels or self.d % stage.m or (stage.ksubs != 2 ** stage.widths[0]).any():
            raise ValueError(f"{self} is not plain product quantization (need levels=0, stages=1, "
                             "m dividing d, one codebook size)")
        return np.ascontiguousarray(stage.codebooks_, np.float32)

    @classmethod
    def from_pq_codebooks(cls, books: np.ndarray) -> "QETQuantizer":
        """The trained plain-PQ QETQuantizer (levels 0) of codebooks (M, ksub, dsub) float32,
        ksub a power of two: the inverse of `pq_codebooks`."""
        m, ksub, dsub = books.shape
        nbits = check_positive_int(int(ksub).bit_length() - 1, "nbits", 1, 16)
        if ksub != 2 ** nbits:
            raise ValueError(f"ksub={ksub} is not a power of two")
        codec = cls(m * dsub, m, nbits, levels=0)
        codec.stages[0].codebooks_ = np.ascontiguousarray(books, np.float32)
        return codec

    def codebook_bytes(self) -> int:
        """Bytes of shared state: codebooks (with their scales under codebook quantization)
        and the transform."""
        return sum(stage.codebook_bytes() for stage in self.stages) + self.rotation.nbytes()

    def __repr__(self) -> str:
        return (f"QETQuantizer(d={self.d}, groups={[s.m for s in self.stages]}, nbits={self.nbits}, "
                f"levels={self.levels}, codebook_bits={self.codebook_bits}, "
                f"transform={self.transform!r}, beam={self.beam}, stage_seeds={self.stage_seeds!r}, "
                f"update_rounds={self.update_rounds}, code_size={self.code_size})")

    def _state(self) -> tuple[dict, dict[str, np.ndarray]]:
        metas, arrays = stages_state(self.stages)
        rotation_meta, rotation_arrays = self.rotation._state()
        return ({"d": self.d, "batch_size": self.batch_size, "stages": metas, "transform": rotation_meta,
                 "beam": self.beam, "update_rounds": self.update_rounds},
                {**arrays, **rotation_arrays})

    @classmethod
    def _from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "QETQuantizer":
        """Inverse of `_state` (files without a "transform" entry predate transforms: none)."""
        stages = stages_from_state(meta["stages"], arrays)
        q = cls.__new__(cls)
        q.d = check_positive_int(meta["d"], "d")
        q.seed, q.levels = stages[0].seed, [s.levels for s in stages]
        q.batch_size = check_positive_int(meta["batch_size"], "batch_size")
        transform = meta.get("transform", {"d": q.d, "kind": "none", "seed": 0, "trained": True})
        q.rotation = Rotation._from_state(transform, arrays)
        q.beam = _check_beam(meta.get("beam", 1), q.levels)
        q.update_rounds = check_positive_int(meta.get("update_rounds", 0), "update_rounds", low=0)
        if q.update_rounds:
            check_updatable(stages)
        q._set_stages(stages)
        return q

    def _check_state(self) -> None:
        """After reading a file: stages agree with d, hold well-shaped codebooks of
        power-of-two sizes, and the transform is d-dimensional and trained with them."""
        check_stages(self.stages, self.d, ksub_power_of_two=True)
        learned = self.rotation.kind == "pca"
        if self.rotation.d != self.d or (learned and self.rotation.is_trained != (self.stages[0].codebooks_ is not None)):
            raise ValueError(f"transform: d={self.rotation.d} (expected {self.d}), or a PCA transform "
                             "trained while the stages are not, or the reverse")
