"""Deterministic disjoint row splits (train / database / held-out queries)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def split_indices(n: int, sizes: Sequence[int | None], seed: int = 0) -> tuple[np.ndarray, ...]:
    """Disjoint random subsets of ``range(n)`` with the given sizes.

    Parameters
    ----------
    n : number of rows to draw from.
    sizes : size of each part; at most one entry may be ``None``, meaning "all rows not
        in another part".
    seed : seed of the ``np.random.default_rng`` permutation; same arguments, same parts.

    Returns
    -------
    One sorted int64 index array per part, in the order of `sizes`.
    """
    sizes = list(sizes)
    if sizes.count(None) > 1:
        raise ValueError("at most one size may be None")
    fixed = sum(s for s in sizes if s is not None)
    if any(s is not None and s < 0 for s in sizes) or fixed > n:
        raise ValueError(f"sizes {sizes} do not fit in {n} rows")
    sizes = [n - fixed if s is None else s for s in sizes]
    perm = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum([0, *sizes])
    return tuple(np.sort(perm[a:b]) for a, b in zip(bounds[:-1], bounds[1:]))


def split(x: np.ndarray, sizes: Sequence[int | None], seed: int = 0) -> tuple[np.ndarray, ...]:
    """Disjoint random row subsets of `x`, each C-contiguous, rows in their original order.

    ``base, queries = split(x, (None, 1000))`` holds out 1,000 query rows and keeps the
    other ``len(x) - 1000`` as the database; ``train, test = split(x, (100_000, 100_000))``
    gives 100k training rows and 100k other rows to evaluate on. See `split_indices`.
    """
    return tuple(np.ascontiguousarray(x[idx]) for idx in split_indices(len(x), sizes, seed))
