"""`index_factory`: build qetvec indexes from FAISS-like description strings.

Grammar (comma-separated, like faiss.index_factory):

    [IVF<nlist>[_<coarse>],] (QET<m>x<nbits>[_L<levels>][_S<stages>][_C<codebook bits>] | Auto<B>[_rank]) [,RFlat]

    IVF<nlist>_<coarse>  coarse quantizer built by faiss.index_factory(d, "<coarse>"), e.g.
                         IVF1024 (flat), IVF1024_HNSW32; without IVF: IndexQET (flat scan)
    QET<m>x<nbits>       m column groups of nbits-bit codes; tree depth 1 unless _L given
    _L<levels>           tree depth (0 = plain product quantization)
    _S<stages>           1 + residual stages
    _C<bits>             codebook quantization to <bits> bits per entry
    Auto<B>              the best codec for B bytes per stored row, chosen when the index is
                         trained (`qetvec.fit_codec` on the training rows, or their IVF
                         residuals, for the index's metric; the least held-out MSE)
    _rank                the same chosen by objective "ranking" (the least error in the
                         inner products a search computes; `qetvec.fit_codec`)
    RFlat                re-rank with exact distances (IndexRefineFlat; keeps float vectors)

Examples: "QET10x8_L0" (= PQ10), "IVF1024,QET8x8_L1", "IVF4096_HNSW32,QET16x8_L2_S2,RFlat",
"IVF1024,Auto10,RFlat".
"""
from __future__ import annotations

import re
from typing import Any

import faiss

from qetvec._validation import check_positive_int
from qetvec.fit import FitCodec
from qetvec.index_flat import IndexQET
from qetvec.index_ivf import IndexIVFQET
from qetvec.metric import metric_type
from qetvec.refine import IndexRefineFlat

_QET = re.compile(r"QET(\d+)x(\d+)(?:_L(\d+))?(?:_S(\d+))?(?:_C(\d+))?")
_AUTO = re.compile(r"Auto(\d+)(_rank)?")
_IVF = re.compile(r"IVF(\d+)(?:_(.+))?")


def index_factory(d: int, description: str, metric: str | int = "l2") -> Any:
    """A qetvec index for a description string (grammar in the module docstring)."""
    d = check_positive_int(d, "d")
    if not isinstance(description, str):
        raise TypeError(f"description must be a string such as 'IVF1024,QET10x8_L0', got {description!r}")
    metric = metric_type(metric)
    parts = [p.strip() for p in description.split(",")]
    refine = parts[-1] in ("RFlat", "Refine(Flat)")
    parts = parts[:-1] if refine else parts
    if not parts or len(parts) > 2:
        raise ValueError(f"cannot parse {description!r}: expected [IVF...,]QET...[,RFlat]")
    qet, auto = _QET.fullmatch(parts[-1]), _AUTO.fullmatch(parts[-1])
    if qet is None and auto is None:
        raise ValueError(f"cannot parse {parts[-1]!r} in {description!r}: expected "
                         "QET<m>x<nbits>[_L<levels>][_S<stages>][_C<bits>] or Auto<bytes>[_rank]")
    if auto is not None:
        kwargs: dict[str, Any] = dict(metric=metric, codec=FitCodec(
            d, int(auto.group(1)), "l2" if metric == faiss.METRIC_L2 else "ip",
            objective="ranking" if auto.group(2) else "mse"))
    else:
        m, nbits, levels, stages, cbits = (int(g) if g else None for g in qet.groups())
        kwargs = dict(m=m, nbits=nbits, levels=1 if levels is None else levels,
                      stages=1 if stages is None else stages, metric=metric, codebook_bits=cbits)
    if len(parts) == 1:
        index: Any = IndexQET(d, **kwargs)
    else:
        ivf = _IVF.fullmatch(parts[0])
        if ivf is None:
            raise ValueError(f"cannot parse {parts[0]!r} in {description!r}: expected IVF<nlist>[_<coarse>]")
        try:
            coarse = faiss.index_factory(d, ivf.group(2) or "Flat", metric)
        except RuntimeError as err:
            raise ValueError(f"FAISS cannot build coarse quantizer {ivf.group(2)!r}: {err}") from err
        index = IndexIVFQET(coarse, d, int(ivf.group(1)), **kwargs)
    return IndexRefineFlat(index) if refine else index
