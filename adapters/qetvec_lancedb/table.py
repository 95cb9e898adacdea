"""`QETTable`: a LanceDB table whose rows carry QET codes, searched by ADC with pre-filtering.

Every search pins one table version (`checkout`) and reads both the candidate codes and the
result rows from it, so a concurrent writer never produces a torn read; codes are cached per
version while no `where` is given. The table handle is not meant to be shared between threads.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from qetvec import QETQuantizer

from qetvec_lancedb.codec import TableCodec, train_centroids
from qetvec_lancedb.columns import (CODE_COLUMN, NORM_COLUMN, PART_COLUMN, code_matrix, encode_table,
                                    to_arrow, user_columns, vector_matrix)
from qetvec_lancedb.errors import DimensionMismatchError
from qetvec_lancedb.scan import CodeScanner
from qetvec_lancedb.store import TableMeta, load_codec, save_codec

DEFAULT_NPROBE = 20  # LanceDB's default nprobes


@dataclass
class _Candidates:
    """Code columns of the rows a search may return, as numpy views of one table version.

    codes uint8 (n, code_size); rowids uint64 (n,) LanceDB `_rowid`; norms float32 (n,) or
    None; parts uint16 (n,) or None; part_ptr (nlist + 1,) when rows are sorted by partition."""

    codes: np.ndarray
    rowids: np.ndarray
    norms: np.ndarray | None
    parts: np.ndarray | None
    part_ptr: np.ndarray | None = None

    @classmethod
    def from_arrow(cls, t: pa.Table) -> "_Candidates":
        get = lambda name: t.column(name).to_numpy() if name in t.column_names else None  # noqa: E731
        return cls(code_matrix(t.column(CODE_COLUMN)), get("_rowid"), get(NORM_COLUMN), get(PART_COLUMN))

    def sorted_by_partition(self, nlist: int) -> "_Candidates":
        """The same rows grouped by partition (one gather), with part_ptr offsets."""
        order = np.argsort(self.parts, kind="stable")
        take = lambda a: None if a is None else np.ascontiguousarray(a[order])  # noqa: E731
        ptr = np.searchsorted(self.parts[order], np.arange(nlist + 1)).astype(np.int64)
        return _Candidates(take(self.codes), take(self.rowids), take(self.norms), take(self.parts), ptr)

    def probe(self, probes: np.ndarray | None) -> tuple["_Candidates", np.ndarray]:
        """(rows, ranges (R, 2) int64 into them) covering the probed partitions (all if None)."""
        if probes is None:
            return self, np.array([[0, len(self.codes)]], np.int64)
        if self.part_ptr is not None:
            return self, np.stack([self.part_ptr[probes], self.part_ptr[probes + 1]], axis=1)
        keep = np.isin(self.parts, probes)
        sub = lambda a: None if a is None else np.ascontiguousarray(a[keep])  # noqa: E731
        rows = _Candidates(sub(self.codes), sub(self.rowids), sub(self.norms), sub(self.parts))
        return rows, np.array([[0, int(keep.sum())]], np.int64)


class QETTable:
    """A LanceDB table with a `_qet_code` column, opened by `open_table` / `create_table`.

    `table` is the underlying `lancedb.table.LanceTable` (for anything the adapter does not
    wrap: indexes on scalar columns, versions, ...). Attributes of the latest version:
    `codec`, `vector_column`, `keep_vectors`, `dim`, `bytes_per_row`."""

    def __init__(self, db: Any, name: str):
        self.name = name
        self._db_uri = db.uri
        self.table = db.open_table(name)
        self._reader = db.open_table(name)  # pinned to one version per search
        self._scanners: dict[str, CodeScanner] = {}
        self._cache: tuple[int, _Candidates] | None = None
        self.meta, self.codec = self._latest()

    # -- properties --------------------------------------------------------------------
    @property
    def vector_column(self) -> str:
        return self.meta.vector_column

    @property
    def keep_vectors(self) -> bool:
        return self.meta.keep_vectors

    @property
    def dim(self) -> int:
        return self.codec.d

    @property
    def bytes_per_row(self) -> int:
        """Bytes the adapter stores per row (code + norm + partition id), from the stored schema."""
        schema = self.table.schema
        width = schema.field(CODE_COLUMN).type.byte_width
        return width + sum(schema.field(c).type.byte_width for c in (NORM_COLUMN, PART_COLUMN)
                           if c in schema.names)

    # -- writes ------------------------------------------------------------------------
    def add(self, data: Any, *, batch_size: int = 65536, progress: bool | None = None) -> None:
        """Encode and append rows (pyarrow Table/RecordBatch, pandas DataFrame, list of dicts,
        dict of lists) in one commit: all rows become visible together, or none."""
        self.meta, self.codec = self._latest()
        encoded = encode_table(to_arrow(data), self.codec, self.vector_column, self.keep_vectors,
                               batch_size, progress)
        stored = self.table.schema
        if set(encoded.column_names) != set(stored.names):
            missing = sorted(set(stored.names) - set(encoded.column_names))
            extra = sorted(set(encoded.column_names) - set(stored.names))
            raise ValueError(f"table {self.name!r}: data columns differ (missing {missing}, unexpected {extra})")
        self.table.add(encoded.select(stored.names).cast(stored.remove_metadata()))

    def delete(self, where: str) -> None:
        """Delete the rows matching the SQL predicate `where` (LanceDB syntax)."""
        self.table.delete(where)

    def count_rows(self, where: str | None = None) -> int:
        """Rows in the latest version (matching `where` if given)."""
        self.table.checkout_latest()
        return self.table.count_rows(where)

    # -- search ------------------------------------------------------------------------
    def search(self, query: Any, k: int = 10, *, where: str | None = None, nprobe: int | None = None,
               refine: int | None = None, columns: list[str] | None = None) -> pa.Table:
        """The k nearest rows to `query` (d,) by ADC over the codes, as a pyarrow Table.

        where: SQL predicate applied before the top-k (k rows come back whenever >= k match).
        nprobe: IVF partitions scanned (tables created with nlist; default 20).
        refine: re-rank the best refine*k by exact distance on the stored float vectors.
        columns: user columns to return (default all). A `_distance` float32 column is
        appended (squared L2, or 1 - <q, x> for "dot"), ascending. `.to_pandas()` for pandas."""
        version = self._pin()
        meta = TableMeta.from_schema(self._reader.schema, self.name)
        scanner = self._scanner(meta)
        codec = scanner.codec
        q = _query_vector(query, codec.d)
        k = _positive_int(k, "k")
        if nprobe is not None and codec.nlist is None:
            raise ValueError(f"table {self.name!r} has no IVF partitions; nprobe needs create_table(..., nlist=...)")
        if refine is not None and not meta.keep_vectors:
            raise ValueError(f"table {self.name!r} does not keep float vectors; refine needs keep_vectors=True")
        probes = None if codec.nlist is None else codec.probe(q[None], _positive_int(nprobe or DEFAULT_NPROBE, "nprobe"))[0]
        rows, ranges = self._candidates(version, codec, where).probe(probes)
        dist, pos = scanner.topk(q, rows.codes, rows.norms, k * _positive_int(refine or 1, "refine"), ranges)
        wanted = columns if columns is not None else user_columns(self._reader.schema)
        fetch = wanted + [meta.vector_column] if refine and meta.vector_column not in wanted else wanted
        result = self._take(rows.rowids[pos], fetch)
        if refine:
            x = vector_matrix(result, meta.vector_column, codec.d, f"table {self.name!r}")
            exact = (1.0 - x @ q) if codec.metric == "dot" else ((x - q) ** 2).sum(1)
            best = np.argsort(exact, kind="stable")[:k]
            result, dist = result.take(best), exact[best]
        return result.select(wanted).append_column("_distance", pa.array(dist, pa.float32()))

    # -- internals ---------------------------------------------------------------------
    def _latest(self) -> tuple[TableMeta, TableCodec]:
        self.table.checkout_latest()
        meta = TableMeta.from_schema(self.table.schema, self.name)
        return meta, self._scanner(meta).codec

    def _pin(self) -> int:
        """Pin the reader to the latest version; returns it."""
        self._reader.checkout_latest()
        version = self._reader.version
        self._reader.checkout(version)
        return version

    def _scanner(self, meta: TableMeta) -> CodeScanner:
        if meta.sha256 not in self._scanners:
            self._scanners[meta.sha256] = CodeScanner(load_codec(self._db_uri, self.name, meta))
        return self._scanners[meta.sha256]

    def _candidates(self, version: int, codec: TableCodec, where: str | None) -> _Candidates:
        """Code columns of the pinned version's rows matching `where` (cached when None)."""
        if where is None and self._cache is not None and self._cache[0] == version:
            return self._cache[1]
        cols = [CODE_COLUMN] + [NORM_COLUMN] * codec.stores_norm + [PART_COLUMN] * (codec.nlist is not None)
        query = self._reader.search().select(cols).with_row_id(True).limit(None)
        rows = _Candidates.from_arrow((query.where(where) if where else query).to_arrow())
        if where is None:
            rows = rows.sorted_by_partition(codec.nlist) if codec.nlist else rows
            self._cache = (version, rows)
        return rows

    def _take(self, rowids: np.ndarray, columns: list[str]) -> pa.Table:
        """Rows `rowids` (in that order) of the pinned version, `columns` only."""
        if len(rowids) == 0:
            return self._reader.schema.empty_table().select(columns)
        got = self._reader.take_row_ids(rowids.tolist()).with_row_id().select(columns).to_arrow()
        return got.take(pc.index_in(pa.array(rowids, pa.uint64()), value_set=got.column("_rowid"))).select(columns)


def create_table(db: Any, name: str, data: Any, *, vector_column: str = "vector",
                 quantizer: QETQuantizer | None = None, m: int | None = None, nbits: int = 8,
                 levels: int = 1, stages: int = 1, metric: str = "l2", nlist: int | None = None,
                 keep_vectors: bool = True, train_rows: int = 100_000, seed: int = 0,
                 mode: str = "create", batch_size: int = 65536, progress: bool | None = None) -> QETTable:
    """Create table `name` in connection `db` from `data` with QET codes.

    The quantizer is `quantizer` (trained on the data first if untrained) or a new
    QETQuantizer(d, m, nbits, levels, stages) trained on up to `train_rows` random rows; with
    `nlist`, rows are also assigned to nlist k-means partitions (IVF). It is written to
    `<db>/<name>.qetvec/quantizer-v<N>.qet` before the table. mode: "create" (fail if the
    table exists) or "overwrite"."""
    if mode not in ("create", "overwrite"):
        raise ValueError(f"mode must be 'create' or 'overwrite', got {mode!r}")
    if mode == "create" and _exists(db, name):
        raise ValueError(f"table {name!r} already exists: use open_table, or mode='overwrite'")
    table = to_arrow(data)
    codec = _train_codec(table, name, vector_column, quantizer, m, nbits, levels, stages, metric,
                         nlist, train_rows, seed)
    return _write(db, name, table, codec, vector_column, keep_vectors, mode, batch_size, progress)


def convert_table(db: Any, name: str, *, vector_column: str = "vector",
                  quantizer: QETQuantizer | None = None, m: int | None = None, nbits: int = 8,
                  levels: int = 1, stages: int = 1, metric: str = "l2", nlist: int | None = None,
                  keep_vectors: bool = True, train_rows: int = 100_000, seed: int = 0,
                  batch_size: int = 65536, progress: bool | None = None) -> QETTable:
    """Encode an existing plain LanceDB table in place (one new version with the code
    columns; the table is read into memory once). Same options as `create_table`; if
    anything fails the table is left as it was."""
    existing = db.open_table(name)
    if existing.schema.metadata and b"qetvec.quantizer" in existing.schema.metadata:
        raise ValueError(f"table {name!r} already has QET codes: use open_table")
    table = existing.to_arrow()
    codec = _train_codec(table, name, vector_column, quantizer, m, nbits, levels, stages, metric,
                         nlist, train_rows, seed)
    return _write(db, name, table, codec, vector_column, keep_vectors, "overwrite", batch_size, progress)


def open_table(db: Any, name: str) -> QETTable:
    """Open a table made by `create_table` / `convert_table` (e.g. in another process)."""
    return QETTable(db, name)


def _exists(db: Any, name: str) -> bool:
    try:
        db.open_table(name)
    except ValueError:
        return False
    return True


def _train_codec(table: pa.Table, name: str, vector_column: str, quantizer: QETQuantizer | None,
                 m: int | None, nbits: int, levels: int, stages: int, metric: str,
                 nlist: int | None, train_rows: int, seed: int) -> TableCodec:
    x = vector_matrix(table, vector_column, None, f"table {name!r}")
    if len(x) == 0:
        raise ValueError(f"table {name!r}: data has no rows")
    if len(x) > train_rows:
        x = x[np.sort(np.random.default_rng(seed).choice(len(x), train_rows, replace=False))]
    if quantizer is None:
        if m is None:
            raise ValueError("give m (column groups per stage) or a QETQuantizer")
        return TableCodec.train(x, m=m, nbits=nbits, levels=levels, stages=stages, metric=metric,
                                nlist=nlist, seed=seed)
    if quantizer.d != x.shape[1]:
        raise DimensionMismatchError(f"table {name!r}: vectors of {vector_column!r} have "
                                     f"{x.shape[1]} values, the quantizer expects d={quantizer.d}")
    if not quantizer.is_trained:
        quantizer.train(x)
    return TableCodec(quantizer, metric, train_centroids(x, nlist, seed) if nlist else None)


def _write(db: Any, name: str, table: pa.Table, codec: TableCodec, vector_column: str,
           keep_vectors: bool, mode: str, batch_size: int, progress: bool | None) -> QETTable:
    encoded = encode_table(table, codec, vector_column, keep_vectors, batch_size, progress)
    meta = save_codec(db.uri, name, codec, vector_column, keep_vectors)
    db.create_table(name, encoded.replace_schema_metadata(meta.to_schema_metadata()), mode=mode)
    return QETTable(db, name)


def _query_vector(query: Any, d: int) -> np.ndarray:
    q = np.asarray(query)
    if q.dtype.kind not in "fiu":
        raise TypeError(f"query must hold real numbers, got dtype {q.dtype}")
    if q.ndim == 2 and q.shape[0] == 1:
        q = q[0]
    if q.ndim != 1:
        raise ValueError(f"query must be one vector (d,), got shape {q.shape}")
    if len(q) != d:
        raise DimensionMismatchError(f"query has {len(q)} values, the table's dimension is {d}")
    q = np.ascontiguousarray(q, np.float32)
    if not np.isfinite(q).all():
        raise ValueError("query contains NaN or inf")
    return q


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
