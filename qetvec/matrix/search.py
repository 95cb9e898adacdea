"""The budget search of `compress_matrix(method="auto")`: every option, one budget, the best.

Candidates, each coded in full (its bytes are what `write_index` would write, never over
the budget) and scored by relative MSE on the matrix itself:

    qet            QET at the reference's defaults (tree depths 3 / 0, 70 / 30 %, 10-bit
                   codebooks, M = `default_groups(d)`)
    qet-no-tree    the same without the tree (depths 0 / 0)
    transform coding (`transform_coded`), on the side with more rows (x itself, or x.T
    when x has fewer rows than columns: the side whose covariance has full rank):
        screen     every transform (none, random, hadamard, pca at precisions
                   PCA_PRECISIONS) with the scalar entropy coder
        refine     the SCREENED_TRANSFORMS best transforms with every other coder:
                   entropy-coded TCQ, fixed-rate Lloyd-Max, fixed-rate TCQ

`search` returns the best and the report: one row per candidate (method, nbytes, mse,
seconds, or why it was skipped), best first.
"""
from __future__ import annotations

import importlib
import time
import warnings
from typing import Any, Callable

import numpy as np

from qetvec._optional import require
from qetvec.evaluation import relative_mse
from qetvec.matrix.entropy_coded import EntropySettings
from qetvec.matrix.fixed_rate import FixedRateSettings
from qetvec.matrix.qet import compress_qet, default_groups
from qetvec.matrix.transform_coded import (CoderSettings, PreparedMatrix, TransformSpec,
                                           fit_transform_coded)

PCA_PRECISIONS = (5.0, 6.5, 8.0)
SCREENED_TRANSFORMS = 2
TRELLIS_STATES = 8
CODERS: dict[str, CoderSettings] = {
    "ecsq": EntropySettings(states=0),
    "ectcq": EntropySettings(states=TRELLIS_STATES),
    "lloyd-max": FixedRateSettings(states=0),
    "tcq": FixedRateSettings(states=TRELLIS_STATES),
}
QET_METHODS = {"qet": dict(levels=(3, 0), budget_split=(0.7, 0.3), codebook_bits=10),
               "qet-no-tree": dict(levels=(0, 0), budget_split=(0.7, 0.3), codebook_bits=10)}
METHODS = ("auto", *QET_METHODS, *CODERS)


def transform_specs(n: int, d: int, seed: int) -> list[TransformSpec]:
    """The transforms searched for an (n, d) matrix, on its side with more rows."""
    transposed = n < d
    return [TransformSpec(kind, seed, transposed=transposed) for kind in ("none", "random", "hadamard")] + \
        [TransformSpec("pca", seed, precision, transposed) for precision in PCA_PRECISIONS]


def search(x: np.ndarray, budget_bytes: int, methods: tuple[str, ...], m: int | None = None,
           seed: int = 0, niter: int = 25, block_rows: int = 256) -> tuple[Any, list[dict[str, Any]]]:
    """(best compressed matrix, report rows best first) over the candidates of `methods`
    (METHODS but "auto"). ValueError if none fits the budget."""
    report, best = [], None
    n, d = x.shape

    def attempt(label: str, build: Callable[[], Any]) -> None:
        nonlocal best
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # few rows per codeword is what a budget search meets
                result = build()
        except ValueError as err:
            report.append({"method": label, "skipped": str(err)})
            return
        mse = relative_mse(x, result.decode())
        report.append({"method": label, "nbytes": result.nbytes, "mse": mse,
                       "seconds": time.perf_counter() - start})
        if best is None or mse < best[0]:
            best = (mse, result)

    for name in methods:
        if name in QET_METHODS:
            groups = default_groups(d) if m is None else m
            attempt(f"{name} (M{groups})",
                    lambda name=name, groups=groups: compress_qet(x, budget_bytes, groups, seed=seed,
                                                                  niter=niter, **QET_METHODS[name]))
    coders = [c for c in CODERS if c in methods]
    if any(isinstance(CODERS[c], EntropySettings) for c in coders) and not _entropy_installed():
        if len(methods) == 1:
            require("constriction", "entropy")  # raises, naming the extra
        report.append({"method": "ecsq / ectcq", "skipped": 'needs the entropy extra: pip install "qetvec[entropy]"'})
        coders = [c for c in coders if not isinstance(CODERS[c], EntropySettings)]
    if coders:
        _search_transforms(x, budget_bytes, coders, seed, block_rows, attempt, report)
    if best is None:
        raise ValueError(f"budget_bytes={budget_bytes} is too small for every method: "
                         + "; ".join(f"{r['method']}: {r['skipped']}" for r in report))
    report.sort(key=lambda r: r.get("mse", np.inf))
    return best[1], report


def _entropy_installed() -> bool:
    try:
        importlib.import_module("constriction")
    except ImportError:
        return False
    return True


def _search_transforms(x: np.ndarray, budget_bytes: int, coders: list[str], seed: int, block_rows: int,
                       attempt: Callable, report: list[dict[str, Any]]) -> None:
    """Screen the transforms with the first coder, then run the other coders on the best
    SCREENED_TRANSFORMS of them (`attempt` records each candidate in `report`)."""
    specs = transform_specs(*x.shape, seed)
    prepared = PreparedMatrix(x, specs[0].transposed)

    def run(spec: TransformSpec, coder: str) -> None:
        settings = CODERS[coder]
        if isinstance(settings, EntropySettings):
            settings = EntropySettings(settings.states, settings.classes_per_octave, settings.drop,
                                       settings.centroids, block_rows)
        attempt(f"{spec.label()} + {coder}",
                lambda: fit_transform_coded(x, budget_bytes, spec, settings, prepared))

    first = len(report)
    for spec in specs:
        run(spec, coders[0])
    screened = sorted((r.get("mse", np.inf), i) for i, r in enumerate(report[first:]))
    for mse, i in screened[:SCREENED_TRANSFORMS]:
        if np.isfinite(mse):
            for coder in coders[1:]:
                run(specs[i], coder)
