"""Entropy coding of integer symbols with static categorical models, by blocks of rows.

The coder is `constriction`'s range coder (Bamler 2022; the `entropy` extra). A symbol
matrix (n, p) is cut into blocks of rows; each block is its own range-coded word sequence,
so any block decodes alone (a K/V cache is read by token range). Inside a block symbols go
column by column, and inside a column by table id (ascending), rows in order: the decoder
needs a column's table ids only once the columns before it are decoded, so a table may depend
on what came earlier in the row (the trellis state of entropy-coded TCQ).

Stored, and counted to the byte (`CategoricalTables.state`):

    table_low      int32 (T,)     smallest symbol of each table
    table_size     uint32 (T,)    alphabet size of each table
    table_lengths  uint8 (...)    6-bit code per symbol, bit-packed: 0 = never occurs, else
                                  the symbol's code length -log2 p in quarter bits plus one
                                  (1 .. 63: 0 .. 15.5 bits)

`constriction` turns the probabilities 2**-length into its own fixed-point model,
deterministically, on both sides. `fit` also returns the ideal code length under those
quantized lengths; the range coder's output is what `encode_block` returns and what is counted.
"""
from __future__ import annotations

import numpy as np

from qetvec._optional import require
from qetvec.codebooks import pack_uints, unpack_uints

LENGTH_BITS = 6
LENGTH_STEPS = 4  # code lengths in quarter bits
MAX_LENGTH_CODE = 2 ** LENGTH_BITS - 1


def _constriction():
    return require("constriction", "entropy")


def histograms(symbols: np.ndarray, table_ids: np.ndarray, n_tables: int,
               weights: np.ndarray | None = None) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray] | None]:
    """(smallest symbol per table (n_tables,) int64, counts per table (size_t,) float64 from
    its smallest to its largest symbol (empty for a table without symbols), and with
    `weights` (N,) the sums of the weights in the same bins) of symbols (N,) int64 under
    table_ids (N,) int64."""
    lows = np.zeros(n_tables, np.int64)
    empty = [np.zeros(0)] * n_tables
    if not len(symbols):
        return lows, empty, None if weights is None else empty
    low = int(symbols.min())
    span = int(symbols.max()) - low + 1
    keys = table_ids * span + (symbols - low)
    if span * n_tables <= 4 * len(symbols) + 4096:  # dense bins
        bins = np.arange(n_tables * span)
        counts = np.bincount(keys, minlength=n_tables * span)
        sums = None if weights is None else np.bincount(keys, weights, minlength=n_tables * span)
    else:  # only the pairs that occur
        bins, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        sums = None if weights is None else np.bincount(inverse, weights)
    present = np.flatnonzero(counts)
    bins = bins[present]
    starts = np.searchsorted(bins, np.arange(n_tables + 1) * span)
    out_counts, out_sums = [], None if weights is None else []
    for t in range(n_tables):
        own = present[starts[t]:starts[t + 1]]
        if not len(own):
            out_counts.append(np.zeros(0))
            if out_sums is not None:
                out_sums.append(np.zeros(0))
            continue
        rel = bins[starts[t]:starts[t + 1]] - t * span
        lows[t] = low + rel[0]
        row = np.zeros(int(rel[-1] - rel[0]) + 1)
        row[rel - rel[0]] = counts[own]
        out_counts.append(row)
        if out_sums is not None:
            row = np.zeros(len(row))
            row[rel - rel[0]] = sums[own]
            out_sums.append(row)
    return lows, out_counts, out_sums


class CategoricalTables:
    """T static categorical models over integer symbols: table t covers symbols
    low[t] .. low[t] + size[t] - 1 with quantized code lengths codes[t] (size[t],) uint8
    (0: absent, c >= 1: -log2 p = (c - 1) / LENGTH_STEPS)."""

    def __init__(self, low: np.ndarray, codes: list[np.ndarray]):
        self.low = np.asarray(low, np.int64)
        self.codes = [np.asarray(c, np.uint8) for c in codes]
        self._models: list | None = None

    @classmethod
    def fit(cls, symbols: np.ndarray, table_ids: np.ndarray, n_tables: int) -> tuple["CategoricalTables", float]:
        """(tables of the empirical distribution of symbols (N,) int64 under table_ids (N,)
        int64 in [0, n_tables), the symbols' ideal code length in bits under those tables).
        A table that receives no symbol is empty."""
        lows, counts, _ = histograms(symbols, table_ids, n_tables)
        codes, total = [], 0.0
        for t, c in enumerate(counts):
            if not len(c):
                codes.append(np.zeros(0, np.uint8))
                continue
            with np.errstate(divide="ignore"):
                lengths = -np.log2(c / c.sum())
            code = np.where(c > 0, np.clip(np.rint(lengths * LENGTH_STEPS) + 1, 1, MAX_LENGTH_CODE), 0)
            codes.append(code.astype(np.uint8))
        tables = cls(lows, codes)
        for t, c in enumerate(counts):
            occurs = c > 0
            total += float((c[occurs] * -np.log2(tables.probabilities(t)[occurs])).sum())
        return tables, total

    @property
    def n_tables(self) -> int:
        return len(self.codes)

    def probabilities(self, t: int) -> np.ndarray:
        """Probabilities (size,) float64 of table t as the coder uses them (normalized)."""
        code = self.codes[t].astype(np.float64)
        p = np.where(code > 0, 2.0 ** (-(code - 1) / LENGTH_STEPS), 0.0)
        return p / p.sum()

    def models(self) -> list:
        """One `constriction` Categorical model per table (None for an empty table)."""
        if self._models is None:
            categorical = _constriction().stream.model.Categorical
            self._models = [categorical(self.probabilities(t), perfect=False) if len(c) else None
                            for t, c in enumerate(self.codes)]
        return self._models

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.state().values())

    def state(self) -> dict[str, np.ndarray]:
        """The stored arrays (module docstring)."""
        sizes = np.array([len(c) for c in self.codes], np.uint32)
        flat = np.concatenate(self.codes) if self.codes else np.zeros(0, np.uint8)
        return {"table_low": self.low.astype(np.int32), "table_size": sizes,
                "table_lengths": pack_uints(flat.astype(np.uint16), LENGTH_BITS)}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray]) -> "CategoricalTables":
        """Inverse of `state`; ValueError naming the array that is inconsistent."""
        low, sizes, packed = arrays["table_low"], arrays["table_size"], arrays["table_lengths"]
        if low.dtype != np.int32 or sizes.dtype != np.uint32 or low.shape != sizes.shape or low.ndim != 1:
            raise ValueError(f"table_low / table_size must be int32 / uint32 of one shape (T,), got "
                             f"{low.dtype} {low.shape} / {sizes.dtype} {sizes.shape}")
        total = int(sizes.sum(dtype=np.int64))
        if packed.dtype != np.uint8 or packed.shape != ((total * LENGTH_BITS + 7) // 8,):
            raise ValueError(f"table_lengths must be uint8 ({(total * LENGTH_BITS + 7) // 8},), got "
                             f"{packed.dtype} {packed.shape}")
        flat = unpack_uints(packed, total, LENGTH_BITS).astype(np.uint8)
        codes = np.split(flat, np.cumsum(sizes.astype(np.int64))[:-1]) if len(sizes) else []
        if any(len(c) and not c.any() for c in codes):
            raise ValueError("table_lengths: a table has symbols but none that occurs")
        return cls(low.astype(np.int64), codes)


def encode_block(tables: CategoricalTables, symbols: np.ndarray, table_ids: np.ndarray) -> np.ndarray:
    """Range-coded words (W,) uint32 of one block: symbols (B, p) int64 under table_ids (B, p)
    int64, column by column, inside a column by table id, rows in order."""
    encoder = _constriction().stream.queue.RangeEncoder()
    models = tables.models()
    for j in range(symbols.shape[1]):
        ids = table_ids[:, j]
        for t in np.unique(ids):
            encoder.encode((symbols[ids == t, j] - tables.low[t]).astype(np.int32), models[t])
    return encoder.get_compressed()


class BlockDecoder:
    """Decodes one block written by `encode_block`, a column at a time."""

    def __init__(self, tables: CategoricalTables, words: np.ndarray):
        self.tables = tables
        self._decoder = _constriction().stream.queue.RangeDecoder(np.ascontiguousarray(words, np.uint32))

    def column(self, table_ids: np.ndarray, tables: np.ndarray | None = None) -> np.ndarray:
        """Symbols (B,) int64 of the next column, whose rows use table_ids (B,) int64;
        `tables`, if given, lists the distinct ids in ascending order (saves finding them)."""
        out = np.empty(len(table_ids), np.int64)
        models = self.tables.models()
        for t in np.unique(table_ids) if tables is None else tables:
            rows = table_ids == t
            count = int(np.count_nonzero(rows))
            if count:
                out[rows] = self._decoder.decode(models[t], count) + self.tables.low[t]
        return out

    def run(self, table: int, count: int) -> np.ndarray:
        """The next `count` symbols (count,) int64, all of table `table` (a column of one table)."""
        return self._decoder.decode(self.tables.models()[table], count) + self.tables.low[table]
