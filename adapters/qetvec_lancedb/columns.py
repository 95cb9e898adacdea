"""User data in, stored columns out: input conversion, vector extraction, code columns.

Stored beside the user's columns: `_qet_code` fixed_size_binary[code_size], plus
`_qet_norm` float32 (L2, several stages, no IVF) and `_qet_part` uint8 / uint16 (IVF). The vector
column is stored as fixed_size_list<float32>[d] when kept. User data may not use the reserved
names (`RESERVED_COLUMNS`): the adapter's columns and those a search adds or LanceDB owns.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from qetvec._validation import as_float_matrix, check_bool, check_positive_int

from qetvec_lancedb.codec import TableCodec
from qetvec_lancedb.errors import DimensionMismatchError, VectorColumnError

CODE_COLUMN = "_qet_code"
NORM_COLUMN = "_qet_norm"
PART_COLUMN = "_qet_part"
INTERNAL_COLUMNS = (CODE_COLUMN, NORM_COLUMN, PART_COLUMN)
DISTANCE_COLUMN = "_distance"
QUERY_INDEX_COLUMN = "query_index"  # LanceDB's name for it in multi-vector searches
RESERVED_COLUMNS = INTERNAL_COLUMNS + (DISTANCE_COLUMN, QUERY_INDEX_COLUMN, "_rowid", "_rowaddr")


def check_user_columns(names: list[str], source: str) -> None:
    """Refuse user columns named like a reserved column (ValueError naming them)."""
    clash = [c for c in names if c in RESERVED_COLUMNS]
    if clash:
        raise ValueError(f"{source} has columns {clash} whose names are reserved by qetvec_lancedb "
                         f"({', '.join(RESERVED_COLUMNS)}): rename them")


def to_arrow(data: Any) -> pa.Table:
    """A pyarrow Table from a Table, RecordBatch, pandas DataFrame, list of dicts or dict of lists."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, list):
        return pa.Table.from_pylist(data)
    if isinstance(data, dict):
        return pa.Table.from_pydict(data)
    if type(data).__name__ == "DataFrame" and hasattr(data, "to_numpy"):  # pandas, without importing it
        return pa.Table.from_pandas(data, preserve_index=False)
    raise TypeError(f"data must be a pyarrow Table/RecordBatch, pandas DataFrame, list of dicts or "
                    f"dict of lists, got {type(data).__name__}")


def vector_matrix(table: pa.Table, column: str, d: int | None, source: str) -> np.ndarray:
    """Rows of the vector column as float32 (n, d). The column must be a (fixed-size or
    variable) list of floats without nulls, every row of length d (when d is given)."""
    if column not in table.column_names:
        raise VectorColumnError(f"{source} has no vector column {column!r} "
                                f"(columns: {', '.join(table.column_names) or 'none'})")
    arr = table.column(column).combine_chunks()
    kind = arr.type
    if not (pa.types.is_fixed_size_list(kind) or pa.types.is_list(kind) or pa.types.is_large_list(kind)) \
            or not pa.types.is_floating(kind.value_type):
        raise VectorColumnError(f"{source}: column {column!r} has type {kind}, expected a "
                                "fixed-size list of floats (e.g. fixed_size_list<float32>[d])")
    if arr.null_count:
        raise VectorColumnError(f"{source}: column {column!r} has {arr.null_count} null vectors")
    lengths = np.asarray(pc.list_value_length(arr), dtype=np.int64) if len(arr) else np.zeros(0, np.int64)
    width = int(lengths[0]) if len(lengths) else (d or 0)
    if d is not None and len(lengths) and (lengths != d).any():
        bad = int(np.argmax(lengths != d))
        raise DimensionMismatchError(f"{source}: row {bad} of {column!r} has {lengths[bad]} values, "
                                     f"the table's dimension is {d}")
    if (lengths != width).any():
        raise VectorColumnError(f"{source}: vectors of {column!r} have different lengths "
                                f"({lengths.min()}..{lengths.max()})")
    values = arr.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return values.reshape(len(arr), width)


def encode_table(table: pa.Table, codec: TableCodec, vector_column: str, keep_vectors: bool,
                 batch_size: int = 65536, progress: bool | None = None) -> pa.Table:
    """The user's columns (vector column as fixed_size_list<float32>[d], or dropped unless
    keep_vectors) plus the code columns, encoding `batch_size` rows at a time with a tqdm
    bar (shown by default when there is more than one batch)."""
    keep_vectors = check_bool(keep_vectors, "keep_vectors")
    batch_size = check_positive_int(batch_size, "batch_size")
    x = vector_matrix(table, vector_column, codec.d, "data")
    if not len(x):
        raise ValueError("data has no rows")
    x = as_float_matrix(x, f"data: vectors of {vector_column!r}", codec.d)  # NaN / inf named here, by row
    check_user_columns(table.column_names, "data")
    parts: dict[str, list[np.ndarray]] = {}
    show = len(x) > batch_size if progress is None else progress
    with tqdm(total=len(x), desc="qetvec encode", unit="row", disable=not show) as bar:
        for i in range(0, len(x), batch_size):
            for name, col in codec.encode(x[i:i + batch_size]).items():
                parts.setdefault(name, []).append(col)
            bar.update(min(batch_size, len(x) - i))
    cols = {name: np.concatenate(chunks) for name, chunks in parts.items()}
    out = table.drop_columns([vector_column])
    if keep_vectors:
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), codec.d)
        out = out.add_column(table.column_names.index(vector_column), vector_column, vectors)
    for name, column in code_arrays(codec, cols).items():
        out = out.append_column(name, column)
    return out


def code_columns(codec: TableCodec) -> list[str]:
    """Names of the columns `codec` stores per row, in stored order: `_qet_code`, then
    `_qet_norm` (L2, several stages, no IVF) and `_qet_part` (IVF) where it has them."""
    return [CODE_COLUMN] + [NORM_COLUMN] * codec.stores_norm + [PART_COLUMN] * (codec.nlist is not None)


def code_arrays(codec: TableCodec, encoded: dict[str, np.ndarray]) -> dict[str, pa.Array]:
    """The stored columns (`code_columns` order) of `codec.encode`'s output: code uint8
    (n, code_size) as fixed_size_binary[code_size], norm float32 (n,), part (n,) as uint8 /
    uint16."""
    code = np.ascontiguousarray(encoded["code"])
    out = {CODE_COLUMN: pa.FixedSizeBinaryArray.from_buffers(pa.binary(code.shape[1]), len(code),
                                                             [None, pa.py_buffer(code)])}
    if "norm" in encoded:
        out[NORM_COLUMN] = pa.array(encoded["norm"], pa.float32())
    if "part" in encoded:
        out[PART_COLUMN] = pa.array(encoded["part"], pa.from_numpy_dtype(codec.part_dtype))
    return out


def code_matrix(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A fixed_size_binary[w] column as uint8 (n, w), a view of the Arrow data buffer (one
    vectorized concatenation first if the column has several chunks)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    width = arr.type.byte_width
    if arr.null_count:
        raise ValueError(f"code column has {arr.null_count} null codes")
    if len(arr) == 0:
        return np.empty((0, width), np.uint8)
    return np.frombuffer(arr.buffers()[1], np.uint8, count=len(arr) * width,
                         offset=arr.offset * width).reshape(len(arr), width)


def user_columns(schema: pa.Schema) -> list[str]:
    """Column names of a stored schema without the adapter's internal columns."""
    return [name for name in schema.names if name not in INTERNAL_COLUMNS]
