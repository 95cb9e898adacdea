"""The audit behind `qetvec audit`: do the paper's claims reproduce, and does the tree pay?

Matrix mode (the paper's QEM setting): one byte budget for the whole matrix, codebooks
included, quality measured on the compressed matrix itself (as QEM defines it). Every QET
variant goes through `compress_matrix`, so swaps, stages and codebook quantization are
switched on and off in one implementation:

    pq            1 stage, no tree, float32 codebooks         (the paper's PQ baseline)
    opq           pq after a learned rotation (faiss.OPQMatrix; its d x d float32 counted)
    qet           reference defaults: depths (3, 0), 70% / 30%, 10-bit codebooks
    tree-only     pq + swap tree (depth 3)                     \\
    stages-only   pq + a residual stage (70% / 30%)             > each ingredient alone
    cq-only       pq + 10-bit codebook quantization            /
    pq+stages+cq  everything but the tree, at the reference's settings
    best-qet      the best configuration with a tree (depth 1-3 in stage 1) over SEARCH_GRID
    best-no-tree  the best configuration without one (depth 0) over the same grid
    transform     PCA + bit allocation + scalar quantization, everything counted
                  (`qetvec.bench.transform_coder`), best of 4 / 6 / 8-bit rotations

Beside each budget: the Gaussian rate-distortion bound of the matrix's covariance.
Vector mode: bytes per row fixed, codebooks shared, MSE on held-out rows (`run_codecs`).
"""
from __future__ import annotations

import itertools
from typing import Any, Callable

import faiss
import numpy as np
from tqdm.auto import tqdm

from qetvec import data
from qetvec.bench.rate_distortion import gaussian_rd_bound
from qetvec.bench.transform_coder import transform_code
from qetvec.evaluation import relative_mse
from qetvec.matrix import compress_matrix, plan_ksubs

MATRIX_METHODS: dict[str, dict[str, Any]] = {
    "pq": dict(levels=(0,), budget_split=(1.0,), codebook_bits=None),
    "qet": dict(levels=(3, 0), budget_split=(0.7, 0.3), codebook_bits=10),
    "tree-only": dict(levels=(3,), budget_split=(1.0,), codebook_bits=None),
    "stages-only": dict(levels=(0, 0), budget_split=(0.7, 0.3), codebook_bits=None),
    "cq-only": dict(levels=(0,), budget_split=(1.0,), codebook_bits=10),
    "pq+stages+cq": dict(levels=(0, 0), budget_split=(0.7, 0.3), codebook_bits=10),
}
SPLITS = [(1.0,), (0.7, 0.3), (0.5, 0.5), (0.5, 0.3, 0.2)]
CODEBOOK_BITS = [8, 10]
TREE_DEPTHS = [1, 2, 3]
ROTATION_BITS = [4, 6, 8]

OPQ_NITER = 20  # FAISS's default is 50; on d = 384 that alone took minutes per budget here
KV_LAYER, KV_TOKENS = 2, 4096


def _head(name: str) -> np.ndarray:  # layer 3, head 0, first 8,192 tokens: (8192, 32)
    x = data.load(name)
    start = (3 * 12 + 0) * (len(x) // (6 * 12))
    return x[start:start + 8192]


def _layer(name: str) -> np.ndarray:  # layer KV_LAYER, all 12 heads side by side: (4096, 384)
    return data.load(name).reshape(6, 12, -1, 32)[KV_LAYER, :, :KV_TOKENS].transpose(1, 0, 2) \
        .reshape(KV_TOKENS, 384)


def _ffn(which: str) -> np.ndarray:
    from qetvec.data import minilm
    return minilm.load_weights()[f"encoder.layer.2.{which}.dense.weight"]


# name -> (description, loader); every matrix is real data
AUDIT_MATRICES: dict[str, tuple[str, Callable[[], np.ndarray]]] = {
    "minilm-weights": ("first 8,192 weight rows (layers 0-1), 8192x384",
                       lambda: data.load("minilm-weights")[:8192]),
    "minilm-ffn-in": ("layer 2 intermediate.dense.weight, 1536x384", lambda: _ffn("intermediate")),
    "minilm-ffn-out": ("layer 2 output.dense.weight, 384x1536", lambda: _ffn("output")),
    "minilm-kcache": ("layer 3, head 0: keys of the first 8,192 tokens, 8192x32",
                      lambda: _head("minilm-kcache")),
    "minilm-vcache": ("layer 3, head 0: values of the first 8,192 tokens, 8192x32",
                      lambda: _head("minilm-vcache")),
    "minilm-kcache-layer": (f"layer {KV_LAYER}, all heads: keys of {KV_TOKENS} tokens, 4096x384",
                            lambda: _layer("minilm-kcache")),
    "minilm-vcache-layer": (f"layer {KV_LAYER}, all heads: values of {KV_TOKENS} tokens, 4096x384",
                            lambda: _layer("minilm-vcache")),
    "minilm-tokens": ("first 8,192 token embeddings, 8192x384", lambda: data.load("minilm-tokens")[:8192]),
    "glove-50": ("8,192 random rows (seed 0), 8192x50", lambda: data.split(data.load("glove-50"), (8192,), seed=0)[0]),
}


def audit_matrix(name: str) -> np.ndarray:
    """The real matrix (n, d) float32 the audit compresses for `name` (see AUDIT_MATRICES)."""
    return np.ascontiguousarray(AUDIT_MATRICES[name][1](), dtype=np.float32)


def default_groups(d: int) -> int:
    """M: the most groups of >= 4 columns that divide d (OPQ needs M | d)."""
    return max(k for k in range(1, max(1, d // 4) + 1) if d % k == 0)


def _compressed_mse(x: np.ndarray, budget: int, m: int, niter: int, **kwargs: Any) -> tuple[float, int]:
    cm = compress_matrix(x, budget, m, niter=niter, **kwargs)
    return relative_mse(x, cm.decode()), cm.nbytes


def _opq(x: np.ndarray, budget: int, m: int, niter: int) -> tuple[float, int]:
    """OPQ in matrix mode: rotation R (d x d float32, counted) then PQ on x R^T; the rotation
    is trained for the PQ that the budget affords (its codebook size, not FAISS's 256)."""
    n, d = x.shape
    ksub, = plan_ksubs(n, d, budget - 4 * d * d, m, **MATRIX_METHODS["pq"])
    pq = faiss.ProductQuantizer(d, m, max(1, int(np.log2(ksub))))  # kept alive: opq holds a pointer
    opq = faiss.OPQMatrix(d, m)
    opq.pq, opq.niter = pq, OPQ_NITER
    opq.train(x)
    cm = compress_matrix(opq.apply(x), budget - 4 * d * d, m, niter=niter, **MATRIX_METHODS["pq"])
    return relative_mse(x, opq.reverse_transform(cm.decode())), cm.nbytes + 4 * d * d


def search_grid(d: int, tree: bool) -> list[dict[str, Any]]:
    """compress_matrix settings searched for the best configuration with (tree=True: depth
    1-3 in the first stage) or without a tree: M (groups of ~4 and ~8 columns), stages and
    budget splits, 8- or 10-bit codebooks; the same grid for both."""
    m = default_groups(d)
    groups = sorted({m, max(1, m // 2)})
    depths = TREE_DEPTHS if tree else [0]
    return [dict(m=g, levels=(depth,) + (0,) * (len(split) - 1), budget_split=split, codebook_bits=cb)
            for g, split, cb, depth in itertools.product(groups, SPLITS, CODEBOOK_BITS, depths)]


def best_configuration(x: np.ndarray, budget: int, tree: bool, niter: int) -> dict[str, Any]:
    """{mse, nbytes, config} of the best `search_grid` setting that fits the budget; config
    as a short string, e.g. "M96 L3-0 split0.7-0.3 cb10"."""
    best: dict[str, Any] = {"mse": np.inf}
    for config in search_grid(x.shape[1], tree):
        try:
            mse, nbytes = _compressed_mse(x, budget, niter=niter, **config)
        except ValueError:  # the budget cannot hold this configuration
            continue
        if mse < best["mse"]:
            best = {"mse": mse, "nbytes": nbytes, "config": (
                f"M{config['m']} L{'-'.join(map(str, config['levels']))} "
                f"split{'-'.join(map(str, config['budget_split']))} cb{config['codebook_bits']}")}
    return best


def _transform(x: np.ndarray, budget: int) -> tuple[float, int, int]:
    """(mse, nbytes, rotation bits) of the best transform coder over ROTATION_BITS."""
    return min((relative_mse(x, x_hat), nbytes, bits)
               for bits in ROTATION_BITS for x_hat, nbytes in [transform_code(x, budget, bits)])


def run_matrix(name: str, bits_per_element: list[float], niter: int = 20,
               search: bool = True) -> list[dict[str, Any]]:
    """Relative MSE of every matrix-mode method at each budget (bits per matrix element)."""
    x = audit_matrix(name)
    n, d = x.shape
    m = default_groups(d)
    rows = []
    for bpe in bits_per_element:
        budget = int(bpe * n * d / 8)
        base = {"dataset": name, "shape": [n, d], "bits_per_element": bpe, "budget_bytes": budget,
                "rd_bound": gaussian_rd_bound(x, bpe)}
        methods = [*MATRIX_METHODS, "opq", "transform"] + (["best-qet", "best-no-tree"] if search else [])
        for method in tqdm(methods, desc=f"{name} @ {bpe} bits/elt", leave=False):
            row: dict[str, Any] = {**base, "method": method, "m": m}
            try:
                if method == "opq":
                    row["mse"], row["nbytes"] = _opq(x, budget, m, niter)
                elif method == "transform":
                    row["mse"], row["nbytes"], row["rotation_bits"] = _transform(x, budget)
                    row["m"] = None
                elif method.startswith("best-"):
                    best = best_configuration(x, budget, method == "best-qet", niter)
                    row.update(mse=best["mse"], nbytes=best.get("nbytes"), config=best.get("config"), m=None)
                else:
                    row["mse"], row["nbytes"] = _compressed_mse(x, budget, m, niter, **MATRIX_METHODS[method])
            except ValueError as err:
                row["skipped"] = str(err)
            rows.append(row)
    return rows


def claim_check(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (dataset, budget): QET's MSE as a percentage of the best of PQ / OPQ (the abstract
    reports 5.05% for weights, 13.33% for K cache, 11.89% for V cache); whether the tree pays
    given the same help (best-qet / best-no-tree, < 1 means it pays); the transform coder and
    the Gaussian bound beside them."""
    out = []
    for dataset, bpe in sorted({(r["dataset"], r["bits_per_element"]) for r in rows}):
        group = [r for r in rows if r["dataset"] == dataset and r["bits_per_element"] == bpe]
        mse = {r["method"]: r["mse"] for r in group if "mse" in r}
        base = min((mse[k] for k in ("pq", "opq") if k in mse), default=None)
        if base is None or "qet" not in mse:
            continue
        alone = {k: mse[k] for k in ("tree-only", "stages-only", "cq-only") if k in mse}
        row = {"dataset": dataset, "bits_per_element": bpe, "qet": mse["qet"],
               "qet_pct_of_best_pq_opq": 100 * mse["qet"] / base,
               "best_single_ingredient": min(alone, key=alone.get) if alone else None}
        if "best-qet" in mse and "best-no-tree" in mse:
            row.update(best_qet=mse["best-qet"], best_no_tree=mse["best-no-tree"],
                       tree_pays_ratio=mse["best-qet"] / mse["best-no-tree"])
        row.update(transform=mse.get("transform"), rd_bound=group[0]["rd_bound"])
        out.append(row)
    return out


def matrix_line(x: np.ndarray, bits_per_element: float, niter: int = 10) -> dict[str, float]:
    """One matrix-mode comparison for `qetvec bench`: relative MSE of QET at the reference's
    defaults, of the best no-tree configuration over a small grid (1 or 2 stages, 10-bit
    codebooks, groups of ~4 columns) and of PQ with float32 codebooks, at one budget."""
    n, d = x.shape
    budget, m = int(bits_per_element * n * d / 8), default_groups(d)
    no_tree = min(_compressed_mse(x, budget, m, niter, levels=(0,) * len(split), budget_split=split,
                                  codebook_bits=10)[0] for split in SPLITS[:2])
    return {"qet": _compressed_mse(x, budget, m, niter, **MATRIX_METHODS["qet"])[0], "no_tree": no_tree,
            "pq_float": _compressed_mse(x, budget, m, niter, **MATRIX_METHODS["pq"])[0]}
