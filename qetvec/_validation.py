"""Input checks shared by every public entry point.

One helper per kind of argument, each raising an error that names the argument and what
was expected, so that users see the problem where they made it, not deep in a kernel.
"""
from __future__ import annotations

import numpy as np


FLOAT32_MAX = float(np.finfo(np.float32).max)
FLOAT32_TINY = float(np.finfo(np.float32).tiny)  # smallest normal float32, 1.2e-38
INT64_MAX = int(np.iinfo(np.int64).max)
SEED_MAX = 2 ** 31 - 1  # FAISS's k-means takes a C int
SMALL_INPUT = 4096  # entries checked by one dot product (single-threaded in BLAS at this size)


def as_float_matrix(x: object, name: str = "x", d: int | None = None,
                    allow_empty: bool = False, check_norms: bool = True) -> np.ndarray:
    """Return `x` as a C-contiguous float32 array of shape (n, d).

    Accepts any real floating or integer array-like (converted, as FAISS users expect from
    the Python API); refuses complex, object, bool and string data, the wrong number of
    dimensions or columns, NaN/inf, rows whose squared norm overflows float32 (k-means and
    distances square them: FAISS aborts the process on such input; `check_norms=False` for
    callers that rescale the rows first) and (unless `allow_empty`) zero rows.
    """
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, d), got shape {arr.shape}")
    if d is not None and arr.shape[1] != d:
        raise ValueError(f"{name} has {arr.shape[1]} columns, expected d={d}")
    if arr.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} is empty (0 rows)")
    if arr.dtype == np.float32 and arr.flags.c_contiguous and 0 < arr.size <= SMALL_INPUT:
        # a query or a few rows: one dot product (float64: it cannot overflow) is finite and
        # small only if every entry is finite and no row's squared norm is near the limit
        flat = arr.reshape(-1).astype(np.float64)
        if float(np.dot(flat, flat)) < FLOAT32_MAX / 2:
            return arr
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    largest = float(np.abs(arr).max()) if arr.size else 0.0  # NaN if any is NaN
    if not np.isfinite(largest):
        bad = int(np.argmax(~np.isfinite(arr).all(axis=1)))
        raise ValueError(f"{name} contains NaN or inf (first in row {bad})")
    if check_norms and largest * largest * arr.shape[1] >= FLOAT32_MAX:  # cheap bound first, exact check if needed
        norms = (arr.astype(np.float64) ** 2).sum(axis=1)
        if norms.max() >= FLOAT32_MAX:
            bad = int(np.argmax(norms >= FLOAT32_MAX))
            raise ValueError(f"{name} row {bad} has a squared norm of {norms[bad]:.3g}, beyond float32 "
                             f"({FLOAT32_MAX:.3g}): rescale the data")
    return arr


def check_training_scale(x: np.ndarray, name: str = "x") -> None:
    """Refuse training rows x (n, d) float32 so small that every squared norm (at most
    d * max|x|^2), and so every squared distance k-means and ADC compute in float32, falls
    below float32's smallest normal number (1.2e-38): there they lose their precision (codes
    degrade silently from about 1e-21 on, near random at 1e-23). All-zero data passes."""
    if not x.size:
        return
    largest = max(float(x.max()), -float(x.min()))  # no temporary copy of x
    bound = largest * largest * x.shape[1]
    if 0 < bound < FLOAT32_TINY:
        raise ValueError(f"{name}: squared row norms are at most {bound:.3g}, below float32's "
                         f"smallest normal number ({FLOAT32_TINY:.3g}), so squared distances "
                         "underflow: rescale the data (e.g. multiply it by a power of two)")


def as_codes(codes: object, code_size: int, name: str = "codes") -> np.ndarray:
    """Return `codes` as a C-contiguous uint8 array of shape (n, code_size)."""
    arr = np.asarray(codes)
    if arr.dtype != np.uint8:
        raise TypeError(f"{name} must be uint8, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != code_size:
        raise ValueError(f"{name} must have shape (n, {code_size}), got {arr.shape}")
    return np.ascontiguousarray(arr)


def as_ids(ids: object, n: int, name: str = "ids") -> np.ndarray:
    """Return new ids as a contiguous int64 vector of length n: integers (no floats, no
    bools) in [0, 2**63 - 1] (-1 is FAISS's "no result"; uint64 ids >= 2**63 would wrap
    negative), distinct within the call. Clashes with stored ids are the index's check."""
    arr = np.asarray(ids)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integers, got dtype {arr.dtype}")
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    if arr.dtype.kind == "u" and n and arr.max() > INT64_MAX:
        raise ValueError(f"{name} must be < 2**63, got {arr.max()}")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if n and arr.min() < 0:
        raise ValueError(f"{name} must be >= 0 (-1 marks missing results), got {arr.min()}")
    if n > 1:
        uniq, counts = np.unique(arr, return_counts=True)
        if len(uniq) != n:
            raise ValueError(f"{name} must be distinct, got {uniq[counts > 1][0]} "
                             f"{counts.max()} times")
    return arr


def as_id_array(ids: object, name: str = "ids") -> np.ndarray:
    """Ids to look up or remove, as int64 (n,): any 1-D integer array-like (an empty list
    too); refuses floats (1.7 is not an id), bools and uint64 values >= 2**63."""
    arr = np.asarray(ids)
    if arr.size == 0 and arr.ndim == 1:
        return np.empty(0, np.int64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integers, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind == "u" and arr.max() > INT64_MAX:
        raise ValueError(f"{name} must be < 2**63, got {arr.max()}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def offset_ids(ids: np.ndarray, add_id: object) -> np.ndarray:
    """ids (n,) int64 + add_id (`merge_from`'s shift), refusing sums past 2**63 - 1 (they
    would wrap negative)."""
    add_id = check_id(add_id, "add_id")
    if len(ids) and int(ids.max()) > INT64_MAX - add_id:
        raise ValueError(f"add_id={add_id} would shift id {int(ids.max())} past 2**63 - 1")
    return ids + add_id


def check_id(key: object, name: str = "key") -> int:
    """One id as int: an integer (Python or numpy, not bool) in [0, 2**63 - 1]."""
    return check_positive_int(key, name, low=0, high=INT64_MAX)


def check_seed(seed: object, name: str = "seed") -> int:
    """A random seed as int in [0, 2**31 - 1] (numpy's generators and FAISS's k-means)."""
    return check_positive_int(seed, name, low=0, high=SEED_MAX)


def check_bool(value: object, name: str) -> bool:
    """`value` as bool: True / False (Python or numpy), nothing else (not 0, 1 or "no")."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_positive_int(value: object, name: str, low: int = 1, high: int | None = None) -> int:
    """Return `value` as int, or raise if it is not an integer in [low, high]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def per_stage(value: object, stages: int, name: str) -> list[int]:
    """Broadcast an int, or check a sequence of ints, to one value per stage."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return [int(value)] * stages
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be an integer or one integer per stage, got {value!r}")
    values = [check_positive_int(v, name, low=0) for v in value]
    if len(values) != stages:
        raise ValueError(f"{name} has {len(values)} entries, expected one per stage ({stages})")
    return values


def check_stages(stages: list, d: int, m: int | None = None, ksub_power_of_two: bool = False) -> None:
    """Loaded stage stack (`qetvec.stage.QETStage` list) agrees with its configuration:
    every stage of dimension d (and m groups), all trained or none, codebooks float32
    (m, ksub, dsub_max) and finite, quantized codebook levels uint16 of that shape below
    2**codebook_bits. ValueError naming the stage and field otherwise."""
    if not stages:
        raise ValueError("stages: at least one stage expected")
    trained = {stage.codebooks_ is not None for stage in stages}
    if len(trained) > 1:
        raise ValueError("stages: some stages are trained and others not")
    for s, stage in enumerate(stages):
        if stage.d != d or (m is not None and stage.m != m):
            raise ValueError(f"stage{s}: d={stage.d}, m={stage.m}, expected d={d}, m={m}")
        if ksub_power_of_two and (stage.ksubs != 2 ** stage.widths).any():
            raise ValueError(f"stage{s}: ksub={stage.ksubs.tolist()} is not a power of two")
        if stage.codebooks_ is None:
            continue
        shape = (stage.m, int(stage.ksubs.max()), stage.dsub_max)
        books = stage.codebooks_
        if books.dtype != np.float32 or books.shape != shape or not np.isfinite(books).all():
            raise ValueError(f"stage{s}.codebooks must be finite float32 {shape}, got {books.dtype} {books.shape}")
        if stage.codebook_bits is not None:
            levels = stage.codebook_levels_
            if levels.dtype != np.uint16 or levels.shape != shape or levels.max(initial=0) >= 2 ** stage.codebook_bits:
                raise ValueError(f"stage{s}.codebook_levels must be uint16 {shape} below "
                                 f"2**{stage.codebook_bits}, got {levels.dtype} {levels.shape}")
