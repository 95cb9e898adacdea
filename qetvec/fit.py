"""`fit_codec`: the best code for a byte budget, chosen by measuring candidates on held-out rows.

Every candidate is a `QETQuantizer` whose rows take exactly `bytes_per_row` bytes in an index
of `metric` (under "l2", a codec with residual stages stores a 4-byte norm per row beside
its code, so its code gets 4 bytes less; `metric=None` counts the code alone, as
`sa_encode` does). The candidate families:

    pq            plain product quantization, 8-bit group codes (FAISS's PQ)
    qet-L<l>      the paper's QET: swap tree of depth l in one stage, then PQ
    pca-w<w>      PCA rotation, groups of w principal components (w = 1, 2, 4, 8, and 16 for
                  d >= 128; only widths whose groups can spend the budget), bits per group
                  by greedy reverse water-filling on measured distortion (`qetvec.allocation`);
                  w = 1 is a transform coder whose k-means scalars are Lloyd-Max quantizers
    random-w1     seeded random rotation, one scalar per column, equal bits (TurboQuant's
                  MSE quantizer)
    rq<b>         residual stages of one full-width group with b-bit codebooks, beam search,
                  every stage's k-means seeded alike (FAISS's residual quantizer; held-out
                  relative MSE with QETQuantizer's default distinct seeds instead: 0.257
                  against 0.223 on 384-d MiniLM rows at 24 B, 0.0913 against 0.0910 on
                  GloVe-50 at 10 B)
    rq<b>-upd     the same with UPDATE_ROUNDS rounds of codebook update
                  (`qetvec.codebook_update`): which of the two wins depends on the data
                  (MiniLM at 24 B: 0.209 against 0.223; GloVe-50 at 10 B: 0.0971 against 0.0910)
    pca-w<w>+rq   a PCA-allocated stage with about half the bits, residual full-width stages
                  with the rest

Each is trained on a sample of the training rows and scored on rows of `x_train` it did not
see, by relative MSE (objective "mse", the default, also of the factory's `Auto<B>`) or by the
relative error of inner products with those rows as queries (objective "ranking", the
factory's `Auto<B>_rank`: PCA allocations then weigh each axis's error by the rows' second
moment along it, giving more bits to the axes that move scores most; it raised recall at 192 B
on 384-d MiniLM and lowered it at 24 and 96 B, `docs/codecs.md`); a candidate whose full-width
residual stages would cost more than `max_work` (sample rows x d x codewords summed over those
stages: the multiply-adds of one k-means pass over all of them, times 1 + its rounds of
codebook update; 1.6e11 is about 11 CPU minutes of training, enough for `rq8-upd` on 8,000
384-d rows at 48 B) is listed as skipped with its work, so a 384-d run at 96 bytes does not
train 96 stages of 256 codewords; the winner is trained again on all of `x_train`. Codebooks
stay within FAISS's rule of 39 training rows per codeword for x_train (2**11 codewords for
100k rows), so none is poorly trained. `codec.report` lists every candidate: its bytes per row
read from its codes, held-out MSE and ranking error, train and encode seconds, or why it was
skipped.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from qetvec._validation import as_float_matrix, check_positive_int, check_seed
from qetvec.allocation import greedy_allocation, reverse_water_filling
from qetvec.codebooks import MIN_POINTS_PER_CENTROID, assign_group_codes, train_group_codebooks
from qetvec.codec import Codec, LookupUnits
from qetvec.evaluation import relative_ip_error, relative_mse
from qetvec.io import register
from qetvec.quantizer import QETQuantizer
from qetvec.stage import group_bounds
from qetvec.transform import Rotation
from qetvec.tree import EntanglementTree

NORM_BYTES = 4  # per-row ||x_hat||^2 of codecs with residual stages in an L2 index
MAX_GROUP_BITS = 12  # codebooks of up to 4096 codewords
SAMPLE_ROWS = 50_000  # rows candidates are trained on
HELD_OUT_ROWS = 10_000  # rows they are scored on
BEAM = 8
UPDATE_ROUNDS = 3  # codebook-update rounds of the rq<b>-upd candidates
MAX_WORK = 1.6e11  # sample rows x d x codewords of full-width residual stages (module docstring)
METRICS = ("l2", "ip", None)
OBJECTIVES = {"mse": "mse", "ranking": "ranking_error"}  # objective -> the report key it minimizes


@dataclass
class Candidate:
    """One configuration tried by `fit_codec`: its name, the settings of its QETQuantizer,
    and `result`: what building it needs ("allocate": (group width, bits) of a PCA-allocated
    first stage, "residual": bits of full-width stages after it) and what scoring found."""

    name: str
    settings: dict[str, Any]
    result: dict[str, Any] = field(default_factory=dict)


def code_bytes(bytes_per_row: int, stages: int, metric: str | None) -> int:
    """Bytes of code a codec with `stages` stages gets when an index row holds bytes_per_row."""
    return bytes_per_row - (NORM_BYTES if metric == "l2" and stages > 1 else 0)


def allocate_groups(y: np.ndarray, width: int, budget_bits: int, max_bits: int = MAX_GROUP_BITS,
                    seed: int = 0, held_out: float = 0.25,
                    weights: np.ndarray | None = None) -> tuple[list[int], list[int]]:
    """(group widths, bits per group) for rows y (n, d) float32 in a rotated space: groups of
    `width` consecutive columns (the last may be narrower), bits by greedy allocation on
    measured distortion (k-means trained on the first rows, its error measured on the last
    `held_out` fraction), at most budget_bits in all and max_bits per group; a group may get
    0 bits (it is then coded by its mean). Each group is measured up to 2 bits past its
    Gaussian reverse water-filling rate (`qetvec.allocation`). `weights` (d,) >= 0 weigh each
    column's squared error (default: all 1, the MSE)."""
    n, d = y.shape
    w = np.ones(d) if weights is None else np.asarray(weights, np.float64)
    if w.shape != (d,) or not (np.isfinite(w).all() and (w >= 0).all()):
        raise ValueError(f"weights must be ({d},) finite and >= 0, got shape {w.shape}")
    bounds = group_bounds(d, [min(width, d - a) for a in range(0, d, width)])
    m = len(bounds) - 1
    cut = int(n * (1 - held_out))
    fit, test = y[:cut], y[cut:]
    rates, _ = reverse_water_filling(w * fit.var(axis=0, dtype=np.float64), budget_bits)
    limit = np.clip(np.ceil(np.add.reduceat(rates, bounds[:-1])).astype(int) + 2, 1,
                    min(max_bits, budget_bits, int(math.log2(len(fit)))))
    curves = [np.empty(int(limit[g]) + 1) for g in range(m)]
    for g in range(m):
        cols = slice(bounds[g], bounds[g + 1])
        curves[g][0] = ((test[:, cols] - fit[:, cols].mean(0)) ** 2 * w[cols]).sum(1).mean()
    for b in range(1, int(limit.max()) + 1):
        groups = np.flatnonzero(limit >= b)
        cols = np.concatenate([np.arange(bounds[g], bounds[g + 1]) for g in groups])
        sub_bounds = np.concatenate([[0], np.cumsum(np.diff(bounds)[groups])]).astype(np.int64)
        sub_fit, sub_test = np.ascontiguousarray(fit[:, cols]), np.ascontiguousarray(test[:, cols])
        books = train_group_codebooks(sub_fit, sub_bounds, 2 ** b, seed + b)
        codes = assign_group_codes(sub_test, sub_bounds, books)
        for j, g in enumerate(groups):
            a, z = sub_bounds[j], sub_bounds[j + 1]
            error = (sub_test[:, a:z] - books[j, codes[:, j], : z - a]) ** 2
            curves[g][b] = (error * w[bounds[g]:bounds[g + 1]]).sum(1).mean()
    return np.diff(bounds).tolist(), greedy_allocation(curves, budget_bits).tolist()


def _split_bits(total: int, parts: int) -> list[int]:
    """total bits over `parts` fields as evenly as possible, the first ones one bit more."""
    return [total // parts + (i < total % parts) for i in range(parts)]


def _stage_bits(total: int, width: int) -> list[int]:
    """Bits of full-width residual stages: stages of `width` bits, the remainder (if any)
    as one more stage."""
    return [width] * (total // width) + ([total % width] if total % width else [])


def candidates(d: int, bytes_per_row: int, metric: str | None, max_bits: int = MAX_GROUP_BITS,
               beam: int = BEAM) -> list[Candidate]:
    """The configurations `fit_codec` tries for d-dimensional rows (module docstring), with
    codebooks of at most 2**max_bits codewords and residual stages searched with `beam`;
    those that cannot fill the budget are left out."""
    one = 8 * code_bytes(bytes_per_row, 1, metric)  # code bits with one stage
    many = 8 * code_bytes(bytes_per_row, 2, metric)  # with residual stages
    byte = min(8, max_bits)
    out = []
    if byte <= one <= byte * d:
        out.append(Candidate("pq", dict(m=one // byte, nbits=byte, levels=0)))
    for levels in (1, 2):
        free = one - EntanglementTree(d, levels).n_bits if d >= 2 ** levels else 0
        groups = min(d, -(-free // byte))
        if free > 0 and max(_split_bits(free, groups)) <= max_bits:
            out.append(Candidate(f"qet-L{levels}", dict(m=groups, nbits=[_split_bits(free, groups)], levels=levels)))
    for width in (1, 2, 4, 8, 16):
        if width <= d and one >= 1 and -(-d // width) * max_bits >= one and (width < 16 or d >= 128):
            out.append(Candidate(f"pca-w{width}", dict(transform="pca", levels=0), {"allocate": (width, one, max_bits)}))
    if d <= one <= max_bits * d:
        out.append(Candidate("random-w1", dict(m=d, nbits=[_split_bits(one, d)], levels=0, transform="random")))
    for width in sorted({byte, min(12, max_bits)}):
        stages = _stage_bits(many, width)
        if many >= 8 and len(stages) >= 2:
            rq = dict(m=1, nbits=stages, levels=0, stages=len(stages), beam=beam, stage_seeds="shared")
            out.append(Candidate(f"rq{width}", rq))
            out.append(Candidate(f"rq{width}-upd", dict(rq, update_rounds=UPDATE_ROUNDS)))
    if many >= 2 * byte:
        first = many // 2
        rest = _stage_bits(many - first, byte)
        out.append(Candidate("pca-w4+rq", dict(transform="pca", levels=0, stages=1 + len(rest), beam=beam),
                             {"allocate": (4, first, max_bits), "residual": rest}))
    return out


def residual_stage_bits(candidate: Candidate) -> list[int]:
    """Code bits of each full-width residual stage of a candidate (none for one-stage codes)."""
    if candidate.name.startswith("rq"):
        return list(candidate.settings["nbits"])
    return list(candidate.result.get("residual", []))


def training_work(candidate: Candidate, rows: int, d: int) -> int:
    """rows x d x codewords of a candidate's full-width residual stages, times 1 + its rounds
    of codebook update (each encodes the rows once more): the `max_work` measure."""
    passes = 1 + candidate.settings.get("update_rounds", 0)
    return rows * d * sum(2 ** bits for bits in residual_stage_bits(candidate)) * passes


def _build(candidate: Candidate, d: int, sample: np.ndarray, seed: int, objective: str) -> QETQuantizer:
    """The untrained QETQuantizer of a candidate; PCA allocations are measured on `sample`,
    under "ranking" with each principal axis's error weighed by the rows' second moment along
    it (the error of inner products with queries drawn like the rows)."""
    settings = dict(candidate.settings, seed=seed)
    plan = candidate.result.get("plan")
    if "allocate" in candidate.result and plan is None:
        width, bits, max_bits = candidate.result["allocate"]
        y = Rotation(d, "pca", seed).fit(sample).apply(sample)
        weights = (y.astype(np.float64) ** 2).mean(0) if objective == "ranking" else None
        plan = allocate_groups(y, width, bits, max_bits, seed, weights=weights)
        candidate.result["plan"] = plan
    if plan is not None:
        widths, group_bits = plan
        rest = candidate.result.get("residual", [])
        settings.update(m=[widths] + [1] * len(rest), nbits=[group_bits] + rest,
                        stages=1 + len(rest))
    return QETQuantizer(d, **settings)


def fit_codec(x_train: np.ndarray, bytes_per_row: int, metric: str | None = "l2", *,
              families: list[str] | None = None, sample_rows: int = SAMPLE_ROWS,
              held_out_rows: int = HELD_OUT_ROWS, beam: int = BEAM, max_work: float = MAX_WORK,
              objective: str = "mse", seed: int = 0, progress: bool | None = None) -> QETQuantizer:
    """The best QETQuantizer for `bytes_per_row` bytes per row, trained on x_train (n, d).

    Candidates (module docstring; `families` keeps only those whose name starts with one of
    the given prefixes, e.g. ["pq", "rq"]) are trained on up to `sample_rows` rows and scored
    on up to `held_out_rows` other rows of x_train; the best by `objective` is trained again
    on every row. objective: "mse" (relative MSE, `qetvec.evaluation.relative_mse`) for codes
    that are decoded; "ranking" (`relative_ip_error` with the held-out rows as queries: the
    error of the scores a search computes) for codes in an index at high rates, where PCA
    allocations also weigh each axis by the rows' second moment along it.
    Residual stages are encoded by a beam search of width `beam` (wider: better codes, slower
    encoding); `max_work` skips candidates whose residual stages cost more
    (module docstring). metric: "l2" or "ip" for a codec that goes into an index of that
    metric (under "l2" a codec with residual stages stores a 4-byte norm per row in the
    index), None for the codes alone. The returned codec's `report` lists every candidate (name, codec,
    bytes_per_row read from its codes plus any stored norm, held-out relative MSE, train and
    encode seconds, or why it was skipped; "mse" and "ranking_error" both) and
    `report_winner` the chosen name."""
    x = as_float_matrix(x_train, "x_train")
    n, d = x.shape
    bytes_per_row, seed = check_positive_int(bytes_per_row, "bytes_per_row"), check_seed(seed)
    if families is not None and (isinstance(families, str) or not all(isinstance(f, str) for f in families)):
        raise TypeError(f"families must be a list of name prefixes such as ['pq', 'rq'], got {families!r}")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {sorted(OBJECTIVES)}, got {objective!r}")
    if n < 10:
        raise ValueError(f"x_train has {n} rows: fit_codec needs at least 10 (held-out scoring)")
    order = np.random.default_rng(seed).permutation(n)
    held = x[np.sort(order[:min(check_positive_int(held_out_rows, "held_out_rows"), n // 5)])]
    sample = x[np.sort(order[len(held):len(held) + check_positive_int(sample_rows, "sample_rows")])]
    max_bits = min(MAX_GROUP_BITS, int(math.log2(n / MIN_POINTS_PER_CENTROID))) if n >= 2 * MIN_POINTS_PER_CENTROID else 1
    pool = [c for c in candidates(d, bytes_per_row, metric, max_bits, check_positive_int(beam, "beam"))
            if families is None or any(c.name.startswith(f) for f in families)]
    if not pool:
        raise ValueError(f"no candidate fits {bytes_per_row} bytes per row for d={d} (metric {metric!r})")
    if not max_work > 0:
        raise ValueError(f"max_work must be positive, got {max_work!r}")
    for candidate in tqdm(pool, desc=f"fit_codec {bytes_per_row} B", disable=None if progress is None else not progress):
        work = training_work(candidate, len(sample), d)
        candidate.result.update({"name": candidate.name, "skipped": f"training work {work:.3g} (rows x d x codewords "
                                 f"of its residual stages x (1 + update rounds)) is over max_work={max_work:.3g}"} if work > max_work
                                else _score(candidate, d, sample, held, metric, seed, objective))
    scored = [c for c in pool if "mse" in c.result]
    if not scored:
        raise ValueError("every candidate failed: " + "; ".join(f"{c.name}: {c.result['skipped']}" for c in pool))
    best = min(scored, key=lambda c: c.result[OBJECTIVES[objective]])
    codec = _build(best, d, sample, seed, objective).train(x)
    codec.report = [{k: v for k, v in c.result.items() if k not in ("allocate", "plan", "residual")}
                    for c in pool]
    codec.report_winner = best.name
    return codec


def _score(candidate: Candidate, d: int, sample: np.ndarray, held: np.ndarray, metric: str | None,
           seed: int, objective: str) -> dict[str, Any]:
    """Train a candidate on `sample`, score it on `held`: the report row."""
    with warnings.catch_warnings(record=True) as caught:  # the sample is smaller than x_train
        warnings.simplefilter("always")
        try:
            start = time.perf_counter()
            codec = _build(candidate, d, sample, seed, objective).train(sample)
            trained = time.perf_counter()
            codes = codec.encode(held)
            encoded = time.perf_counter()
        except ValueError as err:
            return {"name": candidate.name, "skipped": str(err)}
    norm = NORM_BYTES if metric == "l2" and codec.per_row_norm else 0
    decoded = codec.decode(codes)
    return {"name": candidate.name, "codec": repr(codec), "bytes_per_row": codes.shape[1] + norm,
            "code_bytes": codes.shape[1], "norm_bytes": norm, "shared_bytes": codec.codebook_bytes(),
            "mse": relative_mse(held, decoded), "ranking_error": relative_ip_error(held, decoded, held),
            "train_s": trained - start, "encode_s": encoded - trained,
            "warnings": sorted({str(w.message) for w in caught})}


@register("FitCodec")
class FitCodec(Codec):
    """A codec chosen at training time: `train(x)` returns `fit_codec(x, bytes_per_row,
    metric, **options)`'s winner, which an index then keeps (factory token "Auto<B>").
    Untrained, it only states the budget: code_size = bytes_per_row."""

    def __init__(self, d: int, bytes_per_row: int, metric: str | None = "l2", **options: Any):
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        self.d = check_positive_int(d, "d")
        self.code_size = self.bytes_per_row = check_positive_int(bytes_per_row, "bytes_per_row")
        self.metric, self.options = metric, options

    is_trained = property(lambda self: False)
    per_row_norm = property(lambda self: False)

    def train(self, x: np.ndarray) -> QETQuantizer:
        return fit_codec(x, self.bytes_per_row, self.metric, **self.options)

    def encode(self, x: np.ndarray) -> np.ndarray:
        self._check_trained()

    def decode(self, codes: np.ndarray) -> np.ndarray:
        self._check_trained()

    def lookup_units(self) -> LookupUnits | None:
        self._check_trained()

    def codebook_bytes(self) -> int:
        return 0

    def __repr__(self) -> str:
        return f"FitCodec(d={self.d}, bytes_per_row={self.bytes_per_row}, metric={self.metric!r})"

    def _state(self) -> tuple[dict, dict[str, np.ndarray]]:
        return {"d": self.d, "bytes_per_row": self.bytes_per_row, "metric": self.metric,
                "options": self.options}, {}

    @classmethod
    def _from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "FitCodec":
        return cls(meta["d"], meta["bytes_per_row"], meta["metric"], **meta["options"])
