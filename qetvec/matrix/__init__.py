"""Matrix mode (the paper's QEM setting): compress one matrix under one whole-matrix byte budget.

    compress_matrix(x, budget_bytes)                  # method="auto": the best of every option
    compress_matrix(x, budget_bytes, m=16)            # QET at the reference's defaults, as before
    compress_matrix(x, budget_bytes, method="ectcq")  # one coder, its best transform

Methods (`search.METHODS`): "qet" and "qet-no-tree" (`qet`), and transform coding
(`transform_coded`: none / random / randomized Hadamard / PCA-as-Householder transforms) with
the coefficient coders "ecsq" and "ectcq" (entropy-coded scalar / trellis, `entropy_coded`)
and "lloyd-max" and "tcq" (fixed-rate, `fixed_rate`).

Every result has `nbytes` (exactly what `qetvec.write_index` writes as arrays, never over the
budget), `decode()` and `decode(start, stop)` (a row range, equal to slicing the full
decode), and, from a search, `report`: every candidate's method, bytes and relative MSE, best
first. `file_overhead_bytes(result)` bounds what the file adds (header and checksum).
"""
from __future__ import annotations

from typing import Sequence

from qetvec._validation import as_float_matrix, check_positive_int, check_seed
from qetvec.matrix import qet, transform_coded
from qetvec.matrix.qet import CompressedMatrix, compress_qet, default_groups, plan_ksubs
from qetvec.matrix.search import METHODS, search
from qetvec.matrix.transform_coded import TransformCodedMatrix

__all__ = ["CompressedMatrix", "TransformCodedMatrix", "compress_matrix", "default_groups",
           "file_overhead_bytes", "plan_ksubs", "METHODS"]


def compress_matrix(x, budget_bytes: int, m: int | None = None,
                    levels: Sequence[int] = (3, 0), budget_split: Sequence[float] = (0.7, 0.3),
                    codebook_bits: int | None = 10, seed: int = 0, niter: int = 25, *,
                    method: str | None = None, block_rows: int = 256):
    """Compress x (n, d) into at most `budget_bytes` bytes, everything included.

    method: one of METHODS; by default "qet" when `m` is given (today's QET call, with
    `levels`, `budget_split`, `codebook_bits`, `niter` as before) and "auto" otherwise.
    "auto" searches every method (QET's `m`, if given, fixes its groups) and returns the best,
    its `report` listing every candidate. block_rows: rows per independently decodable block
    of the entropy coders. Raises ValueError if the budget holds no candidate."""
    x = as_float_matrix(x, "x", check_norms=False)  # every method rescales: any finite float32 is fine
    budget_bytes = check_positive_int(budget_bytes, "budget_bytes")
    method = ("qet" if m is not None else "auto") if method is None else method
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "qet":
        m = default_groups(x.shape[1]) if m is None else m
        return compress_qet(x, budget_bytes, m, levels, budget_split, codebook_bits, seed, niter)
    if _differs(levels, (3, 0)) or _differs(budget_split, (0.7, 0.3)) or codebook_bits != 10:
        raise ValueError(f"levels / budget_split / codebook_bits set QET's settings; method={method!r} "
                         "searches its own")
    check_positive_int(block_rows, "block_rows")
    check_positive_int(niter, "niter")
    seed = check_seed(seed)
    methods = METHODS[1:] if method == "auto" else (method,)
    result, report = search(x, budget_bytes, methods, m=m, seed=seed, niter=niter, block_rows=block_rows)
    result.report = report
    return result


def _differs(value: object, default: tuple) -> bool:
    try:
        return tuple(value) != default
    except TypeError:
        return True


def file_overhead_bytes(result) -> int:
    """Upper bound of what `write_index` adds to `result.nbytes` (header and checksum), for a
    compressed matrix (or, as before, for a QET matrix of `result` stages)."""
    if isinstance(result, int):
        return qet.file_overhead_bytes(result)
    if isinstance(result, CompressedMatrix):
        return qet.file_overhead_bytes(len(result.stages))
    return transform_coded.FILE_OVERHEAD_BYTES
