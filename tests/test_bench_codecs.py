"""The codec comparison behind benchmarks/bench_codecs.py: codes built to fit a budget, bytes
read from the codes, caps and skips reported, the per-budget summary, and the report files."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import faiss
import numpy as np
import pytest

import qetvec
from qetvec.bench.codec_adapters import NormStoredCodec
from qetvec.bench.methods import build_codec
from qetvec.bench.report import budget_rows, write_reports
from qetvec.bench.run import run_bounds, run_codecs
from qetvec.cli import _parser, main
from qetvec.evaluation import relative_mse

# TurboQuant's MSE per unit vector, ||u - u_hat||^2, at 1-4 bits per element (Zandieh et al.
# 2025, Theorem 1's table: 0.36, 0.117, 0.03, 0.009)
TURBOQUANT_MSE = {1: 0.36, 2: 0.117, 3: 0.03, 4: 0.009}


def _rows(rng, n: int, d: int) -> np.ndarray:
    """Correlated Gaussian rows with unequal scales."""
    return (rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) * 0.3).astype(np.float32)


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_turboquant_with_stored_norm_meets_the_paper(bits, rng):
    """Random rotation + SQtqmse on x/|x|, the norm stored as float16: the error per unit vector
    is TurboQuant's published D_mse, whatever the rows' norms."""
    x = rng.standard_normal((20000, 128)).astype(np.float32) * rng.uniform(0.5, 20, (20000, 1)).astype(np.float32)
    codec, _ = build_codec(f"sqtqmse{bits}-norm", 128, 200)
    codec.train(x[:5000])
    codes = codec.sa_encode(x[5000:])
    assert codes.shape == (15000, 16 * bits + 2) and codes.dtype == np.uint8
    err = ((x[5000:] - codec.sa_decode(codes)) ** 2).sum(1) / (x[5000:] ** 2).sum(1)
    assert err.mean() == pytest.approx(TURBOQUANT_MSE[bits], rel=0.08)


def test_norm_stored_codec_layout(rng):
    """Inner code of x/|x| first, then |x| as little-endian float16; decode = inner decode * norm."""
    x = _rows(rng, 3000, 16)
    x[5] = 0
    inner = faiss.index_factory(16, "SQ8")
    codec = NormStoredCodec(inner)
    codec.train(x)
    codes = codec.sa_encode(x)
    norms = np.linalg.norm(x, axis=1)
    unit = x / np.maximum(norms, 1e-30)[:, None]
    np.testing.assert_array_equal(codes[:, :16], inner.sa_encode(unit))
    np.testing.assert_array_equal(codes[:, 16:].copy().view("<f2")[:, 0], norms.astype(np.float16))
    expected = inner.sa_decode(inner.sa_encode(unit)) * norms.astype(np.float16).astype(np.float32)[:, None]
    np.testing.assert_allclose(codec.sa_decode(codes), expected, rtol=1e-6)
    assert not codec.sa_decode(codes[5:6]).any()
    with pytest.raises(ValueError, match="does not fit the float16 norm"):
        codec.sa_encode(x * 1e5)


METHODS = ["pq", "rq", "sqtqmse2", "sqtqmse2-norm", "eden2", "rabitq", "sq4", "sq8", "auto"]


@pytest.fixture(scope="module")
def measured_run() -> tuple[list[dict], np.ndarray]:
    """(rows, held-out rows) of one run of METHODS at 4 and 8 B on d = 16, rq capped at 500
    training rows at 8 B, pq skipped at 4 B."""
    x = _rows(np.random.default_rng(7), 4000, 16)
    rows = run_codecs(METHODS, [4, 8], x[:3000], x[3000:], encode_rate=False, train_rows={"rq@8": 500},
                      skip={"pq@4": "measured too slow"})
    return rows, x[3000:]


def test_runner_fits_every_code_to_its_budgets(measured_run):
    rows, _ = measured_run
    measured = {(r["method"], r["target_bytes"]): r for r in rows if "skipped" not in r}
    skipped = {(r["method"], r["target_bytes"]): r["skipped"] for r in rows if "skipped" in r}
    assert skipped[("pq", 4)] == "measured too slow"
    assert "sq8: FAISS SQ8 needs 16 bytes/row for d=16, more than 8" in skipped[("sq8", 8)]
    assert "more than 4" in skipped[("rabitq", 4)]  # RaBitQ: 2 + 8 bytes of factors = 10 > 8 too
    assert ("rabitq", 8) in skipped
    for (method, size), row in measured.items():
        assert row["bytes_per_row"] <= size and row["bits_per_row"] == 8 * row["bytes_per_row"]
        assert 0 < row["mse"] < 2 and row["train_s"] >= 0
    # fixed-size codes are trained once, at the smallest budget they fit
    assert measured[("sqtqmse2", 4)]["bytes_per_row"] == 4 and ("sqtqmse2", 8) not in measured
    assert measured[("sqtqmse2-norm", 8)]["bytes_per_row"] == 6 and ("sqtqmse2-norm", 4) in skipped
    assert measured[("sq4", 8)]["spec"] == "SQ4" and "EDEN2 needs 12 bytes/row" in skipped[("eden2", 8)]
    assert measured[("rq", 8)]["n_train"] == 500 and measured[("rq", 4)]["n_train"] == 3000
    assert measured[("pq", 8)]["spec"] == "PQ8x8"
    auto = measured[("auto", 8)]  # fit_codec's winner, and every candidate it measured
    assert auto["winner"] in {r["name"] for r in auto["fit_report"] if "mse" in r}
    assert "pq" in {r["name"] for r in auto["fit_report"]}
    assert auto["bytes_per_row"] <= 8 and auto["mse"] <= 1.1 * measured[("pq", 8)]["mse"]
    assert all(r["mse_meaningful"] for r in measured.values())


def test_rabitq_is_reported_but_marked(rng):
    x = _rows(rng, 3000, 16)
    rows = run_codecs(["rabitq"], [10], x[:2000], x[2000:], encode_rate=False)
    assert rows[0]["bytes_per_row"] == 10 and rows[0]["mse_meaningful"] is False
