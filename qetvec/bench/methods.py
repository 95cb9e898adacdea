"""Methods compared by `qetvec bench`, each built to fit a number of bytes per row.

Names: "qet-L<levels>S<stages>" (QET, tree only in stage 1, exactly the bytes asked); the
FAISS codes of `qetvec.bench.sizing.FAISS_METHODS` (built with `faiss.index_factory`, at most
the bytes asked); "sqtqmse<b>-norm" (TurboQuant as its paper applies it: each row's norm
stored as float16 beside "RR<d>,SQtqmse<b>", a random rotation and the scalar code of the
unit vector); "auto" (`qetvec.fit_codec`'s winner, residual stages encoded with beam 32
unless told otherwise). A method that cannot fit a byte budget
raises ValueError; the runner reports it as skipped with the reason.

In the IVF run (`ivf_spec`) "auto" is qetvec's factory token "Auto<B>" (fit_codec on the
IVF residuals), a "qet-L<levels>S1" setting is "QET<m>x<nbits>_L<levels>", a FAISS code is
its factory string under "IVF<nlist>"; every index re-ranks exactly ("RFlat").
"""
from __future__ import annotations

import re
from typing import Any

import faiss
import numpy as np

from qetvec.bench.codec_adapters import FitCodecAdapter, NormStoredCodec
from qetvec.bench.sizing import FAISS_METHODS, config_for_code_size, faiss_codec, faiss_spec
from qetvec.factory import index_factory
from qetvec.fit import FitCodec, fit_codec
from qetvec.index_flat import IndexQET
from qetvec.quantizer import QETQuantizer

_QET = re.compile(r"qet-L(\d+)S(\d+)")
NORM_METHODS = tuple(f"sqtqmse{b}-norm" for b in (1, 2, 3, 4))
AUTO = "auto"
AUTO_BEAM = 32  # residual stages encoded as FAISS's RQ beam-32 baseline is (trained with beam 8)
NAMED_METHODS = (*FAISS_METHODS, *NORM_METHODS, AUTO)
_SIZE_SUFFIX = re.compile(r"(sqtqmse|eden|sq|rabitq)(\d?)(-norm)?")


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


def is_qetvec(method: str) -> bool:
    """Whether a method is qetvec's ("auto", "qet-L<levels>S<stages>") rather than FAISS's."""
    return method == AUTO or parse_qet(method) is not None


def family(method: str) -> str:
    """The family of a method whose FAISS code comes in fixed sizes (sqtqmse1..4 -> sqtqmse,
    sqtqmse1..4-norm -> sqtqmse-norm, eden2..4 -> eden, sq4 / sq8 -> sq, rabitq / rabitq2..4
    -> rabitq); any other method is its own family."""
    match = _SIZE_SUFFIX.fullmatch(method)
    return match.group(1) + (match.group(3) or "") if match else method


def build_codec(method: str, d: int, code_bytes: int,
                fit_options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """(untrained codec with train / sa_encode / sa_decode, description) of at most
    code_bytes per row; ValueError if `method` cannot fit. `fit_options` go to
    `qetvec.fit_codec` for "auto" (families, sample_rows, beam; beam AUTO_BEAM unless given)."""
    qet = parse_qet(method)
    if qet is not None:
        cfg = config_for_code_size(d, code_bytes, *qet)
        return QETQuantizer(d, **cfg), f"QET m={cfg['m']} nbits={cfg['nbits']} levels={cfg['levels']}"
    if method == AUTO:
        options = {"beam": AUTO_BEAM, **(fit_options or {})}
        shown = "".join(f", {key}={value!r}" for key, value in options.items())
        return (FitCodecAdapter(fit_codec, code_bytes, **options),
                f"qetvec.fit_codec(x_train, bytes_per_row={code_bytes}, metric=None{shown})")
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
    """Factory string of an L2 IVF index with exact re-ranking whose inverted lists hold at
    most code_bytes per row: "IVF{nlist},Auto{B},RFlat" for "auto" (qetvec.index_factory),
    "IVF{nlist},QET{m}x{nbits}_L{levels},RFlat" for a single-stage QET setting (the QET code
    is all a row stores), "[OPQ..,]IVF{nlist},PQ..,RFlat" (etc.) for FAISS. ValueError if none."""
    qet = parse_qet(method)
    if method in NORM_METHODS or method == "rq-beam32":
        raise ValueError(f"{method}: not built from a factory string, so not in the IVF run")
    if method == AUTO:
        return f"IVF{nlist},Auto{code_bytes},RFlat"
    if qet is None:
        *transforms, codec = faiss_spec(method, d, code_bytes).split(",")
        return ",".join([*transforms, f"IVF{nlist}", codec, "RFlat"])
    levels, stages = qet
    if stages != 1:
        raise ValueError("the IVF run takes single-stage QET (index_factory's _L puts a tree in every stage)")
    cfg = config_for_code_size(d, code_bytes, levels)
    return f"IVF{nlist},QET{cfg['m']}x{cfg['nbits'][0]}_L{levels},RFlat"


def ivf_methods(methods: list[str], d: int, code_bytes: int) -> list[str]:
    """The methods of `methods` in the IVF run at code_bytes per row: of a family of
    fixed-size FAISS codes (`family`) only the largest that fits (a user with the bytes
    takes it), every other method as given; methods without a fitting IVF index are kept,
    for the runner to report why."""
    def size(method: str) -> int:
        try:
            return faiss_codec(method, d, code_bytes).sa_code_size()
        except ValueError:
            return -1
    largest: dict[str, str] = {}
    for method in methods:
        if not is_qetvec(method) and family(method) != method:
            best = largest.get(family(method))
            if best is None or size(method) > size(best):
                largest[family(method)] = method
    return [m for m in methods if is_qetvec(m) or family(m) == m or largest[family(m)] == m]


def build_ivf(method: str, d: int, nlist: int, code_bytes: int, k_factor: float,
              centroids: np.ndarray | None = None,
              fit_options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """(untrained IVF + refine index, its factory string); refine re-ranks k_factor * k
    candidates. Given coarse `centroids` (nlist, d) float32, the index keeps them instead of
    training its own (not behind a learned transform such as OPQ, whose space differs).
    FAISS IVF-PQ trains without polysemous codeword renumbering (its "np" suffix): search with
    polysemous_ht = 0, the factory's default, never uses it, and it triples training time.
    "auto" fits its codec on the IVF residuals at training time, its search bounded by
    `fit_options` (families, sample_rows, beam of `qetvec.fit_codec`)."""
    spec = ivf_spec(method, d, nlist, code_bytes)
    index = (index_factory if is_qetvec(method) else faiss.index_factory)(d, spec)
    index.k_factor = k_factor
    if method == AUTO and fit_options:
        ivf_layer(index).codec = FitCodec(d, code_bytes, "l2", **fit_options)
    if isinstance(index, faiss.Index):
        layer = faiss.downcast_index(ivf_layer(index))
        if isinstance(layer, faiss.IndexIVFPQ):  # the factory turns on polysemous training (codewords
            layer.do_polysemous_training = False  # renumbered for Hamming filtering, which search leaves off)
    if centroids is not None and spec.startswith("IVF"):
        layer = ivf_layer(index)
        layer.quantizer.add(centroids)  # FAISS's name for the coarse quantizer, both libraries
    return index, spec


def ivf_layer(index: Any) -> Any:
    """The IVF index inside a `build_ivf` index: faiss.IndexIVF or qetvec.IndexIVFQET (both
    have nprobe, nlist and code_size, the bytes per row in the inverted lists)."""
    return faiss.extract_index_ivf(index) if isinstance(index, faiss.Index) else index.base
