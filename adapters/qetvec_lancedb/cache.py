"""`CodeCache`: the code columns of one table version, in memory, grouped by partition.

Built once per table version from one scan of the code columns (no float vectors) and
reused by every search of that version; a pre-filtered search gathers its subset from it by
`_rowid` (`subset`), so codes are never read twice. Rows whose code is null (added through
plain LanceDB) are kept apart as *pending* rows with their float vectors, scored exactly,
the way LanceDB scans rows its index does not cover yet, until `QETTable.encode_pending`
(or the next `QETTable.add`) gives them codes.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa

from qetvec_lancedb.codec import TableCodec
from qetvec_lancedb.columns import CODE_COLUMN, NORM_COLUMN, PART_COLUMN, code_matrix


@dataclass
class CodeCache:
    """Rows of one table version: coded rows grouped by partition, then pending rows.

    codes uint8 (n, code_size) and extra float32 (n,) or None, the per-row term of the
    score (L2 over several stages: ||r_hat||^2, the stored norm without residuals, derived
    from the codes with them; see `qetvec.adc`), partition
    p being rows part_ptr[p]:part_ptr[p + 1] (part_ptr (parts + 1,) int64, parts = nlist or 1);
    pending float32 (p, d): vectors of rows without codes; rowids uint64 (n + p,) the
    LanceDB `_rowid` of every coded row, then of every pending row."""

    codes: np.ndarray
    extra: np.ndarray | None
    part_ptr: np.ndarray
    pending: np.ndarray
    rowids: np.ndarray

    @classmethod
    def from_arrow(cls, t: pa.Table, codec: TableCodec, pending: np.ndarray,
                   previous: "CodeCache | None" = None) -> "CodeCache":
        """From a scan t with `_rowid`, the code column(s) and (IVF) the partition column;
        `pending` float32 (p, d) the vectors of its rows with a null code, in scan order;
        `previous` a cache of an earlier version with the same codec (its norms are reused)."""
        valid = np.asarray(t.column(CODE_COLUMN).is_valid())
        coded = t.filter(pa.array(valid)) if not valid.all() else t
        parts = coded.column(PART_COLUMN).to_numpy().astype(np.int64) if PART_COLUMN in t.column_names \
            else np.zeros(coded.num_rows, np.int64)
        order = np.argsort(parts, kind="stable")
        rowids = t.column("_rowid").to_numpy()
        codes = np.ascontiguousarray(code_matrix(coded.column(CODE_COLUMN))[order])
        all_rowids = np.concatenate([rowids[valid][order], rowids[~valid]])
        if codec.by_residual and codec.metric == "l2" and len(codec.quantizer.stages) > 1:
            extra = _residual_norms(codec, codes, all_rowids[:len(codes)], previous)
        elif NORM_COLUMN in t.column_names:
            extra = np.ascontiguousarray(coded.column(NORM_COLUMN).to_numpy()[order], np.float32)
        else:
            extra = None
        return cls(codes, extra, np.searchsorted(parts[order], np.arange((codec.nlist or 1) + 1)).astype(np.int64),
                   pending, all_rowids)

    @property
    def n_coded(self) -> int:
        return len(self.codes)

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
        return CodeCache(self.codes[coded], None if self.extra is None else self.extra[coded],
                         np.searchsorted(coded, self.part_ptr).astype(np.int64), self.pending[pend],
                         np.concatenate([self.rowids[coded], self.rowids[self.n_coded + pend]]))


def _residual_norms(codec: TableCodec, codes: np.ndarray, rowids: np.ndarray,
                    previous: CodeCache | None) -> np.ndarray:
    """||r_hat||^2 (n,) float32 of coded rows, copied from `previous` for the rowids it
    holds (a row's code never changes under its `_rowid`), computed for the others."""
    beta = np.empty(len(codes), np.float32)
    todo = np.ones(len(codes), bool)
    if previous is not None and previous.extra is not None and previous.n_coded:
        old = previous.rowids[:previous.n_coded]
        order = np.argsort(old)
        at = order[np.minimum(np.searchsorted(old, rowids, sorter=order), len(old) - 1)]
        hit = old[at] == rowids
        beta[hit], todo = previous.extra[at[hit]], ~hit
    beta[todo] = codec.residual_norms(codes[todo])
    return beta
