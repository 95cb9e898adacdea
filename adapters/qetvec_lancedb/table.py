"""`QETTable`: a LanceDB table whose rows carry QET codes, searched by ADC with pre-filtering.

Every search pins one table version (`checkout`) and reads the candidate codes and the
result rows from it, so a concurrent writer never produces a torn read. The code columns of
the pinned version are held in memory (`CodeCache`) until the version changes; checking the
version costs one manifest lookup, a search of an unchanged table reads no codes. Small
fixed-width result columns (ids, numbers) come from a per-version `ColumnCache`: a search
returning only such columns makes no LanceDB call at all. The table handle is not meant to
be shared between threads.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Callable

import lancedb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from lancedb.util import validate_table_name

from qetvec.codec import Codec
from qetvec._validation import as_float_matrix, check_positive_int

from qetvec_lancedb.cache import CodeCache, ColumnCache, cacheable
from qetvec_lancedb.codec import TableCodec
from qetvec_lancedb.columns import (CODE_COLUMN, DISTANCE_COLUMN, NORM_COLUMN, PART_COLUMN,
                                    QUERY_INDEX_COLUMN, RESERVED_COLUMNS, check_user_columns,
                                    code_columns, code_matrix, encode_table, to_arrow, user_columns,
                                    vector_matrix)
from qetvec_lancedb.errors import DimensionMismatchError
from qetvec_lancedb.query import QETQuery, SearchRequest
from qetvec_lancedb.scan import CodeScanner, best_per_query, exact_distances
from qetvec_lancedb.store import (TableMeta, discard_codec, latest_version, load_codec, save_codec,
                                  table_folder)
from qetvec_lancedb.training import check_training_options, sample_positions, train_codec

DEFAULT_NPROBE = 20  # LanceDB's default nprobes
COMMIT_ATTEMPTS = 5  # a write Lance refused for a concurrent commit is retried this often
RETRYABLE = ("Commit conflict",  # Lance gave up rebasing over many concurrent commits
             "Retryable commit conflict",  # e.g. an overwrite preempted by a concurrent overwrite
             "Incompatible transaction")  # the table was overwritten / restored since it was read


@dataclass(frozen=True)
class _Pinned:
    """What a search needs of the table version the reader is pinned to."""

    version: int
    meta: TableMeta
    schema: pa.Schema
    cache: Any  # CodeCache: the version's codes in memory (`ShardedTable`: its shards)
    columns: ColumnCache


class QETTable:
    """A LanceDB table with a `_qet_code` column, opened by `open_table` / `create_table`.

    `table` is the underlying `lancedb.table.LanceTable` (for anything the adapter does not
    wrap: indexes on scalar columns, versions, ...). Attributes of the latest version:
    `codec`, `vector_column`, `keep_vectors`, `dim`, `bytes_per_row`."""

    def __init__(self, db: Any, name: str):
        self.name = name
        self._db_uri = db.uri
        self._folder = table_folder(db.uri, name, _storage_options(db))
        self.table = db.open_table(name)
        self._writer = _own_connection(db).open_table(name)  # see `add`
        self._reader = db.open_table(name)  # pinned to one version per search
        self._scanners: dict[str, CodeScanner] = {}
        self._pinned_version: _Pinned | None = None
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
        dict of lists) in one commit: all rows become visible together, or none.

        The rows are encoded with the quantizer of the version the append is committed on:
        the append goes through a handle that never refreshes implicitly, so Lance refuses
        it if the table was overwritten or restored since that version was read (the
        quantizer may have changed); the latest version is then read again, the rows
        re-encoded if its schema or quantizer differs, and the append retried, as is an
        append Lance refused after its own rebases over many concurrent commits. Rows
        already in the table without codes are encoded first (`encode_pending`)."""
        table = to_arrow(data)
        self.encode_pending()
        encoded, encoded_for = None, None

        def append() -> Any:
            nonlocal encoded, encoded_for
            self.meta, self.codec = self._latest()
            stored = self._writer.schema
            if encoded_for is None or not encoded_for.equals(stored, check_metadata=True):
                encoded, encoded_for = self._encode(table, stored, batch_size, progress), stored
            return self._writer.add(encoded)

        self._retrying("append", append)

    def encode_pending(self) -> int:
        """Encode the rows that have no QET code (appended through plain LanceDB), so that
        searches stop scoring them exactly; returns how many rows got codes (0, committing
        nothing, if there are none or the table keeps no float vectors to encode them from).

        One LanceDB `merge_insert` keyed on the vector column fills the code columns of
        the rows whose code is null, from the codes of their vectors (a code depends on
        the vector only), so it is atomic, rebased by Lance over concurrent appends and
        deletes, and refused, then retried on the latest version, if the table was
        overwritten or restored since it was read (as `add`). Rows with a null or
        non-finite vector keep a null code. Cost: a join over every row's vector."""
        def merge() -> int:
            self.meta, self.codec = self._latest()
            source = self._pending_codes()
            if source is None:
                return 0
            return (self._writer.merge_insert(self.vector_column)
                    .when_matched_update_all(where=f"target.{CODE_COLUMN} IS NULL").execute(source).num_updated_rows)

        return self._retrying("encoding of rows without codes", merge)

    def _pending_codes(self) -> pa.Table | None:
        """The vector and code columns (stored types) of each distinct finite vector among
        the write handle's rows with a null code; None if there are none to encode."""
        if not self.keep_vectors or not self._writer.count_rows(f"{CODE_COLUMN} IS NULL"):  # count: ~ms
            return None
        column = self.vector_column
        found = (self._writer.search().where(f"{CODE_COLUMN} IS NULL AND `{column}` IS NOT NULL")
                 .select([column]).limit(None).to_arrow())
        x = vector_matrix(found, column, self.dim, f"table {self.name!r}")
        x = x[np.isfinite(x).all(1)]
        x = x[np.sort(np.unique(_row_bytes(x.view(np.uint8)), return_index=True)[1])]
        if not len(x):
            return None
        vectors = pa.table({column: pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), self.dim)})
        encoded = encode_table(vectors, self.codec, column, True, progress=False)
        stored = self._writer.schema
        return encoded.cast(pa.schema([stored.field(name) for name in encoded.column_names]))

    def _encode(self, table: pa.Table, stored: pa.Schema, batch_size: int, progress: bool | None) -> pa.Table:
        """`table` encoded with the current codec, in the stored schema's column order and
        types (ValueError naming the columns if they differ)."""
        encoded = encode_table(table, self.codec, self.vector_column, self.keep_vectors, batch_size, progress)
        if set(encoded.column_names) != set(stored.names):
            missing = sorted(set(stored.names) - set(encoded.column_names))
            extra = sorted(set(encoded.column_names) - set(stored.names))
            raise ValueError(f"table {self.name!r}: data columns differ (missing {missing}, unexpected {extra})")
        return encoded.select(stored.names).cast(stored.remove_metadata())

    def _retrying(self, what: str, write: Callable[[], Any]) -> Any:
        """`_committed` `write()` (which reads the latest version and writes through the
        write handle); `table` is moved to the latest version after it."""
        result = _committed(self.name, what, write)
        self.table.checkout_latest()
        return result

    def delete(self, where: str) -> None:
        """Delete the rows matching the SQL predicate `where` (LanceDB syntax)."""
        self.table.delete(where)

    def count_rows(self, where: str | None = None) -> int:
        """Rows in the latest version (matching `where` if given)."""
        self.table.checkout_latest()
        return self.table.count_rows(where)

    # -- search ------------------------------------------------------------------------
    def search(self, query: Any) -> QETQuery:
        """A LanceDB-style query builder for `query` (d,) or a batch (nq, d):
        `tbl.search(q).where(...).limit(k).nprobes(n).refine_factor(r).select([...]).to_arrow()`
        (see `qetvec_lancedb.query`)."""
        return QETQuery(self, query)

    def query(self, query: Any, k: int = 10, *, where: str | None = None, prefilter: bool = True,
              nprobe: int | None = None, refine: int | None = None,
              columns: list[str] | None = None) -> pa.Table:
        """The k nearest rows to `query` by ADC over the codes, as a pyarrow Table; the
        function form of `search(query)...to_arrow()`, same results.

        query: one vector (d,), or a batch (nq, d), searched in one call (queries in
          parallel; see `qetvec_lancedb.scan` for large batches): the result holds each
          query's rows in query order with an int32 `query_index` column (LanceDB's
          multi-vector name).
        where / prefilter: SQL predicate applied before the top-k (k rows come back whenever
          >= k match), or after it with prefilter=False.
        nprobe: IVF partitions scanned (tables created with nlist; default 20).
        refine: re-rank the best refine*k by exact distance on the stored float vectors.
        columns: user columns to return (default all). A `_distance` float32 column is
        appended (squared L2, or 1 - <q, x> for "dot"), ascending per query."""
        return self._execute(SearchRequest(query, k, where, prefilter, nprobe, refine, columns))

    def _execute(self, req: SearchRequest) -> pa.Table:
        pinned = self._pin()
        meta, schema = pinned.meta, pinned.schema
        scanner = self._scanner(meta)
        codec = scanner.codec
        batch = np.ndim(req.query) == 2
        queries = _queries(req.query, codec.d)
        k = check_positive_int(req.k, "k (limit)")
        refine = None if req.refine is None else check_positive_int(req.refine, "refine (refine_factor)")
        if req.metric is not None and req.metric != codec.metric:
            raise ValueError(f"table {self.name!r} was encoded for metric {codec.metric!r}, "
                             f"the search asks for {req.metric!r}")
        if req.nprobe is not None and codec.nlist is None:
            raise ValueError(f"table {self.name!r} has no IVF partitions; nprobe needs create_table(..., nlist=...)")
        nprobe = check_positive_int(DEFAULT_NPROBE if req.nprobe is None else req.nprobe, "nprobe (nprobes)")
        if refine and not meta.keep_vectors:
            raise ValueError(f"table {self.name!r} does not keep float vectors; refine needs keep_vectors=True")
        wanted = user_columns(schema) if req.columns is None else _check_columns(req.columns, schema, self.name)
        rowids, dist = self._candidates(pinned, scanner, queries, req.where if req.prefilter else None,
                                        nprobe, k * (refine or 1))
        fetch = wanted + [meta.vector_column] * bool(refine and meta.vector_column not in wanted)
        rows = self._result_rows(pinned, rowids[rowids >= 0], fetch)
        if refine:
            x = vector_matrix(rows, meta.vector_column, codec.d, f"table {self.name!r}")
            rowids, dist, rows = _rerank(queries, x, rowids, rows, codec.metric, k)
        if req.where is not None and not req.prefilter:
            keep = np.isin(rowids[rowids >= 0], self._matching(req.where, rowids[rowids >= 0]))
            rowids, dist, rows = _drop(rowids, dist, rows, keep)
        out = rows.select(wanted).append_column(DISTANCE_COLUMN, pa.array(dist[rowids >= 0], pa.float32()))
        if batch:
            owner = np.repeat(np.arange(len(queries), dtype=np.int32), (rowids >= 0).sum(1))
            out = out.add_column(0, QUERY_INDEX_COLUMN, pa.array(owner))
        return out

    # -- internals ---------------------------------------------------------------------
    def _latest(self) -> tuple[TableMeta, TableCodec]:
        """Move the write handle to the latest version; that version's metadata and codec."""
        self._writer.checkout_latest()
        meta = TableMeta.from_schema(self._writer.schema, self.name)
        return meta, self._scanner(meta).codec

    def _pin(self) -> _Pinned:
        """Pin the reader to the latest version: its metadata, schema and code cache (built
        on the first search of a version: one scan of the code columns). While the newest
        manifest on disk is the pinned version, this makes no LanceDB call at all."""
        pinned = self._pinned_version
        if pinned is not None and latest_version(self._db_uri, self.name) == pinned.version:
            return pinned
        self._reader.checkout_latest()
        version = self._reader.version
        self._reader.checkout(version)
        if pinned is None or pinned.version != version:
            schema = self._reader.schema
            meta = TableMeta.from_schema(schema, self.name)
            same_codec = pinned is not None and pinned.meta.sha256 == meta.sha256
            cache = self._load_codes(meta, schema, pinned.cache if same_codec else None)
            self._pinned_version = _Pinned(version, meta, schema, cache, ColumnCache(self._scan))
        return self._pinned_version

    def _load_codes(self, meta: TableMeta, schema: pa.Schema, previous: CodeCache | None) -> CodeCache:
        scanner = self._scanner(meta)
        return CodeCache.load(self._scan(code_columns(scanner.codec)), scanner,
                              lambda rowids: self._take(rowids, [meta.vector_column], schema),
                              meta.vector_column if meta.keep_vectors else None, f"table {self.name!r}", previous)

    def _candidates(self, pinned: _Pinned, scanner: CodeScanner, queries: np.ndarray, where: str | None,
                    nprobe: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(rowids (nq, k) int64, -1 padded; distances (nq, k) float32) of each query's k best
        rows by ADC among the pinned version's rows matching `where` (all if None)."""
        cache = pinned.cache if where is None else pinned.cache.subset(self._matching(where))
        return cache.topk(queries, scanner, nprobe, k)

    def _scanner(self, meta: TableMeta) -> CodeScanner:
        if meta.sha256 not in self._scanners:
            self._scanners[meta.sha256] = CodeScanner(load_codec(self._folder, self.name, meta))
        return self._scanners[meta.sha256]

    def _matching(self, where: str, among: np.ndarray | None = None) -> np.ndarray:
        """`_rowid`s uint64 of the pinned version's rows matching `where` (among some)."""
        if among is not None:
            where = f"({where}) AND _rowid IN ({', '.join(map(str, among.tolist())) or 'NULL'})"
        got = self._reader.search().where(where).select(["_rowid"]).with_row_id(True).limit(None).to_arrow()
        return got.column("_rowid").to_numpy()

    def _scan(self, columns: list[str]) -> pa.Table:
        """`columns` and `_rowid` of every row of the pinned version."""
        return self._reader.search().select(columns).with_row_id(True).limit(None).to_arrow()

    def _result_rows(self, pinned: _Pinned, rowids: np.ndarray, columns: list[str]) -> pa.Table:
        """`columns` of the rows `rowids` (r,) uint64 of the pinned version, in that order:
        cacheable columns from its `ColumnCache`, the others by one LanceDB take (none if
        all are cacheable)."""
        held = [c for c in columns if cacheable(pinned.schema.field(c).type)]
        taken = [c for c in columns if c not in held]
        parts = [pinned.columns.gather(rowids.astype(np.uint64), held)] if held else []
        if taken or not held:
            parts.append(self._take(rowids, taken, pinned.schema))
        merged = {name: part.column(name) for part in parts for name in part.column_names}
        return pa.table({c: merged[c] for c in columns}) if columns else parts[-1]

    def _take(self, rowids: np.ndarray, columns: list[str], schema: pa.Schema) -> pa.Table:
        """Rows `rowids` (in that order, repeats allowed) of the pinned version, `columns` only."""
        if len(rowids) == 0:
            return schema.empty_table().select(columns)
        unique = np.unique(rowids)
        got = self._reader.take_row_ids(unique.tolist()).with_row_id().select(columns).to_arrow()
        at = pc.index_in(pa.array(rowids.astype(np.uint64)), value_set=got.column("_rowid"))
        return got.take(at).select(columns)


def _own_connection(db: Any) -> Any:
    """A connection to db's database whose table handles never refresh implicitly (LanceDB's
    default read_consistency_interval=None, whatever the caller's connection uses): a write
    through such a handle is committed with the version it last loaded as its read version,
    so Lance refuses it ("Incompatible transaction") if that version was since overwritten
    or restored."""
    return lancedb.connect(db.uri, storage_options=_storage_options(db))


def _committed(name: str, what: str, write: Callable[[], Any]) -> Any:
    """`write()`, run again while Lance refuses its commit for a concurrent one (nothing was
    written then), at most COMMIT_ATTEMPTS times; its result. After that, a RuntimeError
    naming table `name` and `what` was refused."""
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        try:
            return write()
        except RuntimeError as err:
            if not any(s in str(err) for s in RETRYABLE):
                raise
            if attempt == COMMIT_ATTEMPTS:
                raise RuntimeError(f"table {name!r}: the {what} was refused by Lance {COMMIT_ATTEMPTS} times "
                                   f"because other writers kept committing; nothing was written (last "
                                   f"refusal: {_lance_message(err)})") from err
            time.sleep(0.05 * attempt)


def _lance_message(err: Exception) -> str:
    """Lance's error message without the location in its Rust sources it ends with."""
    return re.sub(r",\s*\S+\.rs:\d+:\d+\s*$", "", str(err))


def _storage_options(db: Any) -> dict[str, str] | None:
    """The object-store options of a LanceDB connection (None for a local database)."""
    return getattr(db, "storage_options", None) or None


def create_table(db: Any, name: str, data: Any, *, vector_column: str = "vector",
                 codec: Codec | None = None, m: int | None = None, nbits: int = 8,
                 levels: int = 1, stages: int = 1, metric: str = "l2", nlist: int | None = None,
                 keep_vectors: bool = True, train_rows: int = 100_000, seed: int = 0,
                 mode: str = "create", batch_size: int = 65536, progress: bool | None = None,
                 bytes_per_row: int | None = None) -> QETTable:
    """Create table `name` in connection `db` from `data` with QET codes.

    The codec is `codec` (any `qetvec.codec.Codec`, trained on the data first if untrained)
    or a new QETQuantizer(d, m, nbits, levels, stages), or, given `bytes_per_row`, the best codec
    for that many stored bytes per row (code, partition id and any norm column) chosen by
    `qetvec.fit_codec`, trained on up to `train_rows` random rows; with
    `nlist`, rows are assigned to nlist k-means partitions (IVF) and encoded by their
    residual to the partition centroid. It is written to
    `<db>/<name>.qetvec/quantizer-<sha256>.qet` before the table. mode: "create" (fail if
    the table exists) or "overwrite"."""
    validate_table_name(name)
    if mode not in ("create", "overwrite"):
        raise ValueError(f"mode must be 'create' or 'overwrite', got {mode!r}")
    if mode == "create" and _exists(db, name):
        raise ValueError(f"table {name!r} already exists: use open_table, or mode='overwrite'")
    table = to_arrow(data)
    check_user_columns(table.column_names, "data")
    table_codec = _train_codec(table, name, vector_column, codec, m, nbits, levels, stages, metric,
                               nlist, train_rows, seed, bytes_per_row)
    encoded = encode_table(table, table_codec, vector_column, keep_vectors, batch_size, progress)
    _write(db, name, encoded, table_codec, vector_column, keep_vectors, mode)
    return QETTable(db, name)


def convert_table(db: Any, name: str, *, vector_column: str = "vector",
                  codec: Codec | None = None, m: int | None = None, nbits: int = 8,
                  levels: int = 1, stages: int = 1, metric: str = "l2", nlist: int | None = None,
                  keep_vectors: bool = True, train_rows: int = 100_000, seed: int = 0,
                  batch_size: int = 65536, progress: bool | None = None, max_attempts: int = 20,
                  bytes_per_row: int | None = None) -> QETTable:
    """Encode an existing plain LanceDB table in place: one new version with the code
    columns. Same options as `create_table`; if anything fails the table is left as it was.

    Safe under concurrent writers: the rows of version V are read, encoded and written only
    if V is still the latest version just before the write (else it reads again and encodes
    the rows new since, up to `max_attempts` times, then refuses). What another writer
    commits between that check and the write is in the version before ours and re-applied
    right after it (`_reconcile`): rows deleted (or replaced by an update) are deleted
    again, rows appended are appended, encoded. Rows appended after it through plain
    LanceDB have no codes until the next `QETTable.add` / `encode_pending` and are scored
    exactly from their vectors meanwhile. So no acknowledged append or delete is lost."""
    validate_table_name(name)
    existing = db.open_table(name)
    if existing.schema.metadata and b"qetvec.quantizer" in existing.schema.metadata:
        raise ValueError(f"table {name!r} already has QET codes: use open_table")
    check_user_columns(existing.schema.names, f"table {name!r}")
    table_codec, written = None, None
    done_ids, done = np.zeros(0, np.uint64), None  # rows encoded by earlier attempts, by _rowid
    for _ in range(check_positive_int(max_attempts, "max_attempts")):
        existing.checkout_latest()
        version = existing.version
        existing.checkout(version)
        rows = existing.search().with_row_id(True).limit(None).to_arrow()
        if table_codec is None:
            table_codec = _train_codec(rows.drop_columns(["_rowid"]), name, vector_column, codec, m, nbits,
                                       levels, stages, metric, nlist, train_rows, seed, bytes_per_row)
        ids = rows.column("_rowid").to_numpy()
        known = np.isin(ids, done_ids)  # a retry encodes only the rows appended since
        parts = [] if done is None else [done.take(_positions(done_ids, ids[known]))]
        if not known.all():
            parts.append(encode_table(rows.filter(pa.array(~known)).drop_columns(["_rowid"]), table_codec,
                                      vector_column, keep_vectors, batch_size, progress))
        done_ids, done = np.concatenate([ids[known], ids[~known]]), pa.concat_tables(parts)
        existing.checkout_latest()
        if existing.version == version:
            written = _write(_own_connection(db), name, done, table_codec, vector_column, keep_vectors,
                             "overwrite")
            break
    if written is None:
        raise RuntimeError(f"table {name!r} changed during each of {max_attempts} conversion attempts; "
                           "nothing was converted: retry when writes pause")
    tbl = QETTable(db, name)
    _reconcile(tbl, existing, version, written, done, done_ids)
    return tbl


def _reconcile(tbl: QETTable, plain: Any, read_version: int, written: Any, done: pa.Table,
               done_ids: np.ndarray) -> None:
    """Re-apply to the converted table what other writers committed between the version
    convert_table read and its own write `written` (a handle at that version; all their
    commits are in the version before it): rows since appended are appended, encoded;
    rows of the read version since deleted, or replaced by an update, are deleted again.
    (Lance never reuses a `_rowid`, not even across an overwrite, so an overwrite in
    between leaves exactly its rows, encoded.) `done` is what was written; `done_ids`
    (n,) the read version's `_rowid` of each row."""
    if written.version <= read_version + 1:
        return
    plain.checkout(written.version - 1)
    before = plain.search().with_row_id(True).limit(None).to_arrow()
    rowids = before.column("_rowid").to_numpy()
    new = before.filter(pa.array(~np.isin(rowids, done_ids)))
    if new.num_rows:  # first: if it fails, rows are kept twice rather than lost
        tbl.add(new.drop_columns(["_rowid"]), progress=False)
    gone = ~np.isin(done_ids, rowids)
    if gone.any():
        _delete_written(written, done.filter(pa.array(gone)))


def _delete_written(written: Any, rows: pa.Table) -> None:
    """Delete `rows` from the version `written` holds, found by content (the write need not
    keep row order): the stored rows with the same code bytes, then one with every column
    equal per row. The delete's read version is that version, so Lance refuses it if the
    table has since been overwritten or restored, and rebases it over anything else."""
    scan = written.search().select([CODE_COLUMN]).with_row_id(True).limit(None).to_arrow()
    same_code = np.isin(_row_bytes(code_matrix(scan.column(CODE_COLUMN))),
                        _row_bytes(code_matrix(rows.column(CODE_COLUMN))))
    candidates = written.take_row_ids(scan.column("_rowid").to_numpy()[same_code].tolist()).with_row_id().to_arrow()
    free: dict[str, list[int]] = {}
    for rowid, row in zip(candidates.column("_rowid").to_pylist(), candidates.select(rows.column_names).to_pylist()):
        free.setdefault(repr(row), []).append(rowid)
    victims = [free[repr(row)].pop() for row in rows.to_pylist()]
    written.delete(f"_rowid IN ({', '.join(map(str, victims))})")


def _row_bytes(matrix: np.ndarray) -> np.ndarray:
    """Each row of a uint8 (n, w) matrix as one comparable value (n,)."""
    return np.ascontiguousarray(matrix).view(np.dtype((np.void, matrix.shape[1]))).ravel()


def _positions(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Positions in ids (n,) of the values wanted (m,), all present."""
    order = np.argsort(ids)
    return order[np.searchsorted(ids, wanted, sorter=order)]


def open_table(db: Any, name: str) -> QETTable:
    """Open a table made by `create_table` / `convert_table` (e.g. in another process)."""
    return QETTable(db, name)


def _exists(db: Any, name: str) -> bool:
    try:
        db.open_table(name)
    except ValueError:
        return False
    return True


def _train_codec(table: pa.Table, name: str, vector_column: str, codec: Codec | None,
                 m: int | None, nbits: int, levels: int, stages: int, metric: str,
                 nlist: int | None, train_rows: int, seed: int, bytes_per_row: int | None = None) -> TableCodec:
    """`train_codec` on the rows of `table` that `sample_positions` draws."""
    nlist, train_rows, seed = check_training_options(nlist, train_rows, seed)
    x = vector_matrix(table, vector_column, None, f"table {name!r}")
    x = x[sample_positions(len(x), train_rows, seed)]
    return train_codec(x, name, vector_column, codec, m, nbits, levels, stages, metric, nlist, seed, bytes_per_row)


def _write(db: Any, name: str, encoded: pa.Table, codec: TableCodec, vector_column: str,
           keep_vectors: bool, mode: str) -> Any:
    """Save the codec, then write the table, retried while a concurrent writer's commit
    preempts it (`_committed`; its file is removed if that fails); returns the table
    handle, at the version written."""
    folder = table_folder(db.uri, name, _storage_options(db))
    meta, created = save_codec(folder, codec, vector_column, keep_vectors)
    data = encoded.replace_schema_metadata(meta.to_schema_metadata())
    try:
        return _committed(name, "overwrite" if mode == "overwrite" else "creation",
                          lambda: db.create_table(name, data, mode=mode))
    except BaseException:
        discard_codec(folder, created)
        raise


def _queries(query: Any, d: int) -> np.ndarray:
    """A query (d,) or batch (nq, d) as float32 (nq, d), checked."""
    q = np.asarray(query)
    if q.dtype.kind not in "fiu":
        raise TypeError(f"query must hold real numbers, got dtype {q.dtype}")
    if q.ndim not in (1, 2):
        raise ValueError(f"query must be one vector (d,) or a batch (nq, d), got shape {q.shape}")
    if q.shape[-1] != d:
        raise DimensionMismatchError(f"query has {q.shape[-1]} values, the table's dimension is {d}")
    return as_float_matrix(q.reshape(-1, d), "query")


def _check_columns(columns: list[str], schema: pa.Schema, name: str) -> list[str]:
    unknown = [c for c in columns if c not in schema.names or c in RESERVED_COLUMNS]
    if unknown:
        raise ValueError(f"table {name!r}: cannot select {unknown}; columns are {user_columns(schema)}")
    return list(columns)


def _rerank(queries: np.ndarray, x: np.ndarray, rowids: np.ndarray, rows: pa.Table, metric: str,
            k: int) -> tuple[np.ndarray, np.ndarray, pa.Table]:
    """Keep each query's k best candidates by exact distance. rowids (nq, c) int64 -1
    padded; rows and x float32 (r, d): the valid candidates' rows, in rowids order."""
    valid = rowids >= 0
    slot = np.full(rowids.shape, -1, np.int64)
    slot[valid] = np.arange(valid.sum())
    D = np.full(rowids.shape, np.inf, np.float32)
    for i, q in enumerate(queries):
        D[i, valid[i]] = exact_distances(q[None], x[slot[i, valid[i]]], metric)[0]
    D, slot = best_per_query(D, slot, k)
    return np.where(slot >= 0, rowids[valid][np.maximum(slot, 0)], -1), D, rows.take(pa.array(slot[slot >= 0]))


def _drop(rowids: np.ndarray, dist: np.ndarray, rows: pa.Table,
          keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, pa.Table]:
    """Remove the result rows where keep (r,) is False, keeping each query's order."""
    valid = rowids >= 0
    mask = valid.copy()
    mask[valid] = keep
    order = np.argsort(~mask, axis=1, kind="stable")
    rowids = np.where(np.take_along_axis(mask, order, 1), np.take_along_axis(rowids, order, 1), -1)
    dist = np.where(rowids >= 0, np.take_along_axis(dist, order, 1), np.inf).astype(np.float32)
    return rowids, dist, rows.filter(pa.array(keep))
