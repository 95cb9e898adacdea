"""LanceDB integration of qetvec: QET codes stored in a LanceDB table, searched by ADC.

Import path: ``import qetvec_lancedb`` (shipped in the qetvec distribution, directory
``adapters/qetvec_lancedb``). Guide: docs/lancedb.md.

    import lancedb, qetvec_lancedb
    db = lancedb.connect("./my.db")
    tbl = qetvec_lancedb.create_table(db, "docs", data, m=10, levels=1)   # trains, encodes
    tbl.add(more_rows)                                    # encoded on the way in
    tbl.encode_pending()                                  # codes for rows added through plain LanceDB
    hits = tbl.search(query).where("lang = 'en'").limit(10).to_pandas()  # LanceDB's builder
    hits = tbl.query(query, k=10, where="lang = 'en'")    # same, as one call: pyarrow.Table
    batch = tbl.query(queries, k=10)                      # (nq, d): + `query_index` column
    tbl = qetvec_lancedb.open_table(db, "docs")           # later / in another process

Per row the table stores ``_qet_code`` (fixed_size_binary[code_size]), plus ``_qet_norm``
(float32, L2 with several stages without IVF) and ``_qet_part`` (uint8 / uint16, IVF; codes are then of
the residual to the partition centroid); the quantizer lives in
``<db>/<table>.qetvec/quantizer-<sha256>.qet``, named with its SHA-256 in the schema metadata.
"""
from qetvec._optional import require

for _module in ("lancedb", "pyarrow"):  # the `lancedb` extra: say how to install it if missing
    require(_module, "lancedb")

from qetvec_lancedb.codec import TableCodec  # noqa: E402
from qetvec_lancedb.errors import (DimensionMismatchError, NotTrainedError, QETLanceError,  # noqa: E402
                                   QuantizerFileError, VectorColumnError)
from qetvec_lancedb.query import QETQuery  # noqa: E402
from qetvec_lancedb.table import QETTable, convert_table, create_table, open_table  # noqa: E402

__all__ = ["QETTable", "QETQuery", "create_table", "convert_table", "open_table", "TableCodec",
           "QETLanceError", "VectorColumnError", "DimensionMismatchError", "NotTrainedError", "QuantizerFileError"]
