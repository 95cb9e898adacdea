"""qetvec codes of Lance datasets past one machine, on Ray (the `distributed` extra).

    import lancedb, ray, qetvec_lancedb
    from qetvec_lancedb.distributed import ShardedTable, encode_dataset

    ray.init()                                    # or ray.init(address="auto") on a cluster
    encode_dataset("s3://bucket/db/docs.lance", m=48, nlist=4096, storage_options=opts)   # train, encode
    db = lancedb.connect("s3://bucket/db", storage_options=opts)
    hits = qetvec_lancedb.open_table(db, "docs").query(q, k=10)         # one process, or:
    hits = ShardedTable(db, "docs", shards=8).query(queries, k=10)        # codes held by 8 actors

`encode_dataset` (`distributed.encode`) trains the codec on a sample on the driver and adds
the code columns to every fragment with Ray tasks, in one Lance commit; `ShardedTable`
(`distributed.sharded`) searches with the codes held by Ray actors (`distributed.shard`).
Guide: docs/distributed.md.
"""
from qetvec._optional import require

for _module in ("ray", "lance"):  # the `distributed` extra: say how to install it if missing
    require(_module, "distributed")

from qetvec_lancedb.distributed.encode import EncodeResult, encode_dataset  # noqa: E402
from qetvec_lancedb.distributed.sharded import ShardedTable  # noqa: E402

__all__ = ["encode_dataset", "EncodeResult", "ShardedTable"]
