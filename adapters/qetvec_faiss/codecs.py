"""FAISS baseline codecs at a requested code size, built with `faiss.index_factory` and used
through `sa_encode` / `sa_decode`, so that baselines and QET are compared at equal bytes/row.

Policy per method (d = dimension, B = bytes per row):
    pq     "PQ{M}x{b}"          M sub-quantizers of b bits, M divides d, M * b = 8B; b = 8 preferred
    opq    "OPQ{M},PQ{M}x{b}"   same sizes as pq, learned rotation in front
    rq     "RQ{M}x8"            M = B additive stages of 8 bits (RQ1x8 .. ), beam search (FAISS default)
    lsq    "LSQ{M}x8"           M = B codebooks of 8 bits
    rabitq "RaBitQ"             1 bit per dimension plus FAISS's per-vector factors: one size per d
"""
from __future__ import annotations

import faiss

METHODS = ("pq", "opq", "rq", "lsq", "rabitq")


def _pq_shape(d: int, code_bytes: int) -> tuple[int, int] | None:
    """(M, nbits) with M | d and M * nbits = 8 * code_bytes, 8-bit codes preferred."""
    for nbits in (8, 4, 6, 10, 12, 5, 7, 9, 11, 16):
        m, rest = divmod(8 * code_bytes, nbits)
        if rest == 0 and m > 0 and d % m == 0:
            return m, nbits
    return None


def factory_string(method: str, d: int, code_bytes: int) -> str:
    """The faiss.index_factory string whose sa_code_size() is code_bytes, or ValueError."""
    if method in ("pq", "opq"):
        shape = _pq_shape(d, code_bytes)
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
    raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")


def faiss_codec(method: str, d: int, code_bytes: int, metric: int = faiss.METRIC_L2) -> faiss.Index:
    """An untrained FAISS codec (train, sa_encode, sa_decode) of exactly code_bytes per row."""
    index = faiss.index_factory(d, factory_string(method, d, code_bytes), metric)
    if index.sa_code_size() != code_bytes:
        raise ValueError(f"{method}: FAISS built {index.sa_code_size()} bytes/row, asked {code_bytes}")
    return index
