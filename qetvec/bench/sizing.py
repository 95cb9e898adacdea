"""Settings that hit an exact code size: QET (`config_for_code_size`) and FAISS baselines
(`faiss_spec`, a `faiss.index_factory` string), so methods are compared at equal bytes/row.

FAISS policy per method (d = dimension, B = bytes per row):
    pq     "PQ{M}x{b}"          M sub-quantizers of b bits, M divides d, M * b = 8B; b = 8 preferred
    opq    "OPQ{M},PQ{M}x{b}"   same sizes as pq, learned rotation in front
    rq     "RQ{B}x8"            B additive stages of 8 bits, beam search (FAISS default)
    lsq    "LSQ{B}x8"           B codebooks of 8 bits
    rabitq "RaBitQ"             1 bit per dimension plus FAISS's per-vector factors: one size per d
"""
from __future__ import annotations

from itertools import product

import faiss

from qetvec.tree import EntanglementTree

FAISS_METHODS = ("pq", "opq", "rq", "lsq", "rabitq")


def config_for_code_size(d: int, code_size: int, levels: int, stages: int = 1,
                         max_nbits: int = 10) -> dict:
    """QETQuantizer settings {m, nbits, levels, stages} (lists per stage; the tree only in the
    first stage, as the reference implementation does) whose code is exactly
    `code_size` bytes: nbits in [4, max_nbits], the most whole bytes spent on group codes,
    then nbits nearest 8 (well-trained 256-codeword books), then the most bits, then fewer
    groups. ValueError if no setting fits."""
    swap_bits = EntanglementTree(d, levels).n_bits
    best, best_key = None, None
    for m in range(1, d + 1):
        for nbits in product(range(4, max_nbits + 1), repeat=stages):
            bits = swap_bits + m * sum(nbits)
            if (bits + 7) // 8 != code_size:
                continue
            key = (bits // 8, -sum(abs(b - 8) for b in nbits), bits, -m)
            if best_key is None or key > best_key:
                best, best_key = {"m": m, "nbits": list(nbits), "stages": stages,
                                  "levels": [levels] + [0] * (stages - 1)}, key
    if best is None:
        raise ValueError(f"no QET setting with levels={levels}, stages={stages} has a {code_size}-byte code "
                         f"for d={d} ({swap_bits} swap bits)")
    return best


def pq_shape(d: int, code_bytes: int) -> tuple[int, int] | None:
    """(M, nbits) with M | d and M * nbits = 8 * code_bytes, 8-bit codes preferred, else None."""
    for nbits in (8, 4, 6, 10, 12, 5, 7, 9, 11, 16):
        m, rest = divmod(8 * code_bytes, nbits)
        if rest == 0 and m > 0 and d % m == 0:
            return m, nbits
    return None


def faiss_spec(method: str, d: int, code_bytes: int) -> str:
    """The faiss.index_factory string whose sa_code_size() is code_bytes, or ValueError."""
    if method in ("pq", "opq"):
        shape = pq_shape(d, code_bytes)
        if shape is None:
            raise ValueError(f"{method}: no M dividing d={d} with M * nbits = {8 * code_bytes}")
        m, nbits = shape
        pq = f"PQ{m}x{nbits}"
        return pq if method == "pq" else f"OPQ{m},{pq}"
    if method in ("rq", "lsq"):
        return f"{method.upper()}{code_bytes}x8"
    if method == "rabitq":
        size = faiss.index_factory(d, "RaBitQ").sa_code_size()
        if size != code_bytes:
            raise ValueError(f"rabitq: FAISS RaBitQ uses {size} bytes/row for d={d}, not {code_bytes}")
        return "RaBitQ"
    raise ValueError(f"unknown method {method!r}; known: {', '.join(FAISS_METHODS)}")


def faiss_codec(method: str, d: int, code_bytes: int, metric: int = faiss.METRIC_L2) -> faiss.Index:
    """An untrained FAISS codec (train, sa_encode, sa_decode) of exactly code_bytes per row."""
    index = faiss.index_factory(d, faiss_spec(method, d, code_bytes), metric)
    if index.sa_code_size() != code_bytes:
        raise ValueError(f"{method}: FAISS built {index.sa_code_size()} bytes/row, asked {code_bytes}")
    return index
