"""Genuine FAISS indexes from qetvec indexes whose codec is product quantization.

QET with `levels=0`, one stage, is PQ: no swap bits, m groups of nbits-bit codes packed
LSB first, which is FAISS's `ProductQuantizer` code layout. `to_faiss` builds the FAISS
index holding qetvec's codebooks, coarse quantizer and codes byte for byte (no re-encoding:
codes go in through `IndexPQ.codes` / `InvertedLists.add_entries`), so every FAISS client
can `faiss.write_index` it, wrap it in `IndexIDMap2`, or search it with FAISS's own kernels.

    qetvec                               FAISS
    IndexQET (add: sequential ids)       IndexPQ
    IndexQET (add_with_ids: user ids)    IndexIDMap2(IndexPQ)
    IndexIVFQET                          IndexIVFPQ (same quantizer, by_residual, ids)

Anything else (levels >= 1, several stages, groups of unequal width) has no FAISS
counterpart: persist it with `qetvec.write_index` / `qetvec.read_index`.
"""
from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from qetvec.codec import QETQuantizer
from qetvec.index_flat import IndexQET
from qetvec.index_ivf import IndexIVFQET


def product_quantizer(qet: QETQuantizer) -> faiss.ProductQuantizer:
    """FAISS ProductQuantizer with qet's codebooks (M, ksub, dsub) float32; ValueError if
    qet is not plain PQ (levels 0, one stage, d divisible by m) or not trained."""
    if not qet.is_trained:
        raise ValueError("the QET codec is not trained")
    stage = qet.stages[0]
    if len(qet.stages) != 1 or stage.levels != 0 or qet.d % qet.m or stage.ksub != 2 ** stage.width:
        raise ValueError(f"{qet} is not plain product quantization (need levels=0, stages=1, m "
                         "dividing d): persist it with qetvec.write_index instead")
    pq = faiss.ProductQuantizer(qet.d, qet.m, stage.width)
    faiss.copy_array_to_vector(np.ascontiguousarray(stage.codebooks_, np.float32).ravel(), pq.centroids)
    if pq.code_size != qet.code_size:
        raise ValueError(f"code sizes differ: FAISS {pq.code_size}, qetvec {qet.code_size}")
    return pq


def to_faiss(index: Any) -> faiss.Index:
    """The FAISS index (IndexPQ, IndexIDMap2(IndexPQ) or IndexIVFPQ) holding the same
    codebooks, coarse centroids, codes and ids as the qetvec `index`; see the module table."""
    if isinstance(index, IndexQET):
        return _flat(index)
    if isinstance(index, IndexIVFQET):
        return _ivf(index)
    raise TypeError(f"to_faiss takes IndexQET or IndexIVFQET, got {type(index).__name__} "
                    "(IndexRefineFlat: export its .base and wrap it in faiss.IndexRefineFlat)")


def _flat(index: IndexQET) -> faiss.Index:
    out = faiss.IndexPQ(index.d, index.qet.m, index.qet.stages[0].width, index.metric_type)
    out.pq = product_quantizer(index.qet)
    out.is_trained = True
    wrapped = faiss.IndexIDMap2(out) if index.user_ids else None  # wraps only empty indexes
    rows = index.lists.live_rows()
    faiss.copy_array_to_vector(np.ascontiguousarray(index.lists.codes[rows]).ravel(), out.codes)
    out.ntotal = len(rows)
    if wrapped is None:
        return out
    faiss.copy_array_to_vector(index.lists.ids[rows], wrapped.id_map)
    wrapped.ntotal = len(rows)
    wrapped.construct_rev_map()
    return wrapped


def _ivf(index: IndexIVFQET) -> faiss.IndexIVFPQ:
    pq = product_quantizer(index.qet)
    quantizer = faiss.clone_index(index.quantizer)
    out = faiss.IndexIVFPQ(quantizer, index.d, index.nlist, index.qet.m, index.qet.stages[0].width,
                           index.metric_type)  # the Python wrapper keeps `quantizer` alive
    out.pq = pq
    out.by_residual = index.by_residual
    out.is_trained = True
    out.precompute_table()
    lists, width = index.lists, index.qet.code_size
    for l in np.flatnonzero(lists.size):
        s, n = int(lists.start[l]), int(lists.size[l])
        codes = np.ascontiguousarray(lists.codes[s:s + n, :width])
        ids = np.ascontiguousarray(lists.ids[s:s + n])
        out.invlists.add_entries(int(l), n, faiss.swig_ptr(ids), faiss.swig_ptr(codes))
    out.ntotal = index.ntotal
    out.nprobe = index.nprobe
    return out
