"""Fixed-rate coefficients: b_j bits for component j of a coefficient matrix y (n, q), each
row a bit-packed record of sum_j b_j bits (any row decodes on its own).

The bits come from a greedy allocation on *measured* distortion (`qetvec.allocation`): for
each component, the Lloyd-Max quantizer of its own values at 0..max_bits bits, priced at
n * b bits of codes plus its levels (float16).

    scalar   index = nearest of the component's 2**b Lloyd-Max levels (`qetvec.scalar`)
    trellis  each row's coded components form one TCQ sequence (`qetvec.trellis`) over
             2**(b + 1) levels per component (Lloyd-Max at b + 1 bits, then refined as the
             means of the values the trellis gives them); the b-bit index is the level's
             place in the union codebook the decoder's state allows

Stored (every array counted): bits uint8 (q,); levels float16 (sum of the coded
components' level counts); stream uint8 (ceil(n * row_bits / 8),), rows back to back.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qetvec import _kernels
from qetvec.allocation import greedy_allocation
from qetvec.scalar import lloyd_max_curve, quantize
from qetvec.trellis import next_state_table, union_parities, viterbi

LEVEL_BITS = 16  # levels are stored as float16
TRELLIS_REFINEMENTS = 2


@dataclass(frozen=True)
class FixedRateSettings:
    """states: trellis states (0: scalar Lloyd-Max); max_bits: most bits per component."""

    states: int = 0
    max_bits: int = 8

    def label(self) -> str:
        return f"tcq{self.states}" if self.states else "lloyd-max"


class FixedRateCoefficients:
    """The coded coefficients of one matrix (module docstring)."""

    def __init__(self, n: int, settings: FixedRateSettings, bits: np.ndarray,
                 levels: list[np.ndarray], stream: np.ndarray):
        self.n, self.settings = n, settings
        self.bits = np.asarray(bits, np.int64)  # (q,)
        self.levels = levels  # per coded component, float16
        self.stream = stream
        widths = self.bits[self.kept]
        self.widths = widths
        self.field_offsets = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.int64)
        self.row_bits = int(widths.sum())

    @property
    def q(self) -> int:
        return len(self.bits)

    @property
    def kept(self) -> np.ndarray:
        """Indices (p,) int64 of the coded components."""
        return np.flatnonzero(self.bits > 0)

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {"n": self.n, "states": self.settings.states, "max_bits": self.settings.max_bits}
        levels = np.concatenate(self.levels) if self.levels else np.zeros(0, np.float16)
        return meta, {"bits": self.bits.astype(np.uint8), "levels": levels.astype(np.float16),
                      "stream": self.stream}

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.state()[1].values())

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "FixedRateCoefficients":
        """Inverse of `state`; ValueError naming the array that disagrees."""
        settings = FixedRateSettings(meta["states"], meta["max_bits"])
        if settings.states:
            next_state_table(settings.states)
        n = int(meta["n"])
        bits, levels, stream = arrays["bits"], arrays["levels"], arrays["stream"]
        if bits.dtype != np.uint8 or bits.ndim != 1 or bits.max(initial=0) > settings.max_bits:
            raise ValueError(f"bits must be uint8 (q,) at most {settings.max_bits}, got {bits.dtype} {bits.shape}")
        counts = _level_counts(bits[bits > 0].astype(np.int64), settings.states)
        if levels.dtype != np.float16 or levels.shape != (int(counts.sum()),) or not np.isfinite(levels).all():
            raise ValueError(f"levels must be finite float16 ({int(counts.sum())},), got {levels.dtype} {levels.shape}")
        row_bits = int(bits.astype(np.int64).sum())
        if stream.dtype != np.uint8 or stream.shape != ((n * row_bits + 7) // 8,):
            raise ValueError(f"stream must be uint8 ({(n * row_bits + 7) // 8},), got {stream.dtype} {stream.shape}")
        return cls(n, settings, bits, np.split(levels, np.cumsum(counts)[:-1]) if len(counts) else [], stream)

    def decode(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Coefficients (stop - start, q) float64 of rows start..stop-1 (only their bits are read)."""
        stop = self.n if stop is None else stop
        out = np.zeros((stop - start, self.q))
        if not self.row_bits or stop <= start:
            return out
        first = start * self.row_bits
        m = _kernels.unpack_fields(self.stream[first // 8:], self.field_offsets + first % 8,
                                   self.widths, self.row_bits, stop - start)
        index = 2 * m + union_parities(m, self.settings.states) if self.settings.states else m
        for col, (j, levels) in enumerate(zip(self.kept, self.levels)):
            out[:, j] = levels.astype(np.float64)[index[:, col]]
        return out


def _level_counts(bits: np.ndarray, states: int) -> np.ndarray:
    """Levels per coded component: 2**b, or 2**(b + 1) with a trellis."""
    return 2 ** (bits + (1 if states else 0))


def side_bits(q: int) -> int:
    """Bits stored whatever the allocation: the bits array."""
    return 8 * q


def fit(y: np.ndarray, budget_bits: int, settings: FixedRateSettings) -> FixedRateCoefficients:
    """Code y (n, q) float64 in at most budget_bits bits, everything counted; ValueError if
    not even the bits array fits."""
    n, q = y.shape
    budget_bits -= side_bits(q)
    if budget_bits < 0:
        raise ValueError(f"the budget cannot hold the {q}-byte bits array")
    extra = 1 if settings.states else 0
    # allocation on the measured scalar Lloyd-Max curves (a trellis gains about as much at
    # every b, so the scalar curve's shape stands for it); levels up to max_bits + 1 bits
    fits = [lloyd_max_curve(y[:, j], settings.max_bits + extra) for j in range(q)]
    curves = [curve[:settings.max_bits + 1] for _, curve in fits]
    b = np.arange(settings.max_bits + 1)
    costs = [np.where(b > 0, n * b + LEVEL_BITS * 2 ** (b + extra), 0) for _ in range(q)]
    bits = greedy_allocation(curves, budget_bits - 7, costs=costs)  # 7: the stream's last byte
    kept = np.flatnonzero(bits)
    levels = [fits[j][0][bits[j] + extra - 1].astype(np.float16) for j in kept]
    if settings.states:
        index, levels = _trellis_fit(y[:, kept], levels, settings.states)
        m = index >> 1
    else:
        m = np.stack([quantize(y[:, j], lv.astype(np.float64)) for j, lv in zip(kept, levels)], axis=1) \
            if len(kept) else np.zeros((n, 0), np.int64)
    widths = bits[kept]
    offsets = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.int64)
    row_bits = int(widths.sum())
    stream = np.zeros((n * row_bits + 7) // 8, np.uint8)
    _kernels.pack_fields(np.ascontiguousarray(m, np.int64), offsets, widths.astype(np.int64), row_bits, stream)
    return FixedRateCoefficients(n, settings, bits, levels, stream)


def _trellis_fit(y: np.ndarray, levels: list[np.ndarray], states: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """TCQ level indices (n, p) int64 of y (n, p) and the levels (float16, sorted) they use:
    Viterbi, then each level moved to the mean of its values, TRELLIS_REFINEMENTS times."""
    n, p = y.shape
    if not p:
        return np.zeros((n, 0), np.int64), levels
    offsets = np.concatenate([[0], np.cumsum([len(lv) for lv in levels])]).astype(np.int64)
    for it in range(TRELLIS_REFINEMENTS + 1):
        flat = np.concatenate(levels).astype(np.float64)
        index = viterbi(y, offsets, flat, states).astype(np.int64)
        if it == TRELLIS_REFINEMENTS:
            return index, levels
        for j in range(p):
            sums = np.bincount(index[:, j], y[:, j], minlength=len(levels[j]))
            counts = np.bincount(index[:, j], minlength=len(levels[j]))
            moved = np.where(counts > 0, sums / np.maximum(counts, 1), levels[j].astype(np.float64))
            levels[j] = np.sort(moved).astype(np.float16)
    return index, levels
