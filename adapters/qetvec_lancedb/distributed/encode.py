"""`encode_dataset`: QET codes for every row of a Lance dataset, encoded by Ray tasks, one commit.

The dataset (a LanceDB table's `<db>/<table>.lance`, or any Lance URI, local or on an object
store) keeps its rows and gains the code columns `create_table` / `convert_table` store
(`_qet_code`, and `_qet_part` / `_qet_norm` where the codec has them), so
`qetvec_lancedb.open_table` searches it like a table built by them.

1. Driver: pin the latest version V; read the training sample (`training.sample_positions`:
   the rows `convert_table` trains on, so the same codec for the same table and seed); train
   the codec (IVF centroids first); write it beside the data (`Folder.beside`: the
   `<table>.qetvec` folder `qetvec_lancedb` reads).
2. Ray, one task per fragment (at most `concurrency` at once): Lance's
   `LanceFragment.merge_columns` reads the fragment's vectors in batches, encodes them and
   writes the code columns as new data files of the fragment; nothing is visible yet. A task
   returns the fragment's new metadata (a few hundred bytes).
3. Driver: one Lance `Merge` commit with read version V: every fragment with its code
   files, and the schema with the code columns and the adapter's schema metadata (carried
   by the columns' Arrow schema). Readers see the version before or the coded one, never a
   mix.

Why fragment-level `merge_columns` and our own commit rather than lance-ray's `add_columns`
(which runs the same `merge_columns` per fragment in a Ray pool): Lance refuses a `Merge`
whose read version is not the latest, even after a plain append, and lance-ray then fails
the whole job. Here the driver rebases instead: it reads the latest version, keeps the code
files of every fragment it coded whose data files are unchanged (taking that fragment's
latest deletion file), encodes the fragments it has not coded (appended, or rewritten by a
compaction or update) in another Ray round, and commits again, at most `max_attempts`
times; the last attempt encodes nothing, so rows appended since the round before have null
codes: `QETTable` scores them exactly from their vectors until the next `add` /
`encode_pending` encodes them. No acknowledged row is lost.

Failures: Ray retries a task whose worker died (`max_retries`); the dead attempt's files are
referenced by no version. If a fragment fails for good, or every commit is refused, nothing
is committed and the codec file written in step 1 is removed. Files no version references
are deleted by Lance's `cleanup_old_versions`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any, Callable

import lance
import pyarrow as pa
import ray
from lance.commit import CommitConflictError
from lance.fragment import FragmentMetadata
from tqdm.auto import tqdm

from qetvec._validation import check_positive_int
from qetvec.codec import Codec
from qetvec.evaluation import threads

from qetvec_lancedb.codec import TableCodec
from qetvec_lancedb.columns import check_user_columns, code_arrays, vector_matrix
from qetvec_lancedb.folder import Folder
from qetvec_lancedb.store import discard_codec, save_codec
from qetvec_lancedb.training import check_training_options, sample_positions, train_codec


@dataclass(frozen=True)
class EncodeResult:
    """What `encode_dataset` committed: the coded `version`, its rows, how many of them were
    left with null codes (appended during the last commit attempt), the commit attempts, and
    wall seconds of training (sample read included), encoding (Ray rounds) and committing."""

    version: int
    rows: int
    pending_rows: int
    attempts: int
    train_seconds: float
    encode_seconds: float
    commit_seconds: float


@dataclass(frozen=True)
class _Coded:
    """A fragment as one Ray task encoded it: the data file paths it had, its metadata with
    the code files added, and the merged schema (`lance.schema.LanceSchema`) they were
    written for."""

    data_files: tuple[str, ...]
    metadata: FragmentMetadata
    schema: Any

    def onto(self, latest: FragmentMetadata) -> FragmentMetadata | None:
        """The latest metadata of this fragment plus its code files (latest deletions kept),
        or None if its data files changed since (rewritten: encode it again)."""
        if tuple(f.path for f in latest.files) != self.data_files:
            return None
        code_files = [f for f in self.metadata.files if f.path not in self.data_files]
        return replace(latest, files=list(latest.files) + code_files)


def encode_dataset(uri: str, *, vector_column: str = "vector", codec: Codec | None = None,
                   m: int | None = None, nbits: int = 8, levels: int = 1, stages: int = 1,
                   metric: str = "l2", nlist: int | None = None, bytes_per_row: int | None = None,
                   train_rows: int = 100_000, seed: int = 0, storage_options: dict[str, str] | None = None, concurrency: int | None = None,
                   batch_size: int = 65536, max_retries: int = 3, max_attempts: int = 5,
                   ray_remote_args: dict[str, Any] | None = None,
                   progress: bool | None = None) -> EncodeResult:
    """Add QET code columns to every row of the Lance dataset at `uri`, encoded on Ray.

    Codec options as `qetvec_lancedb.convert_table` (`codec`, or `m`, `nbits`, `levels`,
    `stages`, or `bytes_per_row`; `metric`; `nlist` for IVF; trained on `train_rows` rows
    drawn with `seed`).
    storage_options: Lance's object-store options (also used for the codec file).
    concurrency: fragments encoded at once (default: all; Ray queues them on its CPUs).
    batch_size: rows per encoded batch inside a fragment. max_retries: Ray retries of a
    fragment whose worker died. max_attempts: commits tried over concurrent writers.
    ray_remote_args: Ray options of the tasks (default num_cpus=1; each task runs its
    encoder on as many threads as CPUs it is given). Needs `ray.init()` first (or connects
    to / starts a local Ray as `ray.get` does). Returns the `EncodeResult`; the codes are
    visible in `result.version` and later versions."""
    nlist, train_rows, seed = check_training_options(nlist, train_rows, seed)
    max_attempts = check_positive_int(max_attempts, "max_attempts")
    concurrency = None if concurrency is None else check_positive_int(concurrency, "concurrency")
    started = time.perf_counter()
    dataset = lance.dataset(uri, storage_options=storage_options)
    base_schema = _check_plain(dataset, vector_column)
    sample = dataset.take(sample_positions(dataset.count_rows(), train_rows, seed).tolist(), columns=[vector_column])
    x = vector_matrix(sample, vector_column, None, f"dataset {uri!r}")
    table_codec = train_codec(x, uri, vector_column, codec, m, nbits, levels, stages, metric, nlist, seed,
                              bytes_per_row)
    folder = Folder.beside(uri, storage_options)
    meta, created = save_codec(folder, table_codec, vector_column, keep_vectors=True)
    train_seconds = time.perf_counter() - started
    options = {"num_cpus": 1} | (ray_remote_args or {})
    task = _encode_fragment_task.options(max_retries=max_retries, **options)
    job = _Job(uri, storage_options, vector_column, ray.put(table_codec), meta.to_schema_metadata(), batch_size,
               max(1, int(options["num_cpus"])), task, concurrency, progress)
    try:
        return job.run(dataset, base_schema, max_attempts, train_seconds)
    except BaseException:
        discard_codec(folder, created)
        raise


def _check_plain(dataset: lance.LanceDataset, vector_column: str) -> pa.Schema:
    """The dataset's Arrow schema without metadata, after checking it has no QET codes yet,
    no reserved column names, and a vector column."""
    schema = dataset.schema
    if schema.metadata and b"qetvec.quantizer" in schema.metadata:
        raise ValueError(f"dataset {dataset.uri!r} already has QET codes: search it with qetvec_lancedb.open_table")
    check_user_columns(schema.names, f"dataset {dataset.uri!r}")
    vector_matrix(schema.empty_table(), vector_column, None, f"dataset {dataset.uri!r}")  # type check
    return schema.remove_metadata()


@dataclass
class _Job:
    """The Ray rounds and commits of one `encode_dataset` call (after training)."""

    uri: str
    storage_options: dict[str, str] | None
    vector_column: str
    codec: Any  # ray.ObjectRef of the TableCodec
    schema_metadata: dict[str, str]
    batch_size: int
    threads: int  # encoder threads per task: its CPUs
    task: Any  # the Ray remote function, with its options
    concurrency: int | None
    progress: bool | None

    def run(self, dataset: lance.LanceDataset, base_schema: pa.Schema, max_attempts: int,
            train_seconds: float) -> EncodeResult:
        coded: dict[int, _Coded] = {}
        encode_seconds = commit_seconds = 0.0
        for attempt in range(1, max_attempts + 1):
            if attempt > 1:
                dataset = lance.dataset(self.uri, storage_options=self.storage_options)
                if _check_plain(dataset, self.vector_column) != base_schema:
                    raise RuntimeError(f"dataset {self.uri!r} changed schema while it was being encoded; "
                                       "nothing was committed: encode it again")
            fragments = {f.fragment_id: f.metadata for f in dataset.get_fragments()}
            todo = [i for i, f in fragments.items() if i not in coded or coded[i].onto(f) is None]
            if todo and (attempt == 1 or attempt < max_attempts):  # a last retry only rebases
                t0 = time.perf_counter()
                coded.update(self._encode(dataset.version, todo))
                encode_seconds += time.perf_counter() - t0
            merged = [coded[i].onto(f) if i in coded else None for i, f in fragments.items()]
            t0 = time.perf_counter()
            try:
                committed = _commit(self.uri, [m if m is not None else f for m, f in zip(merged, fragments.values())],
                                    next(iter(coded.values())).schema, dataset.version, self.storage_options)
            except CommitConflictError:
                commit_seconds += time.perf_counter() - t0
                continue
            commit_seconds += time.perf_counter() - t0
            pending = sum(f.physical_rows - _deleted(f) for m, f in zip(merged, fragments.values()) if m is None)
            return EncodeResult(committed.version, committed.count_rows(), pending, attempt,
                                train_seconds, encode_seconds, commit_seconds)
        raise RuntimeError(f"dataset {self.uri!r}: other writers committed during each of {max_attempts} "
                           "commit attempts; nothing was committed: encode it again when writes pause")

    def _encode(self, version: int, fragment_ids: list[int]) -> dict[int, _Coded]:
        """Encode the fragments of `version` on Ray, at most `concurrency` at once."""
        def submit(fragment_id: int) -> Any:
            return self.task.remote(self.uri, version, fragment_id, self.codec, self.vector_column,
                                    self.schema_metadata, self.storage_options, self.batch_size, self.threads)

        show = len(fragment_ids) > 1 if self.progress is None else self.progress
        with tqdm(total=len(fragment_ids), desc="qetvec encode", unit="fragment", disable=not show) as bar:
            results = _bounded(submit, fragment_ids, self.concurrency or len(fragment_ids), bar.update)
        return dict(zip(fragment_ids, results))


def _bounded(submit: Callable[[Any], Any], items: list, limit: int, done: Callable[[int], Any]) -> list:
    """ray.get of submit(item) for every item, in item order, with at most `limit` tasks in
    flight; a failure cancels the tasks still running and is raised."""
    refs: dict[Any, int] = {}
    results: list = [None] * len(items)
    queue = iter(enumerate(items))

    def fill(count: int) -> None:
        for i, item in islice(queue, count):
            refs[submit(item)] = i

    fill(limit)
    try:
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            results[refs.pop(ready[0])] = ray.get(ready[0])
            done(1)
            fill(1)
    except BaseException:
        for ref in refs:
            ray.cancel(ref, force=True)
        raise
    return results


def _commit(uri: str, fragments: list[FragmentMetadata], schema: Any, read_version: int,
            storage_options: dict[str, str] | None) -> lance.LanceDataset:
    """One Lance `Merge` commit of `fragments` (all of the dataset's) under `schema`;
    CommitConflictError if `read_version` is no longer the latest."""
    return lance.LanceDataset.commit(uri, lance.LanceOperation.Merge(fragments, schema),
                                     read_version=read_version, storage_options=storage_options)


def _deleted(fragment: FragmentMetadata) -> int:
    return fragment.deletion_file.num_deleted_rows if fragment.deletion_file is not None else 0


def _encode_fragment(uri: str, version: int, fragment_id: int, codec: TableCodec, vector_column: str,
                     schema_metadata: dict[str, str], storage_options: dict[str, str] | None,
                     batch_size: int, cpus: int) -> _Coded:
    """Ray task: write the code columns of fragment `fragment_id` of `version` as new data
    files of that fragment (Lance's `merge_columns`), encoding on `cpus` threads; its
    metadata and merged schema."""
    fragment = lance.dataset(uri, version=version, storage_options=storage_options).get_fragment(fragment_id)
    source = f"fragment {fragment_id} of {uri!r}"
    with threads(cpus):
        metadata, schema = fragment.merge_columns(
            lambda batch: _encode_batch(batch, codec, vector_column, schema_metadata, source),
            columns=[vector_column], batch_size=batch_size)
    return _Coded(tuple(f.path for f in fragment.metadata.files), metadata, schema)


def _encode_batch(batch: pa.RecordBatch, codec: TableCodec, vector_column: str,
                  schema_metadata: dict[str, str], source: str) -> pa.RecordBatch:
    """The code columns of a batch of rows (vector column only), with the adapter's schema
    metadata on their schema (the commit's schema takes it from there)."""
    x = vector_matrix(pa.Table.from_batches([batch]), vector_column, codec.d, source)
    arrays = code_arrays(codec, codec.encode(x))
    return pa.RecordBatch.from_arrays(list(arrays.values()), names=list(arrays), metadata=schema_metadata)


_encode_fragment_task = ray.remote(_encode_fragment)
