"""Where a table's codec lives: `<db>/<table>.qetvec/quantizer-v<N>.qet`, and how a table
version points to it.

Files are written once with `qetvec.write_index` (atomic, checksummed) and never
overwritten; retraining writes v<N+1>. The table's Arrow schema metadata (part of every
LanceDB table version) names the file and its SHA-256, so a reader pinned to any version
loads exactly the codec its codes were made with:

    qetvec.format         "1"
    qetvec.quantizer      "quantizer-v<N>.qet"  (relative to <db>/<table>.qetvec/)
    qetvec.sha256         hex digest of that file
    qetvec.vector_column  name of the user's vector column
    qetvec.keep_vectors   "true" / "false": whether float vectors are stored
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from qetvec.io import CorruptIndexError, deserialize, serialize, write_bytes_atomic

from qetvec_lancedb.codec import TableCodec
from qetvec_lancedb.errors import NotTrainedError, QuantizerFileError

FORMAT = "1"
_FILE = re.compile(r"quantizer-v(\d+)\.qet")


@dataclass(frozen=True)
class TableMeta:
    """The adapter's schema metadata of one table version."""

    quantizer_file: str
    sha256: str
    vector_column: str
    keep_vectors: bool

    def to_schema_metadata(self) -> dict[str, str]:
        return {"qetvec.format": FORMAT, "qetvec.quantizer": self.quantizer_file,
                "qetvec.sha256": self.sha256, "qetvec.vector_column": self.vector_column,
                "qetvec.keep_vectors": "true" if self.keep_vectors else "false"}

    @classmethod
    def from_schema(cls, schema: pa.Schema, table: str) -> "TableMeta":
        """Read it back; NotTrainedError if the table was never encoded by this adapter."""
        meta = {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}
        if "qetvec.quantizer" not in meta:
            raise NotTrainedError(f"table {table!r} has no QET codes: create it with "
                                  "qetvec_lancedb.create_table or encode it with convert_table")
        if meta.get("qetvec.format") != FORMAT:
            raise QuantizerFileError(f"table {table!r}: qetvec metadata format "
                                     f"{meta.get('qetvec.format')!r}, this adapter reads {FORMAT!r}")
        return cls(meta["qetvec.quantizer"], meta["qetvec.sha256"], meta["qetvec.vector_column"],
                   meta["qetvec.keep_vectors"] == "true")


def store_dir(db_uri: str, table: str) -> Path:
    """`<db>/<table>.qetvec`; local databases only."""
    path = db_uri.removeprefix("file://")
    if "://" in path:
        raise NotImplementedError(f"qetvec_lancedb stores quantizers beside local databases only, got {db_uri!r}")
    return Path(path) / f"{table}.qetvec"


def save_codec(db_uri: str, table: str, codec: TableCodec, vector_column: str,
               keep_vectors: bool) -> TableMeta:
    """Write the codec as the next quantizer-v<N>.qet of the table; its metadata."""
    folder = store_dir(db_uri, table)
    folder.mkdir(parents=True, exist_ok=True)
    versions = [int(m.group(1)) for p in folder.iterdir() if (m := _FILE.fullmatch(p.name))]
    name = f"quantizer-v{max(versions, default=0) + 1}.qet"
    data = serialize(codec)
    write_bytes_atomic(folder / name, data)
    return TableMeta(name, hashlib.sha256(data).hexdigest(), vector_column, keep_vectors)


def load_codec(db_uri: str, table: str, meta: TableMeta) -> TableCodec:
    """The codec a table version points to; QuantizerFileError if missing, corrupt or not
    the file the codes were made with."""
    path = store_dir(db_uri, table) / meta.quantizer_file
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise QuantizerFileError(f"table {table!r}: quantizer file {path} is missing; the table's "
                                 "codes cannot be searched without it (restore the file)") from err
    if hashlib.sha256(data).hexdigest() != meta.sha256:
        raise QuantizerFileError(f"table {table!r}: quantizer file {path} is corrupt or was replaced "
                                 f"(SHA-256 differs from {meta.sha256} recorded in the table)")
    try:
        codec = deserialize(data, source=str(path))
    except CorruptIndexError as err:
        raise QuantizerFileError(f"table {table!r}: {err}") from err
    if not isinstance(codec, TableCodec):
        raise QuantizerFileError(f"table {table!r}: {path} holds a {type(codec).__name__}, not a table codec")
    return codec
