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

A codec with a rotation in front of its groups (`transform="pca"` or `"random"`, equal groups
of one bit width: OPQ-like PQ, or TurboQuant-like scalars with width-1 groups) exports as
`IndexPreTransform(LinearTransform(R), <the index above>)`: FAISS rotates each query by the
codec's R and scores it against the same codes. Under IVF the coarse quantizer becomes an
IndexFlat of the rotated centroids R c (R is orthogonal: same assignments, and R(x - c) is the
residual the codes hold); a non-flat coarse quantizer is refused there.

`to_faiss_fast_scan` is qetvec's fast path for 4-bit codes at levels 0: the same export as
`IndexPQFastScan` / `IndexIVFPQFastScan` (FAISS's fast-scan layout: codes regrouped in
blocks of `bbs` rows, lookup tables quantized to uint8 and read with SIMD shuffles), searched
by FAISS's own kernels with qetvec's codebooks. At levels >= 1 a unit's table has
(swap patterns x 16) entries, more than one 16-entry shuffle register holds, so there is no
fast-scan counterpart; those indexes use qetvec's scan.

`from_faiss` goes back: a FAISS IndexPQ / IndexIDMap2(IndexPQ) / IndexIVFPQ (8-bit or
other nbits, no OPQ or other pre-transform, no polysemous codes) becomes the qetvec index with the same
codebooks, codes and ids. Anything else (levels >= 1, several stages, groups of unequal
width) has no FAISS counterpart: persist it with `qetvec.write_index` / `qetvec.read_index`
(or pickle, which uses the same checked format).
"""
from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from qetvec._validation import check_positive_int
from qetvec.codec import Codec
from qetvec.index_flat import IndexQET
from qetvec.index_ivf import IndexIVFQET
from qetvec.quantizer import QETQuantizer


def product_quantizer(codec: Codec) -> faiss.ProductQuantizer:
    """FAISS ProductQuantizer with the codec's codebooks (M, ksub, dsub) float32 (`Codec.pq_codebooks`);
    ValueError if the codec is not trained or not plain PQ."""
    if not isinstance(codec, Codec):
        raise TypeError(f"product_quantizer takes a qetvec codec, got {type(codec).__name__}")
    if not codec.is_trained:
        raise ValueError("the codec is not trained")
    try:
        books = codec.pq_codebooks()
    except ValueError as err:
        raise ValueError(f"{err}: persist it with qetvec.write_index instead") from err
    m, ksub, dsub = books.shape
    pq = faiss.ProductQuantizer(codec.d, m, int(ksub).bit_length() - 1)
    faiss.copy_array_to_vector(books.ravel(), pq.centroids)
    if pq.code_size != codec.code_size:
        raise ValueError(f"code sizes differ: FAISS {pq.code_size}, qetvec {codec.code_size}")
    return pq


def to_faiss(index: Any) -> faiss.Index:
    """The FAISS index (IndexPQ, IndexIDMap2(IndexPQ) or IndexIVFPQ, inside an
    IndexPreTransform when the codec rotates) holding the same codebooks, coarse centroids,
    codes and ids as the qetvec `index`; see the module table."""
    if isinstance(index, IndexQET):
        return _flat(index)
    if isinstance(index, IndexIVFQET):
        return _rotated(index.codec, _ivf(index))
    raise TypeError(f"to_faiss takes IndexQET or IndexIVFQET, got {type(index).__name__} "
                    "(IndexRefineFlat: export its .base and wrap it in faiss.IndexRefineFlat)")


def to_faiss_fast_scan(index: Any, bbs: int = 32) -> faiss.Index:
    """The FAISS fast-scan index (IndexPQFastScan or IndexIVFPQFastScan) holding the codebooks, coarse centroids, codes and ids of a 4-bit,
    levels-0 qetvec `index`; `bbs` rows per SIMD block (a multiple of 32), as in FAISS.
    Distances use uint8-quantized tables: approximate, as FAISS's fast-scan's are."""
    if check_positive_int(bbs, "bbs") % 32:  # FAISS asserts it, and divides by zero on bbs=0
        raise ValueError(f"bbs must be a multiple of 32, got {bbs}")
    nbits = product_quantizer(index.codec).nbits
    if nbits != 4:
        raise ValueError(f"fast-scan needs 4-bit codes, {index.codec} has {nbits}-bit codes")
    if isinstance(index, IndexQET) and index.user_ids:
        raise ValueError("an IndexQET with user ids has no fast-scan export (FAISS's IndexIDMap2 "
                         "wraps only empty indexes): use to_faiss, or an IndexIVFQET, which keeps ids")
    if isinstance(index, IndexIVFQET):
        exported = _ivf(index)
        out = faiss.IndexIVFPQFastScan(exported, bbs)
        quantizer = faiss.clone_index(exported.quantizer)  # own a copy: `exported` is dropped
        out.quantizer, out.own_fields = quantizer, True
        quantizer.this.disown()
        out.nprobe = exported.nprobe
    else:
        out = faiss.IndexPQFastScan(_pq(index), bbs)
    return _rotated(index.codec, out)


def from_faiss(index: faiss.Index) -> Any:
    """The qetvec index (levels 0) holding the codebooks, codes and ids of a trained FAISS
    IndexPQ, IndexIDMap / IndexIDMap2 around one, or IndexIVFPQ. TypeError for other types
    (subclasses too: IndexIVFPQR's re-ranking codes would be dropped), ValueError for an
    untrained index or ids qetvec does not store (negative, or twice: FAISS allows both)."""
    if not isinstance(index, faiss.Index):
        raise TypeError(f"from_faiss takes a FAISS index, got {type(index).__name__}")
    concrete = faiss.downcast_index(index)  # a new proxy: `index` keeps the object alive
    wrapper = concrete if type(concrete) in (faiss.IndexIDMap, faiss.IndexIDMap2) else None
    if wrapper is not None:
        concrete = faiss.downcast_index(wrapper.index)
    if type(concrete) not in ((faiss.IndexPQ,) if wrapper else (faiss.IndexPQ, faiss.IndexIVFPQ)):
        raise TypeError("from_faiss takes IndexPQ, IndexIDMap2(IndexPQ) or IndexIVFPQ, got "
                        + (f"IndexIDMap around {type(concrete).__name__}" if wrapper else type(concrete).__name__))
    if not concrete.is_trained:
        raise ValueError(f"from_faiss: the FAISS {type(concrete).__name__} is not trained (it has no "
                         "codebooks to copy): train it first")
    if isinstance(concrete, faiss.IndexIVFPQ):
        out, (codes, ids, lists) = _ivf_index(concrete), _ivf_rows(concrete.invlists, concrete.nlist)
        store = lambda: out.lists.add(lists, codes, ids)  # noqa: E731  (single stage: the code is the row)
    else:
        out = _pq_index(concrete)
        codes = faiss.vector_to_array(concrete.codes).reshape(concrete.ntotal, concrete.code_size)
        ids = np.arange(concrete.ntotal) if wrapper is None else faiss.vector_to_array(wrapper.id_map)
        store = lambda: out._store(codes, ids, user_ids=wrapper is not None, columns={})  # noqa: E731
    try:
        store()  # through the one id check of every path that stores ids (InvertedLists.add)
    except ValueError as err:
        raise ValueError(f"from_faiss: the FAISS index holds ids qetvec does not store ({err})") from err
    return out


def _codec(pq: faiss.ProductQuantizer) -> QETQuantizer:
    return QETQuantizer.from_pq_codebooks(faiss.vector_to_array(pq.centroids).reshape(pq.M, pq.ksub, pq.dsub))


def _pq_index(index: faiss.IndexPQ) -> IndexQET:
    return IndexQET(index.d, metric=index.metric_type, codec=_codec(index.pq))


def _ivf_index(index: faiss.IndexIVFPQ) -> IndexIVFQET:
    """The empty IndexIVFQET with the quantizer, centroids, codebooks and nprobe of `index`."""
    out = IndexIVFQET(faiss.clone_index(index.quantizer), index.d, index.nlist, metric=index.metric_type,
                      by_residual=index.by_residual, codec=_codec(index.pq))
    out.centroids = out.quantizer.reconstruct_n(0, index.nlist).astype(np.float32)
    out.nprobe = index.nprobe
    return out


def _coarse(index: IndexIVFQET) -> faiss.Index:
    """A copy of the coarse quantizer, or for a rotating codec an IndexFlat of the rotated
    centroids (ValueError if the quantizer is not flat: its graph would be rebuilt)."""
    if rotation_matrix(index.codec) is None:
        return faiss.clone_index(index.quantizer)
    if not isinstance(faiss.downcast_index(index.quantizer), faiss.IndexFlat):
        raise ValueError(f"a rotating codec exports with a flat coarse quantizer only, got "
                         f"{type(faiss.downcast_index(index.quantizer)).__name__}")
    flat = faiss.IndexFlat(index.d, index.quantizer.metric_type)
    flat.add(index.codec.rotate(index.centroids))
    return flat


def _ivf_rows(invlists: faiss.InvertedLists, nlist: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every row of FAISS inverted lists, list by list: codes (n, code_size) uint8, ids (n,)
    int64 and list numbers (n,) int64."""
    sizes = np.array([invlists.list_size(l) for l in range(nlist)], np.int64)
    codes = np.empty((int(sizes.sum()), invlists.code_size), np.uint8)
    ids = np.empty(int(sizes.sum()), np.int64)
    for l, start in zip(range(nlist), np.cumsum(sizes) - sizes):
        n = int(sizes[l])
        if n:
            codes[start:start + n] = faiss.rev_swig_ptr(invlists.get_codes(l), n * invlists.code_size).reshape(n, -1)
            ids[start:start + n] = faiss.rev_swig_ptr(invlists.get_ids(l), n)
    return codes, ids, np.repeat(np.arange(nlist, dtype=np.int64), sizes)


def rotation_matrix(codec: Codec) -> np.ndarray | None:
    """R (d, d) float32 with `codec.rotate(x) == x @ R.T`, or None when the codec does not
    rotate (read through the codec interface: the rotation of the identity rows is R.T)."""
    rotated = codec.rotate(np.eye(codec.d, dtype=np.float32))
    return None if np.array_equal(rotated, np.eye(codec.d)) else np.ascontiguousarray(rotated.T, np.float32)


def _rotated(codec: Codec, index: faiss.Index) -> faiss.Index:
    """`index` (in the codec's rotated space) behind FAISS's LinearTransform(R), which owns it."""
    matrix = rotation_matrix(codec)
    if matrix is None:
        return index
    transform = faiss.LinearTransform(codec.d, codec.d, False)
    faiss.copy_array_to_vector(matrix.ravel(), transform.A)
    transform.is_trained = True
    transform.set_is_orthonormal()
    out = faiss.IndexPreTransform(transform, index)
    out.own_fields = True
    for part in (transform, index):
        part.this.disown()
    return out


def _pq(index: IndexQET) -> faiss.IndexPQ:
    """The IndexPQ holding the codebooks and live codes of `index` (sequential ids)."""
    pq = product_quantizer(index.codec)
    out = faiss.IndexPQ(index.d, pq.M, pq.nbits, index.metric_type)
    out.pq = pq
    out.is_trained = True
    rows = index.lists.live_rows()
    faiss.copy_array_to_vector(np.ascontiguousarray(index.lists.codes[rows]).ravel(), out.codes)
    out.ntotal = len(rows)
    return out


def _flat(index: IndexQET) -> faiss.Index:
    out = _rotated(index.codec, _pq(index))
    if not index.user_ids:
        return out
    ntotal, out.ntotal = out.ntotal, 0
    wrapped = faiss.IndexIDMap2(out)  # wraps only empty indexes: the id map is filled by hand
    faiss.copy_array_to_vector(index.lists.ids[index.lists.live_rows()], wrapped.id_map)
    out.ntotal = wrapped.ntotal = ntotal
    wrapped.construct_rev_map()
    return wrapped


def _ivf(index: IndexIVFQET) -> faiss.IndexIVFPQ:
    """The IndexIVFPQ of `index` in its codec's rotated space (see the module docstring)."""
    pq = product_quantizer(index.codec)
    quantizer = _coarse(index)
    out = faiss.IndexIVFPQ(quantizer, index.d, index.nlist, pq.M, pq.nbits,
                           index.metric_type)  # the Python wrapper keeps `quantizer` alive
    out.pq = pq
    out.by_residual = index.by_residual
    out.is_trained = True
    out.precompute_table()
    lists, width = index.lists, index.codec.code_size
    for l in np.flatnonzero(lists.size):
        s, n = int(lists.start[l]), int(lists.size[l])
        codes = np.ascontiguousarray(lists.codes[s:s + n, :width])
        ids = np.ascontiguousarray(lists.ids[s:s + n])
        out.invlists.add_entries(int(l), n, faiss.swig_ptr(ids), faiss.swig_ptr(codes))
    out.ntotal = index.ntotal
    out.nprobe = index.nprobe
    return out
