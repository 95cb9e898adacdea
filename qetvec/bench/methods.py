"""Methods compared by `qetvec bench`, each built at an exact number of bytes per row.

Names: "qet-L<levels>S<stages>" (QET, tree only in stage 1), "pq", "opq", "rq", "lsq",
"rabitq" (FAISS codecs from qetvec_faiss.codecs). A method that cannot hit a byte budget
raises ValueError; the runner reports it as skipped with the reason.
"""
from __future__ import annotations

import re
from typing import Any

import faiss
import qetvec_faiss.codecs as faiss_codecs

from qetvec.codec import QETQuantizer, config_for_code_size
from qetvec.index_flat import IndexQET

_QET = re.compile(r"qet-L(\d+)S(\d+)")


def parse_qet(method: str) -> tuple[int, int] | None:
    """(levels, stages) of a "qet-L<levels>S<stages>" name, else None."""
    match = _QET.fullmatch(method)
    return (int(match.group(1)), int(match.group(2))) if match else None


def check_method(method: str) -> str:
    if parse_qet(method) is None and method not in faiss_codecs.METHODS:
        raise ValueError(f"unknown method {method!r}: use qet-L<levels>S<stages> or one of "
                         f"{', '.join(faiss_codecs.METHODS)}")
    return method


def build_codec(method: str, d: int, code_bytes: int) -> tuple[Any, str]:
    """(untrained codec with train / sa_encode / sa_decode, description)."""
    qet = parse_qet(method)
    if qet is None:
        return faiss_codecs.faiss_codec(method, d, code_bytes), faiss_codecs.factory_string(method, d, code_bytes)
    cfg = config_for_code_size(d, code_bytes, *qet)
    return QETQuantizer(d, **cfg), f"QET m={cfg['m']} nbits={cfg['nbits']} levels={cfg['levels']}"


def build_index(method: str, d: int, code_bytes: int, metric: int = faiss.METRIC_L2) -> tuple[Any, str]:
    """(untrained flat index with train / add / search, description); QET indexes with
    several stages under L2 spend 4 of the bytes on the stored norm."""
    qet = parse_qet(method)
    if qet is None:
        spec = faiss_codecs.factory_string(method, d, code_bytes)
        return faiss.index_factory(d, spec, metric), spec
    levels, stages = qet
    norm = 4 if metric == faiss.METRIC_L2 and stages > 1 else 0
    cfg = config_for_code_size(d, code_bytes - norm, levels, stages)
    index = IndexQET(d, metric=metric, **cfg)
    return index, f"QET m={cfg['m']} nbits={cfg['nbits']} levels={cfg['levels']}" + (" +norm" if norm else "")
