"""Transform coding of a matrix under a whole-matrix byte budget, every byte counted.

    x_hat = 2**e (mean + coefficients_hat @ B)   (transposed back when the columns were coded)

    e             int16 (1,): the exponent that brings max |x| into [0.5, 1); everything
                  else codes x * 2**-e, so any finite float32 matrix keeps float16 levels,
                  float32 steps and means in range, and a power-of-two scale of x is free
    mean          float32 (d,), the column means of the coded (scaled) matrix
    B             the transform's inverse (`TransformSpec.kind`):
        "none"      identity
        "random"    a seeded Haar-random rotation (`qetvec.transform.random_rotation`):
                    free but for an 8-byte checksum that refuses a rebuild that differs
        "hadamard"  the seeded randomized Hadamard transform (rows padded to a power of two)
        "pca"       the principal axes, stored as quantized Householder reflectors
                    (`qetvec.transform.householder_reflectors`): the k-th gets
                    round(log2(rms_k / step) + precision) bits per entry (its coefficient's
                    rate plus a margin), the axes below 2 bits none; the rest of the space is
                    coded in the complement basis the reflectors leave
    coefficients  entropy-coded (`entropy_coded`) or fixed-rate (`fixed_rate`)

`fit_transform_coded` picks the quantizer's rate (the entropy coder's step by bisection on the
bytes it will write, or the fixed-rate allocation) so that `nbytes` fits the budget; the
range coder's real output is checked against the budget before the result is returned.

On disk (`qetvec.write_index`) the object takes `nbytes` plus the file's header and
checksum, at most FILE_OVERHEAD_BYTES.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from qetvec.io import register
from qetvec.matrix import entropy_coded, fixed_rate
from qetvec.matrix.entropy_coded import EntropyCodedCoefficients, EntropySettings
from qetvec.matrix.fixed_rate import FixedRateCoefficients, FixedRateSettings
from qetvec.transform import (RandomizedHadamard, householder_matrix, householder_reflectors,
                              principal_axes, random_rotation)

KINDS = ("none", "random", "hadamard", "pca")
FILE_OVERHEAD_BYTES = 2048  # 20-byte prefix, 32-byte digest, JSON header (array table, settings)
MIN_AXIS_BITS = 2
MAX_AXIS_BITS = 16
STEP_TOLERANCE = 1.002  # bisection stops when the bracket's ratio is below this
PRELIMINARY_SHARE = 0.9  # the budget share assumed for the coefficients when sizing the axes


@dataclass(frozen=True)
class TransformSpec:
    """kind (KINDS); seed (random, hadamard); precision: the PCA axes' margin in bits over
    their coefficients' rate; transposed: code x.T (the side whose covariance has full rank
    when x has fewer rows than columns)."""

    kind: str = "pca"
    seed: int = 0
    precision: float = 6.0
    transposed: bool = False

    def label(self) -> str:
        name = f"pca+{self.precision:g}" if self.kind == "pca" else self.kind
        return f"{name}{' (transposed)' if self.transposed else ''}"


class _Basis:
    """The transform of one coded matrix: forward (n, d) -> (n, d_out), inverse back."""

    def __init__(self, spec: TransformSpec, d: int, reflectors: list[np.ndarray] | None = None):
        self.spec, self.d = spec, d
        self.reflectors = reflectors
        self.matrix = None  # (d, d_out): coefficients = centred @ matrix, x = coefficients @ matrix.T
        self.hadamard = RandomizedHadamard(d, spec.seed) if spec.kind == "hadamard" else None
        if spec.kind == "random":
            self.matrix = random_rotation(d, spec.seed).T
        elif spec.kind == "pca":
            self.matrix = householder_matrix(reflectors, d)

    @property
    def d_out(self) -> int:
        return self.hadamard.d_out if self.hadamard is not None else self.d

    def forward(self, centred: np.ndarray) -> np.ndarray:
        if self.hadamard is not None:
            return self.hadamard.apply(centred)
        return centred if self.matrix is None else centred @ self.matrix

    def inverse(self, coefficients: np.ndarray) -> np.ndarray:
        if self.hadamard is not None:
            return self.hadamard.invert(coefficients)
        return coefficients if self.matrix is None else coefficients @ self.matrix.T

    def checksum(self) -> float:
        """A fixed weighted sum of the random rotation's entries (8 bytes stored)."""
        return float((self.matrix * np.arange(1, self.matrix.size + 1).reshape(self.matrix.shape)).sum())

    def state(self) -> dict[str, np.ndarray]:
        if self.spec.kind == "random":
            return {"rotation_checksum": np.array([self.checksum()], np.float64)}
        if self.spec.kind != "pca":
            return {}
        bits = np.array([_reflector_bits(v) for v in self.reflectors], np.uint8)
        runs = [v + 2 ** (int(b) - 1) for v, b in zip(self.reflectors, bits)]
        return {"axis_bits": bits, "axes": _pack_runs(runs, bits.astype(np.int64))}

    @classmethod
    def from_state(cls, spec: TransformSpec, d: int, arrays: dict[str, np.ndarray]) -> "_Basis":
        if spec.kind not in KINDS:
            raise ValueError(f"transform kind must be one of {KINDS}, got {spec.kind!r}")
        if spec.kind != "pca":
            basis = cls(spec, d)
            if spec.kind == "random":
                stored = arrays["rotation_checksum"]
                if stored.dtype != np.float64 or stored.shape != (1,) or not math.isclose(
                        float(stored[0]), basis.checksum(), rel_tol=1e-9, abs_tol=1e-6):
                    raise ValueError(f"rotation_checksum: the random rotation rebuilt from seed {spec.seed} "
                                     "differs from the one the matrix was coded with (another numpy?)")
            return basis
        bits = arrays["axis_bits"]
        if bits.dtype != np.uint8 or bits.ndim != 1 or len(bits) > d or \
                ((bits < MIN_AXIS_BITS) | (bits > MAX_AXIS_BITS)).any():
            raise ValueError(f"axis_bits must be uint8 (p <= {d},) in [{MIN_AXIS_BITS}, {MAX_AXIS_BITS}]")
        runs = _unpack_runs(arrays["axes"], d - np.arange(len(bits)), bits.astype(np.int64), "axes")
        reflectors = [v - 2 ** (int(b) - 1) for v, b in zip(runs, bits)]
        if any(not v.any() for v in reflectors):
            raise ValueError("axes: a Householder reflector is zero")
        return cls(spec, d, reflectors)


def _reflector_bits(v: np.ndarray) -> int:
    """Bits of a quantized reflector: its largest magnitude is 2**(bits - 1) - 1."""
    return int(np.abs(v).max()).bit_length() + 1


def _pack_runs(runs: list[np.ndarray], widths: np.ndarray) -> np.ndarray:
    """Unsigned values in runs (run r: (len_r,) int64, each below 2**widths[r]) bit-packed LSB
    first, run after run, with no padding between values."""
    bits = [((run[:, None] >> np.arange(w, dtype=np.int64)) & 1).ravel() for run, w in zip(runs, widths)]
    flat = np.concatenate(bits).astype(np.uint8) if bits else np.zeros(0, np.uint8)
    return np.packbits(flat, bitorder="little")


def _unpack_runs(packed: np.ndarray, sizes: np.ndarray, widths: np.ndarray, name: str) -> list[np.ndarray]:
    """Inverse of `_pack_runs` given each run's length and width; ValueError naming the
    array if its size is wrong."""
    total = int((sizes * widths).sum())
    if packed.dtype != np.uint8 or packed.shape != ((total + 7) // 8,):
        raise ValueError(f"{name} must be uint8 ({(total + 7) // 8},), got {packed.dtype} {packed.shape}")
    bits = np.unpackbits(packed, count=total, bitorder="little").astype(np.int64)
    runs, start = [], 0
    for size, w in zip(sizes, widths):
        chunk = bits[start:start + size * w].reshape(size, w)
        runs.append(chunk @ (1 << np.arange(w, dtype=np.int64)))
        start += size * w
    return runs


CoderSettings = EntropySettings | FixedRateSettings
Coefficients = EntropyCodedCoefficients | FixedRateCoefficients


@register("TransformCodedMatrix")
class TransformCodedMatrix:
    """A matrix (n, d) coded by `fit_transform_coded`; `decode()` restores an approximation,
    `decode(start, stop)` rows start..stop-1 (an entropy-coded matrix decodes only the blocks
    of rows that hold them; a transposed one decodes everything)."""

    def __init__(self, shape: tuple[int, int], spec: TransformSpec, exponent: int, mean: np.ndarray,
                 basis: _Basis, coefficients: Coefficients):
        self.shape = (int(shape[0]), int(shape[1]))
        self.spec, self.exponent, self.mean = spec, int(exponent), mean
        self.basis, self.coefficients = basis, coefficients

    @property
    def method(self) -> str:
        coder = self.coefficients.settings
        return f"{self.spec.label()} + {coder.label()}"

    @property
    def nbytes(self) -> int:
        """Exact bytes stored: every array `write_index` writes."""
        return sum(a.nbytes for a in self._state()[1].values())

    def decode(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows start..stop-1 (default: all) of the approximation, float32 (stop - start, d)."""
        n = self.shape[0]
        stop = n if stop is None else stop
        if not 0 <= start <= stop <= n:
            raise ValueError(f"rows {start}..{stop} are not within 0..{n}")
        if self.spec.transposed:
            return self._decode_coded(0, None).T[start:stop].astype(np.float32)
        return self._decode_coded(start, stop).astype(np.float32)

    def _decode_coded(self, start: int, stop: int | None) -> np.ndarray:
        return np.ldexp(self.mean + self.basis.inverse(self.coefficients.decode(start, stop)), self.exponent)

    def __repr__(self) -> str:
        return f"TransformCodedMatrix(shape={self.shape}, method={self.method!r}, nbytes={self.nbytes})"

    def _state(self) -> tuple[dict, dict[str, np.ndarray]]:
        coder_meta, coder_arrays = self.coefficients.state()
        meta = {"shape": list(self.shape), "transform": self.spec.kind, "seed": self.spec.seed,
                "precision": self.spec.precision, "transposed": self.spec.transposed,
                "coder": "entropy" if isinstance(self.coefficients, EntropyCodedCoefficients) else "fixed",
                "coefficients": coder_meta}
        arrays = {"scale_exponent": np.array([self.exponent], np.int16), "mean": self.mean, **self.basis.state(),
                  **{f"coefficients.{k}": v for k, v in coder_arrays.items()}}
        return meta, arrays

    @classmethod
    def _from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "TransformCodedMatrix":
        spec = TransformSpec(meta["transform"], meta["seed"], meta["precision"], meta["transposed"])
        n, d = meta["shape"]
        coded_n, coded_d = (d, n) if spec.transposed else (n, d)
        exponent = arrays["scale_exponent"]
        if exponent.dtype != np.int16 or exponent.shape != (1,) or abs(int(exponent[0])) > 160:
            raise ValueError(f"scale_exponent must be int16 (1,) within +-160, got {exponent!r}")
        mean = arrays["mean"]
        if mean.dtype != np.float32 or mean.shape != (coded_d,) or not np.isfinite(mean).all():
            raise ValueError(f"mean must be finite float32 ({coded_d},), got {mean.dtype} {mean.shape}")
        basis = _Basis.from_state(spec, coded_d, arrays)
        coder_arrays = {k.split(".", 1)[1]: arrays[k] for k in list(arrays) if k.startswith("coefficients.")}
        reader = {"entropy": EntropyCodedCoefficients, "fixed": FixedRateCoefficients}.get(meta["coder"])
        if reader is None:
            raise ValueError(f"coder must be 'entropy' or 'fixed', got {meta['coder']!r}")
        coefficients = reader.from_state(meta["coefficients"], coder_arrays)
        if coefficients.n != coded_n or coefficients.q != basis.d_out:
            raise ValueError(f"coefficients are ({coefficients.n}, {coefficients.q}), the transform "
                             f"needs ({coded_n}, {basis.d_out})")
        return cls((n, d), spec, int(exponent[0]), mean, basis, coefficients)


class PreparedMatrix:
    """One orientation of a matrix, centred, with what every transform-coded candidate of a
    search shares: float32 column means, and (computed once, on first use) the principal axes
    and the preliminary step of each budget."""

    def __init__(self, x: np.ndarray, transposed: bool):
        self.exponent = math.frexp(float(np.abs(x).max(initial=0.0)))[1]  # max |x| = f 2**e, f in [0.5, 1)
        coded = np.ldexp(np.ascontiguousarray(x.T if transposed else x, dtype=np.float64), -self.exponent)
        self.shape, self.transposed = x.shape, transposed
        self.mean = coded.mean(axis=0).astype(np.float32)
        self.centred = coded - self.mean
        self._steps: dict[float, float | None] = {}

    @functools.cached_property
    def pca(self) -> tuple[np.ndarray, np.ndarray]:
        """(axes (d, d) float64 as rows, variances (d,) float64), largest variance first."""
        return principal_axes(self.centred)

    def preliminary_step(self, budget_bits: float) -> float | None:
        """The step of a scalar entropy coder on the unquantized PCA coefficients with
        PRELIMINARY_SHARE of budget_bits (None if that cannot hold its tables)."""
        if budget_bits not in self._steps:
            axes = self.pca[0]
            self._steps[budget_bits] = solve_step(self.centred @ axes.T, PRELIMINARY_SHARE * budget_bits,
                                                  EntropySettings(states=0))
        return self._steps[budget_bits]


def fit_transform_coded(x: np.ndarray, budget_bytes: int, spec: TransformSpec, coder: CoderSettings,
                        prepared: PreparedMatrix | None = None) -> TransformCodedMatrix:
    """Code x (n, d) float32 with the transform `spec` and the coefficient coder `coder` in at
    most budget_bytes bytes, everything counted. ValueError if the budget cannot hold the
    transform and the coder's fixed arrays. `prepared`: x in spec's orientation, shared by
    the candidates of a search."""
    prepared = PreparedMatrix(x, spec.transposed) if prepared is None else prepared
    if prepared.transposed != spec.transposed:
        raise ValueError("prepared matrix and spec disagree on the orientation")
    d = prepared.centred.shape[1]
    fixed_bits = 8 * (prepared.mean.nbytes + 2)  # the mean and the scale exponent
    basis = _pca_basis(spec, prepared, 8 * budget_bytes - fixed_bits) if spec.kind == "pca" else _Basis(spec, d)
    y = basis.forward(prepared.centred)
    budget_bits = 8 * budget_bytes - fixed_bits - 8 * sum(a.nbytes for a in basis.state().values())
    if isinstance(coder, FixedRateSettings):
        coefficients = fixed_rate.fit(y, budget_bits, coder)
    else:
        coefficients = _fit_entropy(y, budget_bits, coder)
    result = TransformCodedMatrix(prepared.shape, spec, prepared.exponent, prepared.mean, basis, coefficients)
    if result.nbytes > budget_bytes:  # every coder sizes itself to its share; a failure here is a bug
        raise AssertionError(f"{result.method}: {result.nbytes} bytes over the budget {budget_bytes}")
    return result


def _pca_basis(spec: TransformSpec, prepared: PreparedMatrix, budget_bits: float) -> _Basis:
    """Householder PCA basis: axis k gets round(log2(rms_k / step) + precision) bits, step
    being `PreparedMatrix.preliminary_step`; axes that would get fewer than 2 bits are not stored."""
    axes, variances = prepared.pca
    step = prepared.preliminary_step(budget_bits)
    if step is None:
        raise ValueError("the budget cannot hold the coefficients' tables")
    with np.errstate(divide="ignore"):
        bits = np.rint(0.5 * np.log2(variances / step ** 2) + spec.precision)
    bits = np.clip(np.nan_to_num(bits, neginf=0), 0, MAX_AXIS_BITS).astype(np.int64)
    p = int(np.argmin(bits >= MIN_AXIS_BITS)) if (bits < MIN_AXIS_BITS).any() else len(bits)
    return _Basis(spec, len(axes), householder_reflectors(axes, bits[:p]))


def solve_step(y: np.ndarray, budget_bits: float, settings: EntropySettings,
               guesses: tuple[float, ...] = ()) -> float | None:
    """The smallest step (float32, to STEP_TOLERANCE) whose estimated bits, plus the range
    coder's flush per block, fit budget_bits; None if even a step that drops every
    component does not. `guesses` narrow the starting bracket (the bits fall as the step grows)."""
    blocks = -(-len(y) // settings.block_rows)
    allowed = budget_bits - entropy_coded.RANGE_CODER_FLUSH_BITS * blocks

    rms = np.sqrt((y ** 2).mean(axis=0))

    def excess(step: float) -> float:  # > 0: does not fit
        return entropy_coded.quantize(y, step, settings, False, rms).estimated_bits - allowed

    ceiling = float(rms.max(initial=0.0) or 1.0) / settings.drop * 1.01  # no component coded
    if excess(ceiling) > 0:
        return None
    lo, hi = _high_rate_step(rms, len(y), allowed) / 8, ceiling
    for guess in sorted((*guesses, 64 * lo), reverse=True):
        if guess >= hi:
            continue
        if excess(guess) <= 0:
            hi = guess
        else:
            lo = guess
            break
    while (f_lo := excess(lo)) <= 0:  # the high-rate guess was too pessimistic
        lo, hi = lo / 8, lo
    f_hi = excess(hi)
    side = 0
    while hi / lo > STEP_TOLERANCE:  # excess(lo) > 0 >= excess(hi); Illinois regula falsi on log step
        t = f_lo / (f_lo - f_hi) if f_lo > f_hi else 0.5
        mid = lo * (hi / lo) ** min(max(t, 0.01), 0.99)
        f_mid = excess(mid)
        if f_mid > 0:
            lo, f_lo = mid, f_mid
            f_hi, side = (f_hi / 2, -1) if side == -1 else (f_hi, -1)
        else:
            hi, f_hi = mid, f_mid
            f_lo, side = (f_lo / 2, 1) if side == 1 else (f_lo, 1)
    return float(np.float32(hi))


def _high_rate_step(rms: np.ndarray, n: int, bits: float) -> float:
    """The step at which n rows of Gaussian components of these RMS values (q,) would take
    `bits` bits entropy-coded at high rate: n * sum_j max(0, log2(rms_j / step) + 2.05)
    (h(N(0, s^2)) = log2(s sqrt(2 pi e)) = log2 s + 2.05), by bisection on log2 step."""
    live = np.log2(rms[rms > 0]) + 2.05
    if not len(live) or bits <= 0:
        return float(rms.max(initial=1.0))
    lo, hi = live.min() - 64, live.max()
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if n * np.maximum(live - mid, 0).sum() > bits else (lo, mid)
    return float(2.0 ** hi)


def _fit_entropy(y: np.ndarray, budget_bits: float, settings: EntropySettings) -> EntropyCodedCoefficients:
    """Entropy-coded coefficients at the smallest step whose real output fits budget_bits. A
    trellis coder starts its search from the scalar coder's step (about twice its own)."""
    guesses: tuple[float, ...] = ()
    if settings.states:
        scalar = solve_step(y, budget_bits, EntropySettings(0, settings.classes_per_octave, settings.drop,
                                                             settings.centroids, settings.block_rows))
        guesses = (0.4 * scalar, 0.6 * scalar) if scalar is not None else ()
    step = solve_step(y, budget_bits, settings, guesses)
    if step is None:
        raise ValueError("the budget cannot hold the coefficients' tables")
    n, q = y.shape
    while True:
        coded = entropy_coded.encode(entropy_coded.quantize(y, step, settings), step, n, q, settings)
        if 8 * coded.nbytes() <= budget_bits:
            return coded
        step = float(np.float32(step * STEP_TOLERANCE))
