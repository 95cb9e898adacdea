"""`CodeCache`: the code columns of one table version, in memory, grouped by partition.

Built once per table version from one scan of the code columns (no float vectors) and
reused by every search of that version; a pre-filtered search gathers its subset from it by
`_rowid` (`subset`), so codes are never read twice. Rows whose code is null (added through
plain LanceDB) are kept apart as *pending* rows with their float vectors, scored exactly,
the way LanceDB scans rows its index does not cover yet, until `QETTable.encode_pending`
(or the next `QETTable.add`) gives them codes.

`ColumnCache` keeps small fixed-width user columns (ids, numbers, dates: `cacheable`) of one
version the first time a search returns them, so a search returning only such columns reads
its k result rows from memory instead of asking LanceDB for them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

import numpy as np
import pyarrow as pa

from qetvec_lancedb.columns import CODE_COLUMN, NORM_COLUMN, PART_COLUMN, code_matrix, vector_matrix
from qetvec_lancedb.scan import CodeScanner, best_per_query, exact_topk


@dataclass
class CodeCache:
    """Rows of one table version: coded rows grouped by partition, then pending rows.

    codes uint8 (n, code_size), partition p being rows part_ptr[p]:part_ptr[p + 1]
    (part_ptr (parts + 1,) int64, parts = nlist or 1); index (n, U) uint16 / int32 and terms
    float32 (n,): the codes unpacked for the scan (`CodeScanner.unpack`: table entries and the
    query-independent part of each score; memory only, never stored), both None when the scan
    decodes rows; pending float32 (p, d): vectors of rows without codes; rowids uint64 (n + p,)
    the LanceDB `_rowid` of every coded row, then of every pending row."""

    codes: np.ndarray
    index: np.ndarray | None
    terms: np.ndarray | None
    part_ptr: np.ndarray
    pending: np.ndarray
    rowids: np.ndarray

    @classmethod
    def from_arrow(cls, t: pa.Table, scanner: CodeScanner, pending: np.ndarray,
                   previous: "CodeCache | None" = None) -> "CodeCache":
        """From a scan t with `_rowid`, the code column(s) and (IVF) the partition column;
        `pending` float32 (p, d) the vectors of its rows with a null code, in scan order;
        `previous` a cache of an earlier version with the same codec (its unpacked rows are
        reused)."""
        codec = scanner.codec
        valid = np.asarray(t.column(CODE_COLUMN).is_valid())
        coded = t.filter(pa.array(valid)) if not valid.all() else t
        parts = coded.column(PART_COLUMN).to_numpy().astype(np.int64) if PART_COLUMN in t.column_names \
            else np.zeros(coded.num_rows, np.int64)
        order = np.argsort(parts, kind="stable")
        rowids = t.column("_rowid").to_numpy()
        codes = np.ascontiguousarray(code_matrix(coded.column(CODE_COLUMN))[order])
        all_rowids = np.concatenate([rowids[valid][order], rowids[~valid]])
        norms = coded.column(NORM_COLUMN).to_numpy()[order] if NORM_COLUMN in t.column_names else None
        index, terms = _unpacked(scanner, codes, parts[order], norms, all_rowids[:len(codes)], previous)
        part_ptr = np.searchsorted(parts[order], np.arange((codec.nlist or 1) + 1)).astype(np.int64)
        return cls(codes, index, terms, part_ptr, pending, all_rowids)

    @classmethod
    def load(cls, scan: pa.Table, scanner: CodeScanner, take_vectors: Callable[[np.ndarray], pa.Table],
             vector_column: str | None, source: str, previous: "CodeCache | None" = None) -> "CodeCache":
        """From a scan of some rows (a whole table version, or some of its fragments) with
        `_rowid` and the code columns (`columns.code_columns`): rows with a null code (added
        through plain LanceDB) are scored exactly from their vectors, read by
        take_vectors(rowids (p,) uint64) -> table with `vector_column`, if the table keeps
        vectors (vector_column not None); rows with neither code nor vector are left out."""
        missing = np.asarray(scan.column(CODE_COLUMN).is_null())
        pending = np.zeros((0, scanner.codec.d), np.float32)
        if missing.any() and vector_column is not None:
            got = take_vectors(scan.column("_rowid").to_numpy()[missing])
            has_vector = np.asarray(got.column(vector_column).is_valid())
            pending = vector_matrix(got.filter(pa.array(has_vector)), vector_column, scanner.codec.d, source)
            missing[np.flatnonzero(missing)[has_vector]] = False  # left: rows without a vector
        if missing.any():  # no code and no vector: nothing to score them by
            scan = scan.filter(pa.array(~missing))
        return cls.from_arrow(scan, scanner, pending, previous)

    @property
    def n_coded(self) -> int:
        return len(self.codes)

    def topk(self, queries: np.ndarray, scanner: CodeScanner, nprobe: int,
             k: int) -> tuple[np.ndarray, np.ndarray]:
        """(rowids (nq, k) int64, -1 padded; distances (nq, k) float32 ascending) of the best
        rows for queries (nq, d) float32: ADC over the probed partitions' codes, merged with
        the pending rows scored exactly."""
        codec = scanner.codec
        probes = codec.probe(queries, nprobe) if codec.nlist else np.zeros((len(queries), 1), np.int64)
        D, pos = scanner.search(queries, probes, self.codes, self.index, self.terms, self.part_ptr, k)
        if len(self.pending):
            Dp, pp = exact_topk(queries, self.pending, codec.metric, k)
            D, pos = best_per_query(np.concatenate([D, Dp], 1),
                                    np.concatenate([pos, np.where(pp >= 0, pp + self.n_coded, -1)], 1), k)
        rowids = np.full(pos.shape, -1, np.int64)
        rowids[pos >= 0] = self.rowids[pos[pos >= 0]]
        return rowids, D

    @cached_property
    def rowid_order(self) -> np.ndarray:
        """argsort of rowids (n + p,) int64, computed once per cache."""
        return np.argsort(self.rowids)

    def subset(self, rowids: np.ndarray) -> "CodeCache":
        """The rows whose `_rowid` is in rowids (any order; ids not cached are ignored),
        same grouping: one gather of codes, no I/O."""
        order = self.rowid_order
        at = np.searchsorted(self.rowids, rowids, sorter=order)
        at = order[np.minimum(at, len(order) - 1)] if len(order) else at[:0]
        keep = np.zeros(len(self.rowids), bool)
        keep[at[self.rowids[at] == rowids]] = True
        coded, pend = np.flatnonzero(keep[:self.n_coded]), np.flatnonzero(keep[self.n_coded:])
        return CodeCache(self.codes[coded], None if self.index is None else self.index[coded],
                         None if self.terms is None else self.terms[coded],
                         np.searchsorted(coded, self.part_ptr).astype(np.int64), self.pending[pend],
                         np.concatenate([self.rowids[coded], self.rowids[self.n_coded + pend]]))


def _unpacked(scanner: CodeScanner, codes: np.ndarray, parts: np.ndarray, norms: np.ndarray | None,
              rowids: np.ndarray, previous: CodeCache | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """`CodeScanner.unpack` of coded rows in partitions parts (n,) int64, copied from
    `previous` for the rowids it holds (a row's code and partition never change under its
    `_rowid`), computed for the others. norms (n,) float32: the stored norm column (L2 over
    several stages without IVF), or None."""
    codec = scanner.codec
    todo = np.ones(len(codes), bool)
    hit, at = np.zeros(len(codes), bool), np.zeros(len(codes), np.int64)
    if previous is not None and previous.index is not None and previous.n_coded:
        old = previous.rowids[:previous.n_coded]
        order = np.argsort(old)
        at = order[np.minimum(np.searchsorted(old, rowids, sorter=order), len(old) - 1)]
        hit = old[at] == rowids
        todo = ~hit
    extra = norms[todo] if norms is not None else None
    if codec.by_residual and codec.metric == "l2" and codec.codec.per_row_norm:
        extra = codec.residual_norms(codes[todo])
    fresh_index, fresh_terms = scanner.unpack(codes[todo], parts[todo], extra)
    if fresh_index is None:
        return None, None
    index = np.empty((len(codes), fresh_index.shape[1]), fresh_index.dtype)
    terms = np.empty(len(codes), np.float32)
    index[todo], terms[todo] = fresh_index, fresh_terms
    if hit.any():
        index[hit], terms[hit] = previous.index[at[hit]], previous.terms[at[hit]]
    return index, terms


MAX_CACHED_BITS = 64  # user columns of fixed-width types up to 8 bytes per row are cached


def cacheable(kind: pa.DataType) -> bool:
    """Whether a user column of this type is kept by `ColumnCache`: bool, integers,
    floats, dates, times, timestamps, durations of at most 8 bytes per row."""
    return pa.types.is_primitive(kind) and kind.bit_width <= MAX_CACHED_BITS


@dataclass
class ColumnCache:
    """Cacheable user columns of one table version, each read by one scan on first use.

    `scan(columns)` returns those columns of every row of the version with `_rowid`;
    rowids uint64 (n,) sorted, and arrays[name] the column's values in that order."""

    scan: Callable[[list[str]], pa.Table]
    rowids: np.ndarray | None = None
    arrays: dict[str, pa.Array] = field(default_factory=dict)

    def gather(self, rowids: np.ndarray, columns: list[str]) -> pa.Table:
        """`columns` of the rows rowids (r,) uint64 (in that order, repeats allowed; all
        rows of the version), loading the columns not held yet in one scan."""
        missing = [c for c in columns if c not in self.arrays]
        if missing:
            self._load(missing)
        at = np.searchsorted(self.rowids, rowids)
        if len(at) and (at.max() >= len(self.rowids) or (self.rowids[at] != rowids).any()):
            raise KeyError("rows outside the cached table version")
        index = pa.array(at)
        return pa.table({c: self.arrays[c].take(index) for c in columns})

    def _load(self, columns: list[str]) -> None:
        got = self.scan(columns)
        ids = got.column("_rowid").to_numpy()
        order = np.argsort(ids, kind="stable")
        if self.rowids is None:
            self.rowids = ids[order]
        elif not np.array_equal(self.rowids, ids[order]):
            raise RuntimeError("a scan of one pinned table version returned different rows")
        index = pa.array(order)
        for c in columns:
            self.arrays[c] = got.column(c).combine_chunks().take(index)
