"""Where a table's codec lives: `<db>/<table>.qetvec/quantizer-<sha256>.qet` (a `Folder` beside
the table's `<table>.lance` dataset, local or on an object store), and how a table version
points to it.

Files are named by the SHA-256 of their bytes (content addressed) and written atomically
(`Folder.write`): two writers saving different codecs get different names,
and two saving the same codec write the same bytes, so no writer can replace a file another
table version points to. Retraining writes a new file; older files (also the
`quantizer-v<N>.qet` names of earlier releases) stay readable. The table's Arrow schema metadata (part of every
LanceDB table version) names the file and its SHA-256, so a reader pinned to any version
loads exactly the codec its codes were made with:

    qetvec.format         "1"
    qetvec.quantizer      "quantizer-<sha256>.qet"  (relative to <db>/<table>.qetvec/)
    qetvec.sha256         hex digest of that file
    qetvec.vector_column  name of the user's vector column
    qetvec.keep_vectors   "true" / "false": whether float vectors are stored
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import pyarrow as pa

from qetvec.io import CorruptIndexError, deserialize, serialize

from qetvec_lancedb.codec import TableCodec
from qetvec_lancedb.errors import NotTrainedError, QuantizerFileError
from qetvec_lancedb.folder import Folder

FORMAT = "1"


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


def table_folder(db_uri: str, table: str, storage_options: dict[str, str] | None = None) -> Folder:
    """`<db>/<table>.qetvec`: the codec folder of LanceDB table `table` of database `db_uri`."""
    return Folder.beside(f"{str(db_uri).rstrip('/')}/{table}.lance", storage_options)


def save_codec(folder: Folder, codec: TableCodec, vector_column: str,
               keep_vectors: bool) -> tuple[TableMeta, str | None]:
    """Write the codec as quantizer-<sha256>.qet in `folder`. Returns its metadata and the
    file name if this call created the file (None if identical bytes were already there)."""
    data = serialize(codec)
    digest = hashlib.sha256(data).hexdigest()
    name = f"quantizer-{digest}.qet"
    meta = TableMeta(name, digest, vector_column, keep_vectors)
    if folder.local is not None and (folder.local / name).exists() and not (folder.local / name).is_file():
        raise QuantizerFileError(f"{folder.location(name)} is in the way of the quantizer file (it is not a "
                                 "file); nothing was written (remove it)")
    if folder.exists(name) and hashlib.sha256(folder.read(name)).hexdigest() == digest:
        return meta, None
    folder.write(name, data)
    return meta, name


def discard_codec(folder: Folder, name: str | None) -> None:
    """Remove a file `save_codec` created (and its local folder if now empty), after the
    table write it was meant for failed."""
    if name is not None:
        folder.delete(name)


def load_codec(folder: Folder, table: str, meta: TableMeta) -> TableCodec:
    """The codec a table version points to; QuantizerFileError if missing, corrupt or not
    the file the codes were made with."""
    where = folder.location(meta.quantizer_file)
    try:
        data = folder.read(meta.quantizer_file)
    except FileNotFoundError as err:
        raise QuantizerFileError(f"table {table!r}: quantizer file {where} is missing; the table's "
                                 "codes cannot be searched without it (restore the file)") from err
    except OSError as err:  # a directory in its place, no permission, ...
        raise QuantizerFileError(f"table {table!r}: quantizer file {where} cannot be read ({err.strerror}); "
                                 "the table's codes cannot be searched without it (restore the file)") from err
    if hashlib.sha256(data).hexdigest() != meta.sha256:
        raise QuantizerFileError(f"table {table!r}: quantizer file {where} is corrupt or was replaced "
                                 f"(SHA-256 differs from {meta.sha256} recorded in the table)")
    try:
        codec = deserialize(data, source=where)
    except CorruptIndexError as err:
        raise QuantizerFileError(f"table {table!r}: {err}") from err
    if not isinstance(codec, TableCodec):
        raise QuantizerFileError(f"table {table!r}: {where} holds a {type(codec).__name__}, not a table codec")
    return codec


def latest_version(db_uri: str, table: str) -> int | None:
    """The newest committed version of LanceDB table `table`, read from its manifest file
    names (`<db>/<table>.lance/_versions/`: `<v>.manifest`, or `<2**64 - 1 - v>.manifest`
    with 20 digits in Lance's v2 naming) with one directory listing and no LanceDB call;
    None on an object store or if the layout is not recognised (callers then ask LanceDB)."""
    local = table_folder(db_uri, table).local
    if local is None:  # an object store: listing it costs a request anyway
        return None
    folder = local.with_suffix(".lance") / "_versions"
    try:
        stems = [e.name[:-9] for e in os.scandir(folder) if e.name.endswith(".manifest")]
    except OSError:
        return None
    if not stems or not all(s.isdigit() for s in stems):
        return None
    return max((2 ** 64 - 1 - int(s)) if len(s) == 20 else int(s) for s in stems)
