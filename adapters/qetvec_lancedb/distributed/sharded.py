"""`ShardedTable`: a `QETTable` whose codes are held by Ray actors, one set of fragments each.

    tbl = ShardedTable(db, "docs", shards=8)                 # opened like qetvec_lancedb.open_table
    hits = tbl.search(queries).where("lang = 'en'").limit(10).refine_factor(4).to_arrow()

Everything but the top-k is `QETTable`'s: the same query builder and `query`, the same
pinned version per search, validation, re-ranking, post-filtering and Arrow results. The
top-k step goes to the shards: the router puts the query batch in Ray's object store once,
every `CodeShard` returns its own top-k by ADC over its fragments (a `where` pre-filter
evaluated on them by Lance), and the router keeps each query's k best of the shards' lists
(`scan.best_per_query`; -1 / +inf padding). A row's ADC distance does not depend on which
rows share its cache, so the merged lists are the one-process lists. Re-ranking
(`refine_factor`) fetches the k * r candidates' vectors on the router, as `QETTable` does.

Fragments are dealt to shards once, largest first onto the shard holding the fewest rows;
when the table changes, each shard reloads its fragments of the new version (reusing the rows
it unpacked) and new fragments go to the least-loaded shard. The router holds no per-row
state: result rows come from one LanceDB take of the k rows per query.
"""
from __future__ import annotations

from typing import Any

import lance
import numpy as np
import pyarrow as pa
import ray

from qetvec._validation import check_positive_int

from qetvec_lancedb.cache import CodeCache
from qetvec_lancedb.distributed.shard import CodeShard
from qetvec_lancedb.scan import CodeScanner, best_per_query
from qetvec_lancedb.store import TableMeta
from qetvec_lancedb.table import QETTable, _Pinned


class ShardedTable(QETTable):
    """A QET-coded LanceDB table searched by `shards` Ray actors (see the module docstring).

    actor_options: Ray options of the actors (default num_cpus=1); each scans with as many
    threads as CPUs it is given. Needs `ray.init()` first (or starts a local Ray). `close()`
    ends the actors."""

    def __init__(self, db: Any, name: str, *, shards: int = 2, actor_options: dict[str, Any] | None = None):
        count = check_positive_int(shards, "shards")
        super().__init__(db, name)
        options = {"num_cpus": 1} | (actor_options or {})
        self._uri = f"{str(db.uri).rstrip('/')}/{name}.lance"
        self._shards = [ray.remote(CodeShard).options(**options).remote(
            self._uri, self._folder.storage_options, name, max(1, int(options["num_cpus"]))) for _ in range(count)]
        self._home: dict[int, int] = {}  # fragment id -> shard

    def close(self) -> None:
        """End the shards' actors."""
        for shard in self._shards:
            ray.kill(shard)
        self._shards = []

    def _load_codes(self, meta: TableMeta, schema: pa.Schema, previous: CodeCache | None) -> list:
        """Deal the pinned version's fragments to the shards and have each load its own."""
        dataset = lance.dataset(self._uri, version=self._reader.version, storage_options=self._folder.storage_options)
        rows = {f.fragment_id: f.count_rows() for f in dataset.get_fragments()}
        self._home = {i: s for i, s in self._home.items() if i in rows}
        load = np.zeros(len(self._shards), np.int64)
        np.add.at(load, list(self._home.values()), [rows[i] for i in self._home])
        for i in sorted(set(rows) - set(self._home), key=lambda i: -rows[i]):
            self._home[i] = int(np.argmin(load))
            load[self._home[i]] += rows[i]
        mine = [[i for i in rows if self._home[i] == s] for s in range(len(self._shards))]
        ray.get([shard.load.remote(dataset.version, ids) for shard, ids in zip(self._shards, mine)])
        return self._shards

    def _candidates(self, pinned: _Pinned, scanner: CodeScanner, queries: np.ndarray, where: str | None,
                    nprobe: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Each shard's top-k, merged per query (see the module docstring)."""
        batch = ray.put(queries)
        lists = ray.get([shard.topk.remote(batch, where, nprobe, k) for shard in pinned.cache])
        D, rowids = best_per_query(np.concatenate([d for _, d in lists], 1),
                                   np.concatenate([r for r, _ in lists], 1), k)
        return rowids, D

    def _result_rows(self, pinned: _Pinned, rowids: np.ndarray, columns: list[str]) -> pa.Table:
        """`columns` of rows `rowids` of the pinned version by one LanceDB take (no column cache)."""
        return self._take(rowids, columns, pinned.schema)
