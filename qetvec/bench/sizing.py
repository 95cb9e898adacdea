"""Settings that fit a code size: QET (`config_for_code_size`, exactly the bytes asked) and
FAISS baselines (`faiss_spec`, a `faiss.index_factory` string whose ``sa_code_size()`` is at
most the bytes asked), so that methods are compared at equal (or no more) bytes per row.

FAISS policy per method (d = dimension, B = bytes per row allowed):
    pq          "PQ{M}x{b}"        M | d, 4 <= b <= 12: the most code bits that fit in B bytes,
                                   then b nearest 8 (PQ10x8 at 10 B on d = 50, PQ10x6 at 8 B)
    opq         "OPQ{M},PQ{M}x{b}" same sizes as pq, learned rotation in front
    rq          "RQ{B}x8"          B additive stages of 8 bits, FAISS's default beam (5)
    rq-beam32   "RQ{B}x8"          the same with rq.max_beam_size = 32 (set after construction)
    lsq         "LSQ{B}x8"         B codebooks of 8 bits
    rabitq      "RaBitQ"           RaBitQ with nb_bits 1 (rabitq2..4: "RaBitQ2".."RaBitQ4"); its
                                   per-vector factors are inside sa_encode's bytes; one size per d
    sqtqmse1..4 "SQtqmse1".."4"    TurboQuant's MSE scalar quantizer, 1-4 bits per element;
                                   FAISS stores no norm: it assumes unit-norm input
    eden2..4    "EDEN2".."EDEN4"   EDEN, 2-4 bits per element plus its per-vector scale
    sq4, sq8    "SQ4", "SQ8"       per-dimension uniform scalar quantizer, 4 / 8 bits
A fixed-size code (every method but pq, opq, rq, rq-beam32, lsq) fits only budgets of at
least its size.
"""
from __future__ import annotations

from itertools import product

import faiss

from qetvec.tree import EntanglementTree

_SIZED = {"pq": None, "opq": None, "rq": "RQ{B}x8", "rq-beam32": "RQ{B}x8", "lsq": "LSQ{B}x8"}
_FIXED = {"rabitq": "RaBitQ", **{f"rabitq{b}": f"RaBitQ{b}" for b in (2, 3, 4)},
          **{f"sqtqmse{b}": f"SQtqmse{b}" for b in (1, 2, 3, 4)},
          **{f"eden{b}": f"EDEN{b}" for b in (2, 3, 4)}, "sq4": "SQ4", "sq8": "SQ8"}
FAISS_METHODS = (*_SIZED, *_FIXED)
DISTANCE_ONLY = ("rabitq", "rabitq2", "rabitq3", "rabitq4")
"""Codes whose sa_decode does not estimate the vector (RaBitQ estimates distances): their
reconstruction MSE is reported but means nothing; compare them on recall."""
BEAM32 = 32
PQ_NBITS = range(4, 13)


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


def pq_shape(d: int, max_bytes: int) -> tuple[int, int] | None:
    """(M, nbits): M | d, nbits in PQ_NBITS, the most code bits within max_bytes, then nbits
    nearest 8; None if nothing fits."""
    shapes = [(m, nbits) for m in range(1, d + 1) if d % m == 0 for nbits in PQ_NBITS
              if (m * nbits + 7) // 8 <= max_bytes]
    return max(shapes, key=lambda s: (s[0] * s[1], -abs(s[1] - 8)), default=None)


def faiss_spec(method: str, d: int, max_bytes: int) -> str:
    """The faiss.index_factory string of `method` whose sa_code_size() is at most max_bytes
    (see the module docstring), or ValueError saying why there is none."""
    if method in ("pq", "opq"):
        shape = pq_shape(d, max_bytes)
        if shape is None:
            raise ValueError(f"{method}: no PQ with M dividing d={d} fits in {max_bytes} bytes")
        m, nbits = shape
        pq = f"PQ{m}x{nbits}"
        return pq if method == "pq" else f"OPQ{m},{pq}"
    if method in _SIZED:
        return _SIZED[method].format(B=max_bytes)
    if method in _FIXED:
        size = faiss.index_factory(d, _FIXED[method]).sa_code_size()
        if size > max_bytes:
            raise ValueError(f"{method}: FAISS {_FIXED[method]} needs {size} bytes/row for d={d}, "
                             f"more than {max_bytes}")
        return _FIXED[method]
    raise ValueError(f"unknown method {method!r}; known: {', '.join(FAISS_METHODS)}")


def faiss_codec(method: str, d: int, max_bytes: int, metric: int = faiss.METRIC_L2) -> faiss.Index:
    """An untrained FAISS codec (train, sa_encode, sa_decode) of at most max_bytes per row."""
    index = faiss.index_factory(d, faiss_spec(method, d, max_bytes), metric)
    inner = faiss.downcast_index(index.index if isinstance(index, faiss.IndexPreTransform) else index)
    if isinstance(inner, faiss.IndexPQ):  # the factory turns on polysemous training: it holds a quarter
        inner.do_polysemous_training = False  # of the rows back to renumber codewords for Hamming filtering
    if method == "rq-beam32":
        inner.rq.max_beam_size = BEAM32
    if index.sa_code_size() > max_bytes:
        raise ValueError(f"{method}: FAISS built {index.sa_code_size()} bytes/row, more than {max_bytes}")
    return index
