"""Entropy-coded coefficients: uniform scalar (ECSQ) or trellis-coded (ECTCQ) quantization
of a coefficient matrix y (n, q), indexes range-coded by blocks of rows.

One step size for every component (reverse water-filling: equal distortion wherever bits
are spent). A component whose RMS is below `drop` * step is not coded (decoded as 0).

    scalar   index j = round(y / step), reconstruction j * step
    trellis  the row's coded components form one TCQ sequence over the grid j * step
             (`qetvec.trellis`); the index coded is m = j >> 1 inside the union codebook of
             parity u, which the decoder tracks

Each coded component has a class (its RMS / step in 1 / `classes_per_octave` octaves, or
its own class); the symbol's table is its class (scalar) or (class, u) (trellis), one
empirical categorical model per table (`qetvec.entropy`). With `centroids`, each table
symbol also stores its reconstruction offset (the mean of y / step - j over the values coded
with it) in 1/128 steps, int8.

Stored (every array counted): step float32 (1,); classes uint8 / uint16 (q,) (255 /
65535: not coded); the tables; centroid offsets int8; words uint32 (the range
coder's output of all blocks); block_starts uint32 (blocks + 1,).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qetvec.entropy import BlockDecoder, CategoricalTables, encode_block, histograms
from qetvec.trellis import next_state_table, viterbi_grid

OFFSET_UNITS = 128  # centroid offsets in 1/128 of a step
RANGE_CODER_FLUSH_BITS = 64  # what closing one block's range coder may add (two words)
NOT_CODED = {np.uint8: 255, np.uint16: 65535}  # the class stored for a component not coded


@dataclass(frozen=True)
class EntropySettings:
    """states: trellis states (0: scalar); classes_per_octave (0: a table per component);
    drop: components below drop * step are not coded; centroids: store reconstruction
    offsets; block_rows: rows per independently decodable block."""

    states: int = 8
    classes_per_octave: int = 2
    drop: float = 0.3
    centroids: bool = True
    block_rows: int = 256

    def label(self) -> str:
        quantizer = f"ectcq{self.states}" if self.states else "ecsq"
        classes = f"cpo{self.classes_per_octave}" if self.classes_per_octave else "per-component"
        return f"{quantizer} {classes} drop{self.drop:g}{' centroids' if self.centroids else ''}"


class EntropyCodedCoefficients:
    """The coded coefficients of one matrix (module docstring); `decode(start, stop)` reads
    rows start..stop-1, decoding only the blocks that hold them."""

    def __init__(self, n: int, q: int, settings: EntropySettings, step: float, classes: np.ndarray,
                 tables: CategoricalTables, offsets: list[np.ndarray] | None,
                 words: np.ndarray, block_starts: np.ndarray):
        self.n, self.q, self.settings = n, q, settings
        self.step = float(np.float32(step))
        self.classes = classes  # (q,) int64, -1: not coded
        self.tables, self.offsets = tables, offsets
        self.words, self.block_starts = words, block_starts
        self._flat_offsets = _Flat(offsets, tables.low) if offsets is not None else None

    @property
    def kept(self) -> np.ndarray:
        """Indices (p,) int64 of the coded components, in coding order."""
        return np.flatnonzero(self.classes >= 0)

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        s = self.settings
        meta = {"n": self.n, "q": self.q, "states": s.states, "classes_per_octave": s.classes_per_octave,
                "drop": s.drop, "centroids": s.centroids, "block_rows": s.block_rows}
        dtype = np.uint8 if self.classes.max(initial=0) < NOT_CODED[np.uint8] else np.uint16
        arrays = {"step": np.array([self.step], np.float32),
                  "classes": np.where(self.classes >= 0, self.classes, NOT_CODED[dtype]).astype(dtype),
                  **self.tables.state(), "words": self.words, "block_starts": self.block_starts}
        if s.centroids:
            arrays["centroid_offsets"] = np.concatenate(self.offsets).astype(np.int8) if self.offsets \
                else np.zeros(0, np.int8)
        return meta, arrays

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.state()[1].values())

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "EntropyCodedCoefficients":
        """Inverse of `state`; ValueError naming the array that disagrees."""
        settings = EntropySettings(meta["states"], meta["classes_per_octave"], meta["drop"],
                                   meta["centroids"], meta["block_rows"])
        if settings.states:
            next_state_table(settings.states)  # refuses an unknown trellis
        n, q = int(meta["n"]), int(meta["q"])
        raw = arrays["classes"]
        if raw.dtype not in (np.uint8, np.uint16) or raw.shape != (q,):
            raise ValueError(f"classes must be uint8 / uint16 ({q},), got {raw.dtype} {raw.shape}")
        classes = np.where(raw == NOT_CODED[raw.dtype.type], -1, raw.astype(np.int64))
        tables = CategoricalTables.from_state(arrays)
        per_class = 2 if settings.states else 1
        if len(classes) and classes.max(initial=-1) >= 0 and per_class * (classes.max() + 1) > tables.n_tables:
            raise ValueError(f"classes refer to {per_class * (classes.max() + 1)} tables, "
                             f"{tables.n_tables} stored")
        offsets = None
        if settings.centroids:
            flat = arrays["centroid_offsets"]
            sizes = [len(c) for c in tables.codes]
            if flat.dtype != np.int8 or flat.shape != (sum(sizes),):
                raise ValueError(f"centroid_offsets must be int8 ({sum(sizes)},), got {flat.dtype} {flat.shape}")
            offsets = np.split(flat, np.cumsum(sizes)[:-1]) if sizes else []
        step = arrays["step"]
        if step.dtype != np.float32 or step.shape != (1,) or not (np.isfinite(step[0]) and step[0] > 0):
            raise ValueError(f"step must be one positive float32, got {step!r}")
        blocks = -(-n // settings.block_rows)
        starts, words = arrays["block_starts"], arrays["words"]
        if starts.dtype != np.uint32 or starts.shape != (blocks + 1,) or starts[0] != 0 or \
                (np.diff(starts.astype(np.int64)) < 0).any() or starts[-1] != len(words) or words.dtype != np.uint32:
            raise ValueError(f"block_starts must be uint32 ({blocks + 1},), 0 first, non-decreasing, "
                             f"ending at the {len(words)} uint32 words")
        return cls(n, q, settings, float(step[0]), classes, tables, offsets, words, starts)

    def decode(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Coefficients (stop - start, q) float64 of rows start..stop-1: the blocks that hold
        them are decoded together, a column at a time (one range decoder per block)."""
        stop = self.n if stop is None else stop
        rows = self.settings.block_rows
        first, last = start // rows, -(-stop // rows)
        bounds = [min(b * rows, self.n) for b in range(first, last + 1)]
        decoders = [BlockDecoder(self.tables, self.words[self.block_starts[b]:self.block_starts[b + 1]])
                    for b in range(first, last)]
        size = bounds[-1] - bounds[0]
        out = np.zeros((size, self.q))
        trellis = next_state_table(self.settings.states) if self.settings.states else None
        state = np.zeros(size, np.int64)
        spans = [(a - bounds[0], z - bounds[0]) for a, z in zip(bounds[:-1], bounds[1:])]
        for j in self.kept:
            cls = self.classes[j]
            if trellis is None:
                symbols = np.concatenate([dec.run(cls, z - a) for dec, (a, z) in zip(decoders, spans)]) \
                    if decoders else np.zeros(0, np.int64)
                index, ids = symbols, np.full(size, cls)
            else:
                u = state & 1
                ids = 2 * cls + u
                symbols = np.empty(size, np.int64)
                for dec, (a, z) in zip(decoders, spans):
                    symbols[a:z] = dec.column(ids[a:z], (2 * cls, 2 * cls + 1))
                index = 2 * symbols + u
                state = trellis[state, symbols & 1]
            out[:, j] = index if self._flat_offsets is None else \
                index + self._flat_offsets.lookup(ids, symbols) / OFFSET_UNITS
        offset = start - bounds[0]
        return out[offset:offset + stop - start] * self.step


class _Flat:
    """Per-table arrays (table t: (size_t,), indexed by symbol - low[t]) in one flat array."""

    def __init__(self, per_table: list[np.ndarray], lows: np.ndarray):
        self.flat = np.concatenate(per_table) if per_table else np.zeros(0)
        self.starts = np.concatenate([[0], np.cumsum([len(a) for a in per_table])[:-1]]).astype(np.int64) - lows

    def lookup(self, ids: np.ndarray, symbols: np.ndarray) -> np.ndarray:
        """per_table[ids[i]][symbols[i] - low[ids[i]]] for every i."""
        return self.flat[self.starts[ids] + symbols]


@dataclass
class _Quantized:
    """One candidate step's quantization, before the range coder runs."""

    classes: np.ndarray    # (q,) int64, -1 not coded
    index: np.ndarray      # (n, p) int64 grid index j of the coded components
    symbols: np.ndarray    # (n, p) int64 coded symbols (j, or j >> 1 with a trellis)
    ids: np.ndarray        # (n, p) int64 table ids
    tables: CategoricalTables
    offsets: list[np.ndarray] | None
    estimated_bits: float


def quantize(y: np.ndarray, step: float, settings: EntropySettings, with_offsets: bool = True,
             rms: np.ndarray | None = None) -> _Quantized:
    """Quantize y (n, q) float64 at `step` and fit the tables. estimated_bits: the stored
    arrays plus the ideal code lengths (the range coder adds up to RANGE_CODER_FLUSH_BITS per
    block); without `with_offsets` the centroid offsets are counted but not computed. `rms`
    (q,): the components' root mean squares, if already known."""
    n, q = y.shape
    step = float(np.float32(step))
    rms = np.sqrt((y ** 2).mean(axis=0)) if rms is None else rms
    coded = np.flatnonzero(rms >= settings.drop * step)
    z = y[:, coded] / step
    if settings.states:
        index = _trellis_indexes(z, settings.states)
        symbols = index >> 1
    else:
        index = np.rint(z).astype(np.int64)
        keep = (index != 0).any(axis=0)
        coded, z, index = coded[keep], z[:, keep], index[:, keep]
        symbols = index
    if settings.classes_per_octave:
        cls = np.floor(settings.classes_per_octave * np.log2(rms[coded] / step)).astype(np.int64)
        cls -= cls.min(initial=0)
    else:
        cls = np.arange(len(coded), dtype=np.int64)
    classes = np.full(q, -1, np.int64)
    classes[coded] = cls
    n_tables = (2 if settings.states else 1) * (int(cls.max(initial=-1)) + 1)
    ids = 2 * cls + (index & 1) if settings.states else np.broadcast_to(cls, index.shape)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    tables, code_bits = CategoricalTables.fit(symbols.ravel(), ids.ravel(), n_tables)
    offsets = None
    if settings.centroids and with_offsets:
        _, counts, sums = histograms(symbols.ravel(), ids.ravel(), n_tables, (z - index).ravel())
        offsets = [np.clip(np.rint(s_ / np.maximum(c, 1) * OFFSET_UNITS), -127, 127).astype(np.int8)
                   for c, s_ in zip(counts, sums)]
    symbol_count = sum(len(c) for c in tables.codes)
    side = tables.nbytes() + 4 + q * (1 if cls.max(initial=0) < 255 else 2) \
        + 4 * (-(-n // settings.block_rows) + 1) + (symbol_count if settings.centroids else 0)
    return _Quantized(classes, index, symbols, ids, tables, offsets, code_bits + 8 * side)


def _trellis_indexes(z: np.ndarray, states: int) -> np.ndarray:
    """Grid indexes j (n, p) int64 of the TCQ path nearest each row of z (n, p) (in steps):
    each position's levels are the integers from a multiple of 4 below its smallest value to
    one above its largest (so level index and grid index agree mod 4)."""
    n, p = z.shape
    if not p:
        return np.zeros((n, 0), np.int64)
    low = 4 * np.floor(z.min(axis=0) / 4).astype(np.int64) - 4
    high = 4 * np.ceil(z.max(axis=0) / 4).astype(np.int64) + 4
    return viterbi_grid(z, low, high, states)


def encode(quantized: _Quantized, step: float, n: int, q: int,
           settings: EntropySettings) -> EntropyCodedCoefficients:
    """Run the range coder over each block of rows of a quantization."""
    rows = settings.block_rows
    blocks = [encode_block(quantized.tables, quantized.symbols[a:a + rows], quantized.ids[a:a + rows])
              for a in range(0, n, rows)]
    starts = np.concatenate([[0], np.cumsum([len(w) for w in blocks])]).astype(np.uint32)
    words = np.concatenate(blocks).astype(np.uint32) if blocks else np.zeros(0, np.uint32)
    return EntropyCodedCoefficients(n, q, settings, step, quantized.classes, quantized.tables,
                                    quantized.offsets, words, starts)
