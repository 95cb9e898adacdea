"""`QETQuery`: LanceDB's vector query builder, over QET codes.

    tbl.search(q).where("lang = 'en'").limit(10).nprobes(20).refine_factor(4) \\
       .select(["id", "text"]).to_pandas()

Method names and defaults follow `lancedb.query.LanceVectorQueryBuilder` (lancedb 0.40):
`limit` (default 10), `where(sql, prefilter=True)`, `nprobes` (default 20), `refine_factor`,
`select`, `distance_type` / `metric` (must be the metric the table was encoded for), and the
terminals `to_arrow` / `to_pandas` / `to_list`. A (nq, d) query searches nq vectors at once
and adds LanceDB's `query_index` column. Each terminal call runs the search anew.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    import pandas as pd

    from qetvec_lancedb.table import QETTable


@dataclass(frozen=True)
class SearchRequest:
    """Everything a search needs; `QETTable.query` and `QETQuery` both end in one of these."""

    query: Any
    k: int = 10
    where: str | None = None
    prefilter: bool = True
    nprobe: int | None = None
    refine: int | None = None
    columns: list[str] | None = None
    metric: str | None = None


class QETQuery:
    """A search on a `QETTable`, built step by step like LanceDB's; `tbl.search(q)` makes it.

    Every setter returns the builder itself (as LanceDB's do), so calls chain."""

    def __init__(self, table: "QETTable", query: Any):
        self._table = table
        self._request = SearchRequest(query)

    def limit(self, limit: int) -> "QETQuery":
        """Return at most `limit` rows per query vector (default 10)."""
        return self._set(k=limit)

    def where(self, where: str, prefilter: bool = True) -> "QETQuery":
        """SQL predicate (LanceDB syntax). prefilter=True: applied before the top-k, so k
        rows come back whenever k rows match; False: applied to the top-k afterwards (fewer
        may come back). Calling it again ANDs the predicates, as LanceDB does."""
        old = self._request.where
        return self._set(where=where if old is None else f"({old}) AND ({where})", prefilter=prefilter)

    def nprobes(self, nprobes: int) -> "QETQuery":
        """IVF partitions scanned per query vector (default 20, LanceDB's)."""
        return self._set(nprobe=nprobes)

    def refine_factor(self, refine_factor: int) -> "QETQuery":
        """Re-rank the best refine_factor * limit rows by exact distance (needs kept vectors)."""
        return self._set(refine=refine_factor)

    def select(self, columns: list[str]) -> "QETQuery":
        """User columns to return (default: all); `_distance` is always added."""
        if not isinstance(columns, (list, tuple)):
            raise TypeError(f"columns must be a list of column names, got {type(columns).__name__}")
        return self._set(columns=list(columns))

    def distance_type(self, distance_type: str) -> "QETQuery":
        """The metric; must be the one the table was encoded for ("l2" or "dot")."""
        return self._set(metric=distance_type)

    metric = distance_type

    def to_arrow(self) -> pa.Table:
        """Run the search: user columns + `_distance` (+ `query_index` for (nq, d) queries)."""
        return self._table._execute(self._request)

    def to_pandas(self) -> "pd.DataFrame":
        return self.to_arrow().to_pandas()

    def to_list(self) -> list[dict]:
        return self.to_arrow().to_pylist()

    def _set(self, **changes: Any) -> "QETQuery":
        self._request = replace(self._request, **changes)
        return self
