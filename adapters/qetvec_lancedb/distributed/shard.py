"""`CodeShard`: a Ray actor holding the codes of some fragments of one table version.

It is the in-memory `CodeCache` a `QETTable` keeps for a whole version, built the same way
(`CodeCache.load`: one scan of the code columns, rows without codes scored exactly from their
vectors) but for a set of fragments only, and searched by the same `CodeCache.topk`. A
`where` filter is evaluated by Lance on the shard's own fragments. Loading the next version
reuses the rows it already unpacked. Memory per cached row as `QETTable`'s cache
(docs/lancedb.md); I/O per load: the code columns of its fragments.
"""
from __future__ import annotations

import lance
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from qetvec.evaluation import threads

from qetvec_lancedb.cache import CodeCache
from qetvec_lancedb.columns import CODE_COLUMN, code_columns
from qetvec_lancedb.folder import Folder
from qetvec_lancedb.scan import CodeScanner
from qetvec_lancedb.store import TableMeta, load_codec


class CodeShard:
    """Codes of the fragments `load` was given, of dataset `uri` (run as a Ray actor)."""

    def __init__(self, uri: str, storage_options: dict[str, str] | None, name: str, threads: int = 1):
        self.uri, self.storage_options, self.name, self.threads = uri, storage_options, name, threads
        self.sha256: str | None = None
        self.scanner: CodeScanner | None = None
        self.cache: CodeCache | None = None
        self.dataset: lance.LanceDataset | None = None
        self.fragments: list = []

    def load(self, version: int, fragment_ids: list[int]) -> int:
        """Hold the codes of fragments `fragment_ids` of `version`; returns their row count."""
        dataset = lance.dataset(self.uri, version=version, storage_options=self.storage_options)
        meta = TableMeta.from_schema(dataset.schema, self.name)
        previous = self.cache if meta.sha256 == self.sha256 else None
        if meta.sha256 != self.sha256:
            folder = Folder.beside(self.uri, self.storage_options)
            self.scanner, self.sha256 = CodeScanner(load_codec(folder, self.name, meta)), meta.sha256
        self.dataset, self.fragments = dataset, [dataset.get_fragment(i) for i in fragment_ids]
        scan = self._scan(code_columns(self.scanner.codec))
        vector_column = meta.vector_column if meta.keep_vectors else None
        with threads(self.threads):
            self.cache = CodeCache.load(scan, self.scanner, lambda ids: self._vectors(ids, meta.vector_column),
                                        vector_column, f"table {self.name!r}", previous)
        return len(self.cache.rowids)

    def topk(self, queries: np.ndarray, where: str | None, nprobe: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """`CodeCache.topk` over the shard's rows matching `where` (all if None):
        (rowids (nq, k) int64, -1 padded; distances (nq, k) float32)."""
        cache = self.cache if where is None else self.cache.subset(self._scan([], where).column("_rowid").to_numpy())
        with threads(self.threads):
            return cache.topk(queries, self.scanner, nprobe, k)

    def _scan(self, columns: list[str], where: str | None = None) -> pa.Table:
        """`columns` and `_rowid` of the shard's rows (matching `where`), in scan order."""
        if not self.fragments:  # Lance scans every fragment when given none
            schema = self.dataset.schema
            return pa.schema([schema.field(c) for c in columns] + [pa.field("_rowid", pa.uint64())]).empty_table()
        return self.dataset.scanner(columns=columns, filter=where, with_row_id=True,
                                    fragments=self.fragments).to_table()

    def _vectors(self, rowids: np.ndarray, vector_column: str) -> pa.Table:
        """The vector column of rows `rowids` (p,) uint64 of the shard (rows without codes), in that order."""
        got = self._scan([vector_column], f"{CODE_COLUMN} IS NULL")
        return got.take(pc.index_in(pa.array(rowids), value_set=got.column("_rowid"))).select([vector_column])
