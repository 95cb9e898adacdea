"""Lookup units of a QET code: how `QETQuantizer` cuts its stages into the tables the ADC
scans (`qetvec.codec.LookupUnits`).

For a row with swap bits s and reordered reconstruction y, <q, unpermute_s(y)> =
<permute_s(q), y>. Position j of permute_s(q) holds q[src_s(j)], and src_s(j) depends only
on the swap bits of j's path (`EntanglementTree.dependencies`). So each column group is cut
into units: runs of positions whose relevant swap bits number r, with a table of
2**r x ksub entries indexed by (pattern of those bits, codeword). Levels = 0 gives ordinary
PQ tables (r = 0, one unit per group; 0-bit groups, coded by their mean, share one unit of
one entry), and adjacent groups without swap bits whose codebooks together have at most
MERGED_KSUB codewords share one unit over their product codebook (bit allocation leaves many
groups of 1-5 bits: one lookup per row for several of them, the same sum of the same terms).
Units are capped at MAX_TABLE_ENTRIES entries (a
position that adds no swap bit joins its unit regardless); one position alone above
HARD_LIMIT (deep trees with many codewords) makes `plan_units` return None and the search
decodes rows instead (exact, slower: the one policy for tables too large).
"""
from __future__ import annotations

import numpy as np

from qetvec.codec import LookupUnits
from qetvec.layout import CodeLayout, StageFields
from qetvec.stage import QETStage

MAX_TABLE_ENTRIES = 2 ** 11  # smaller tables stay in L2; measured best on GloVe-50, levels=1
HARD_LIMIT = 2 ** 22
MERGED_KSUB = 2 ** 8  # a product unit's table is no larger than an 8-bit PQ group's

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
    """Greedy cut of positions a..b-1 into units (positions, relevant bits) under the cap.
    A position adding no bits to the current unit always joins it: its table does not grow
    (levels=0 with ksub above the cap: one unit per group, not one per position)."""
    units: list[tuple[list[int], list[int]]] = []
    for j in range(a, b):
        if units:
            merged = sorted(set(units[-1][1]) | set(deps[j]))
            if 2 ** len(merged) * ksub <= max_entries or len(merged) == len(units[-1][1]):
                units[-1] = (units[-1][0] + [j], merged)
                continue
        units.append(([j], list(deps[j])))
    return units

def _stage_units(stage: QETStage, fields: StageFields, deps: list[list[int]],
                 max_entries: int) -> list[tuple[int, int, int, np.ndarray, list[int], np.ndarray]]:
    """A stage's units as (code bit, code width, ksub, positions (npos,), swap bits, book
    (ksub, npos)). Without a tree, every 0-bit group (coded by its mean) joins one unit of a
    single entry, so they cost one lookup per row together."""
    units, constant = [], []
    for g, (a, b) in enumerate(zip(stage.bounds[:-1], stage.bounds[1:])):
        ksub = int(stage.ksubs[g])
        if ksub == 1 and not stage.levels:
            constant.append(g)
            continue
        for positions, bits in _split_group(deps, a, b, ksub, max_entries):
            positions = np.asarray(positions)
            units.append((fields.code_offsets[g], fields.code_widths[g], ksub, positions, bits,
                          stage.codebooks_[g, :ksub][:, positions - a]))
    units = _merge_small_groups(units)
    if constant:
        positions = np.concatenate([np.arange(stage.bounds[g], stage.bounds[g + 1]) for g in constant])
        book = np.concatenate([stage.codebooks_[g, :1, :stage.bounds[g + 1] - stage.bounds[g]] for g in constant], 1)
        units.append((0, 0, 1, positions, [], book))
    return units

def _merge_small_groups(units: list[tuple]) -> list[tuple]:
    """Units as `_stage_units` makes them, each run of adjacent units without swap bits whose
    codes are contiguous and whose full codebooks (ksub = 2**width) multiply to at most
    MERGED_KSUB codewords joined into one: code c1 + c2 * ksub1 (the bits of both, read as
    one field) indexes the product codebook, row c1 + c2 * ksub1 = (book1[c1], book2[c2])."""
    merged: list[tuple] = []
    for unit in units:
        code_bit, width, ksub, positions, bits, book = unit
        if merged:
            bit0, width0, ksub0, positions0, bits0, book0 = merged[-1]
            if (not bits0 and not bits and ksub0 == 2 ** width0 and ksub == 2 ** width
                    and code_bit == bit0 + width0 and ksub0 * ksub <= MERGED_KSUB):
                product = np.concatenate([np.tile(book0, (ksub, 1)), np.repeat(book, ksub0, axis=0)], axis=1)
                merged[-1] = (bit0, width0 + width, ksub0 * ksub, np.concatenate([positions0, positions]), [],
                              product)
                continue
        merged.append(unit)
    return merged


def plan_units(stages: list[QETStage], layout: CodeLayout,
               max_table_entries: int | None = None,
               hard_limit: int | None = None) -> LookupUnits | None:
    """Lookup units covering every (stage, group) of trained stages laid out by `layout`, or
    None if a table would be too large. Caps default to MAX_TABLE_ENTRIES and HARD_LIMIT."""
    max_table_entries = max_table_entries or MAX_TABLE_ENTRIES
    hard_limit = hard_limit or HARD_LIMIT
    cols: dict[str, list] = {k: [] for k in ("code_bit", "code_width", "ksub", "table_off", "sources", "books")}
    runs: list[tuple[int, int, int]] = []
    run_ptr, table_size = [0], 0
    for stage, fields in zip(stages, layout.stages):
        deps = stage.tree.dependencies()
        if 2 ** max(map(len, deps)) * int(stage.ksubs.max()) > hard_limit:
            return None
        for code_bit, width, ksub, positions, bits, book in _stage_units(stage, fields, deps, max_table_entries):
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
            for key, value in (("code_bit", code_bit), ("code_width", width), ("ksub", ksub),
                               ("table_off", table_size),
                               ("sources", stage.tree.permute(columns, swaps)[:, positions].astype(np.int64)),
                               ("books", np.ascontiguousarray(book, np.float32))):
                cols[key].append(value)
            table_size += len(patterns) * ksub
    run_arr = np.asarray(runs, dtype=np.int64).reshape(-1, 3)
    as_i64 = lambda key: np.asarray(cols[key], dtype=np.int64)  # noqa: E731
    return LookupUnits(as_i64("code_bit"), as_i64("code_width"), as_i64("ksub"), as_i64("table_off"),
                       np.asarray(run_ptr, dtype=np.int64), run_arr[:, 0].copy(), run_arr[:, 1].copy(),
                       run_arr[:, 2].copy(), cols["sources"], cols["books"], table_size)
