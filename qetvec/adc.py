"""Asymmetric distance computation: float queries against QET codes, rows never decoded.

For a row with swap bits s and reordered reconstruction y, <q, unpermute_s(y)> =
<permute_s(q), y>. Position j of permute_s(q) holds q[src_s(j)], and src_s(j) depends only
on the 2**levels - 1 swap bits of j's path through the tree (`EntanglementTree.dependencies`).
So each column group is cut into *lookup units*: runs of positions whose relevant swap bits
number r, with a table T[pattern, code] of 2**r x ksub entries per query:

    T_ip[p, c] = sum_{j in unit} q[src_p(j)] * C[c, j]            (inner product)
    T_l2[p, c] = sum_{j in unit} (q[src_p(j)] - C[c, j]) ** 2       (L2, single stage)

A row's score is the sum over units of T[pattern(row), code(row)]; both are read straight
from the packed code (a unit's relevant swap bits sit in a few contiguous runs, see
`qetvec.tree`). Units are capped at `max_table_entries` entries; one position alone whose
table would exceed `hard_limit` (deep trees with many codewords) makes `plan_units` return
None and the caller falls back to decoding. Levels = 0 gives ordinary PQ tables (r = 0).

L2 over several stages is not a sum over groups (cross terms between stages), so it is
computed as ||q||^2 - 2 <q, x_hat> + ||x_hat||^2 with ||x_hat||^2 stored per row by the
index (counted in its code size).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from qetvec import _kernels
from qetvec.layout import CodeLayout
from qetvec.stage import QETStage

if TYPE_CHECKING:
    from qetvec.codec import QETQuantizer

QUERY_BLOCK_BYTES = 64 << 20  # lookup tables computed for this many bytes of queries at once
MAX_TABLE_ENTRIES = 2 ** 11  # smaller tables stay in L2; measured best on GloVe-50, levels=1
HARD_LIMIT = 2 ** 22


@dataclass
class LookupUnits:
    """Every table lookup of a scan, as flat int64 arrays for the kernel (U units, R runs).

    code_bit[u], code_width[u]: bit offset / width of the unit's group code in the row;
    ksub[u]: codewords; table_off[u]: first table entry; the unit's swap pattern is the OR of
    runs r in run_ptr[u]:run_ptr[u+1], each run_len[r] bits at run_start[r] shifted left by
    run_shift[r]. For table building: stage[u], group[u], positions[u] (npos,) reordered
    columns, sources[u] (2**r, npos) the query column at each position for each pattern."""

    code_bit: np.ndarray
    code_width: np.ndarray
    ksub: np.ndarray
    table_off: np.ndarray
    run_ptr: np.ndarray
    run_start: np.ndarray
    run_len: np.ndarray
    run_shift: np.ndarray
    stage: list[int]
    group: list[int]
    positions: list[np.ndarray]
    sources: list[np.ndarray]
    table_size: int

    def kernel_args(self) -> tuple[np.ndarray, ...]:
        return (self.code_bit, self.code_width, self.ksub, self.table_off,
                self.run_ptr, self.run_start, self.run_len, self.run_shift)


def _runs(bits: list[int]) -> list[tuple[int, int]]:
    """Sorted bit positions as (start, length) runs of consecutive positions."""
    runs: list[tuple[int, int]] = []
    for b in bits:
        if runs and runs[-1][0] + runs[-1][1] == b:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((b, 1))
    return runs


def _split_group(deps: list[list[int]], a: int, b: int, ksub: int,
                 max_entries: int) -> list[tuple[list[int], list[int]]]:
    """Greedy cut of positions a..b-1 into units (positions, relevant bits) under the cap."""
    units: list[tuple[list[int], list[int]]] = []
    for j in range(a, b):
        if units:
            merged = sorted(set(units[-1][1]) | set(deps[j]))
            if 2 ** len(merged) * ksub <= max_entries:
                units[-1] = (units[-1][0] + [j], merged)
                continue
        units.append(([j], list(deps[j])))
    return units


def plan_units(stages: list[QETStage], layout: CodeLayout,
               max_table_entries: int | None = None,
               hard_limit: int | None = None) -> LookupUnits | None:
    """Lookup units covering every (stage, group) of a code layout, or None if too large.
    Caps default to the module's MAX_TABLE_ENTRIES and HARD_LIMIT."""
    max_table_entries = max_table_entries or MAX_TABLE_ENTRIES
    hard_limit = hard_limit or HARD_LIMIT
    cols: dict[str, list] = {k: [] for k in ("code_bit", "code_width", "ksub", "table_off", "stage",
                                             "group", "positions", "sources")}
    runs: list[tuple[int, int, int]] = []
    run_ptr, table_size = [0], 0
    for s, (stage, fields) in enumerate(zip(stages, layout.stages)):
        deps = stage.tree.dependencies()
        if 2 ** max(map(len, deps)) * stage.ksub > hard_limit:
            return None
        for g, (a, b) in enumerate(zip(stage.bounds[:-1], stage.bounds[1:])):
            for positions, bits in _split_group(deps, a, b, stage.ksub, max_table_entries):
                patterns = np.arange(2 ** len(bits))
                swaps = np.zeros((len(patterns), stage.tree.n_bits), dtype=bool)
                for t, bit in enumerate(bits):  # pattern bit t <-> swap bit bits[t]
                    swaps[:, bit] = (patterns >> t) & 1
                columns = np.tile(np.arange(stage.d), (len(patterns), 1))
                shift = 0
                for start, length in _runs(bits):
                    runs.append((fields.swap_offset + start, length, shift))
                    shift += length
                run_ptr.append(len(runs))
                for key, value in (("code_bit", fields.code_offset + g * fields.width),
                                   ("code_width", fields.width), ("ksub", stage.ksub),
                                   ("table_off", table_size), ("stage", s), ("group", g),
                                   ("positions", np.asarray(positions)),
                                   ("sources", stage.tree.permute(columns, swaps)[:, positions])):
                    cols[key].append(value)
                table_size += len(patterns) * stage.ksub
    run_arr = np.asarray(runs, dtype=np.int64).reshape(-1, 3)
    as_i64 = lambda key: np.asarray(cols[key], dtype=np.int64)  # noqa: E731
    return LookupUnits(as_i64("code_bit"), as_i64("code_width"), as_i64("ksub"), as_i64("table_off"),
                       np.asarray(run_ptr, dtype=np.int64), run_arr[:, 0].copy(), run_arr[:, 1].copy(),
                       run_arr[:, 2].copy(), cols["stage"], cols["group"], cols["positions"],
                       cols["sources"], table_size)


def compute_tables(units: LookupUnits, stages: list[QETStage], queries: np.ndarray,
                   kind: str) -> np.ndarray:
    """Tables (nq, table_size) float32 for queries (nq, d) float32; kind "ip" or "l2"."""
    tables = np.empty((len(queries), units.table_size), dtype=np.float32)
    for u, (s, g, positions, sources) in enumerate(zip(units.stage, units.group, units.positions,
                                                      units.sources)):
        stage = stages[s]
        book = stage.codebooks_[g][:, positions - stage.bounds[g]]  # (ksub, npos)
        q = queries[:, sources]  # (nq, patterns, npos): q[src_p(j)]
        if kind == "ip":
            t = q @ book.T
        else:
            t = ((q[:, :, None, :] - book[None, None]) ** 2).sum(-1)
        start = units.table_off[u]
        tables[:, start:start + t.shape[1] * t.shape[2]] = t.reshape(len(queries), -1)
    return tables


def scores(units: LookupUnits, tables: np.ndarray, codes: np.ndarray, extra: np.ndarray,
           extra_coef: float, bias: np.ndarray) -> np.ndarray:
    """Every row's score (nq, n) float32: bias (nq,) + extra_coef * extra (n,) + lookups."""
    return _kernels.scan_all(codes, extra, np.float32(extra_coef), tables, *units.kernel_args(), bias)


def scan_topk(units: LookupUnits, tables: np.ndarray, codes: np.ndarray, extra: np.ndarray,
              extra_coef: float, block_start: np.ndarray, block_end: np.ndarray,
              entry_ptr: np.ndarray, entry_query: np.ndarray, entry_bias: np.ndarray,
              k: int) -> tuple[np.ndarray, np.ndarray]:
    """k smallest scores per query over row blocks (see `_kernels.scan_blocks`):
    (D (nq, k) float32 ascending, rows (nq, k) int64, -1 where fewer than k rows)."""
    entry_d, entry_i = _kernels.scan_blocks(
        codes, extra, np.float32(extra_coef), tables, *units.kernel_args(), block_start, block_end,
        entry_ptr, entry_query, entry_bias.astype(np.float32), k)
    return _kernels.merge_entries(entry_d, entry_i, entry_query, len(tables), k)


class ADCSearcher:
    """Scores float queries against a quantizer's codes: plans lookup units once, then
    builds per-query tables and runs the numba scan. Shared by the flat and IVF indexes."""

    def __init__(self, quantizer: QETQuantizer):
        self.quantizer = quantizer
        self.units = plan_units(quantizer.stages, quantizer.layout)
        if self.units is None:
            warnings.warn(f"{quantizer}: ADC tables would be too large; searching by decoding "
                          "rows (exact, slower)", stacklevel=3)

    def tables(self, queries: np.ndarray, kind: str, scale: float = 1.0) -> np.ndarray:
        """scale * tables (nq, table_size) float32 of kind "ip" or "l2"."""
        t = compute_tables(self.units, self.quantizer.stages, queries, kind)
        return t if scale == 1.0 else t * np.float32(scale)

    def query_block(self) -> int:
        """Queries per block so that their tables fit QUERY_BLOCK_BYTES."""
        return max(1, QUERY_BLOCK_BYTES // (4 * max(1, self.units.table_size)))
