"""Methods compared by `qetvec bench`, each built to fit a number of bytes per row.

Names: "qet-L<levels>S<stages>" (QET, tree only in stage 1, exactly the bytes asked); the
FAISS codes of `qetvec.bench.sizing.FAISS_METHODS` (built with `faiss.index_factory`, at most
the bytes asked); "sqtqmse<b>-norm" (TurboQuant as its paper applies it: each row's norm
stored as float16 beside "RR<d>,SQtqmse<b>", a random rotation and the scalar code of the
unit vector); "auto" (`qetvec.fit_codec`'s winner, residual stages encoded with beam 32). A
method that cannot fit a byte budget raises ValueError; the runner reports it as skipped
with the reason.
"""
from __future__ import annotations

import re
from typing import Any

import faiss
import numpy as np

import qetvec
from qetvec.bench.codec_adapters import FitCodecAdapter, NormStoredCodec
from qetvec.bench.sizing import FAISS_METHODS, config_for_code_size, faiss_codec, faiss_spec
from qetvec.factory import index_factory
from qetvec.index_flat import IndexQET
from qetvec.quantizer import QETQuantizer

_QET = re.compile(r"qet-L(\d+)S(\d+)")
NORM_METHODS = tuple(f"sqtqmse{b}-norm" for b in (1, 2, 3, 4))
AUTO = "auto"
AUTO_BEAM = 32  # residual stages encoded as FAISS's RQ beam-32 baseline is (trained with beam 8)
NAMED_METHODS = (*FAISS_METHODS, *NORM_METHODS, AUTO)


def parse_qet(method: str) -> tuple[int, int] | None:
    """(levels, stages) of a "qet-L<levels>S<stages>" name, else None."""
    match = _QET.fullmatch(method)
    return (int(match.group(1)), int(match.group(2))) if match else None


def check_method(method: str) -> str:
    """`method` if it names a known method, else ValueError listing them."""
    if parse_qet(method) is None and method not in NAMED_METHODS:
        raise ValueError(f"unknown method {method!r}: use qet-L<levels>S<stages> or one of "
                         f"{', '.join(NAMED_METHODS)}")
    return method


def build_codec(method: str, d: int, code_bytes: int) -> tuple[Any, str]:
    """(untrained codec with train / sa_encode / sa_decode, description) of at most
    code_bytes per row; ValueError if `method` cannot fit or is not available."""
    qet = parse_qet(method)
    if qet is not None:
        cfg = config_for_code_size(d, code_bytes, *qet)
        return QETQuantizer(d, **cfg), f"QET m={cfg['m']} nbits={cfg['nbits']} levels={cfg['levels']}"
    if method == AUTO:
        return (FitCodecAdapter(qetvec.fit_codec, code_bytes, AUTO_BEAM),
                f"qetvec.fit_codec(x_train, bytes_per_row={code_bytes}, metric=None, beam={AUTO_BEAM})")
    if method in NORM_METHODS:
        bits = method.removeprefix("sqtqmse").removesuffix("-norm")
        spec = f"RR{d},SQtqmse{bits}"
        codec = NormStoredCodec(faiss.index_factory(d, spec))
        if codec.code_size > code_bytes:
            raise ValueError(f"{method}: {spec} + float16 norm needs {codec.code_size} bytes/row for d={d}, "
                             f"more than {code_bytes}")
        return codec, f"{spec} of x/|x| + float16 |x|"
    return faiss_codec(method, d, code_bytes), faiss_spec(method, d, code_bytes)


def build_index(method: str, d: int, code_bytes: int, metric: int = faiss.METRIC_L2) -> tuple[Any, str]:
    """(untrained flat index with train / add / search, description); QET indexes with
    several stages under L2 spend 4 of the bytes on the stored norm."""
    qet = parse_qet(method)
    if method in NORM_METHODS or method == AUTO:
        raise ValueError(f"{method}: a codec, not an index, in this benchmark")
    if qet is None:
        return faiss_codec(method, d, code_bytes, metric), faiss_spec(method, d, code_bytes)
    levels, stages = qet
    norm = 4 if metric == faiss.METRIC_L2 and stages > 1 else 0
    cfg = config_for_code_size(d, code_bytes - norm, levels, stages)
    index = IndexQET(d, metric=metric, **cfg)
    return index, f"QET m={cfg['m']} nbits={cfg['nbits']} levels={cfg['levels']}" + (" +norm" if norm else "")


def ivf_spec(method: str, d: int, nlist: int, code_bytes: int) -> str:
    """Factory string of an L2 IVF index with exact re-ranking whose inverted lists hold
    code_bytes per row: "IVF{nlist},QET{m}x{nbits}_L{levels},RFlat" for qetvec (single stage:
    the QET code is all a row stores), "[OPQ..,]IVF{nlist},PQ..,RFlat" (etc.) for FAISS. ValueError if none."""
    qet = parse_qet(method)
    if method in NORM_METHODS or method in (AUTO, "rq-beam32"):
        raise ValueError(f"{method}: not built from a factory string, so not in the IVF run")
    if qet is None:
        *transforms, codec = faiss_spec(method, d, code_bytes).split(",")
        return ",".join([*transforms, f"IVF{nlist}", codec, "RFlat"])
    levels, stages = qet
    if stages != 1:
        raise ValueError("the IVF run takes single-stage QET (index_factory's _L puts a tree in every stage)")
    cfg = config_for_code_size(d, code_bytes, levels)
    return f"IVF{nlist},QET{cfg['m']}x{cfg['nbits'][0]}_L{levels},RFlat"


def build_ivf(method: str, d: int, nlist: int, code_bytes: int, k_factor: float,
              centroids: np.ndarray | None = None) -> tuple[Any, str]:
    """(untrained IVF + refine index, its factory string); refine re-ranks k_factor * k
    candidates. Given coarse `centroids` (nlist, d) float32, the index keeps them instead of
    training its own (not behind a learned transform such as OPQ, whose space differs)."""
    spec = ivf_spec(method, d, nlist, code_bytes)
    index = (faiss.index_factory if parse_qet(method) is None else index_factory)(d, spec)
    index.k_factor = k_factor
    if centroids is not None and spec.startswith("IVF"):
        layer = ivf_layer(index)
        layer.quantizer.add(centroids)  # FAISS's name for the coarse quantizer, both libraries
    return index, spec


def ivf_layer(index: Any) -> Any:
    """The IVF index inside a `build_ivf` index: faiss.IndexIVF or qetvec.IndexIVFQET (both
    have nprobe, nlist and code_size, the bytes per row in the inverted lists)."""
    return faiss.extract_index_ivf(index) if isinstance(index, faiss.Index) else index.base
