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


class _FakeFit:
    """A stand-in for qetvec.fit_codec's result: FAISS PQ behind encode / decode, and a report."""

    def __init__(self, x: np.ndarray, bytes_per_row: int, metric: str | None) -> None:
        assert metric is None  # the code alone, as sa_encode counts
        self.pq = faiss.index_factory(x.shape[1], f"PQ{bytes_per_row}x8")
        self.pq.train(x)
        self.report = [{"candidate": f"PQ{bytes_per_row}x8", "mse": np.float64(0.5)}]
        self.report_winner = "pq"

    def encode(self, x):
        return self.pq.sa_encode(x)

    def decode(self, codes):
        return self.pq.sa_decode(codes)


METHODS = ["pq", "rq", "sqtqmse2", "sqtqmse2-norm", "eden2", "rabitq", "sq4", "sq8", "auto"]


@pytest.fixture(scope="module")
def measured_run() -> tuple[list[dict], np.ndarray]:
    """(rows, held-out rows) of one run of METHODS at 4 and 8 B on d = 16, rq capped at 500
    training rows at 8 B, pq skipped at 4 B."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(qetvec, "fit_codec", _FakeFit, raising=False)
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
    auto = measured[("auto", 8)]
    assert auto["winner"] == "pq" and auto["fit_report"] == [{"candidate": "PQ8x8", "mse": 0.5}]
    assert auto["mse"] == pytest.approx(measured[("pq", 8)]["mse"], rel=0.3)
    assert all(r["mse_meaningful"] for r in measured.values())


def test_rabitq_is_reported_but_marked(rng):
    x = _rows(rng, 3000, 16)
    rows = run_codecs(["rabitq"], [10], x[:2000], x[2000:], encode_rate=False)
    assert rows[0]["bytes_per_row"] == 10 and rows[0]["mse_meaningful"] is False


def test_auto_is_skipped_without_fit_codec(rng, monkeypatch):
    monkeypatch.delattr(qetvec, "fit_codec", raising=False)
    x = _rows(rng, 600, 8)
    rows = run_codecs(["auto"], [4], x[:400], x[400:], encode_rate=False)
    assert rows == [{"method": "auto", "target_bytes": 4, "skipped": "auto: this qetvec has no qetvec.fit_codec"}]


def test_budget_summary_takes_the_best_faiss_code_that_fits(measured_run):
    rows, test = measured_run
    result = {"codecs": rows, "bounds": run_bounds(test, [4, 8])}
    summary = {r["target_bytes"]: r for r in budget_rows(result)}
    faiss_rows = [r for r in rows if "skipped" not in r and r["method"] != "auto"]
    for size, row in summary.items():  # brute force over the measured rows
        best = min((r for r in faiss_rows if r["bytes_per_row"] <= size), key=lambda r: r["mse"])
        assert (row["best_faiss"], row["best_faiss_mse"]) == (best["spec"], best["mse"])
        auto = next(r for r in rows if r["method"] == "auto" and r["target_bytes"] == size)
        assert row["auto_vs_best_faiss"] == pytest.approx(auto["mse"] / best["mse"])
        assert row["iid_bound"] == 4.0 ** -(8 * size / 16)
        assert 0 < row["gaussian_rd_bound"] < row["iid_bound"]  # unequal variances: water-filling gains
        assert row["gaussian_rd_bound"] < row["best_faiss_mse"]
    assert summary[8]["best_faiss_mse"] <= summary[4]["best_faiss_mse"]


@pytest.mark.bench
def test_codec_report_files(measured_run, tmp_path):
    rows, test = measured_run
    result = {"dataset": "synthetic", "command": "test", "setup": "tiny", "machine": "here", "seconds": 1.0,
              "options": {"n_train": 3000}, "codecs": rows, "bounds": run_bounds(test, [4, 8])}
    paths = write_reports(result, tmp_path)
    assert {p.name for p in paths} == {"result.json", "result.md", "mse_vs_bytes.png"}
    assert json.loads((tmp_path / "result.json").read_text())["codecs"] == json.loads(json.dumps(rows))
    text = (tmp_path / "result.md").read_text()
    assert "| 4 | pq | skipped @ 4 B: measured too slow |" in text
    assert "trained on 500 of 3000 rows (cap)" in text
    assert "lower is better" in text and "gaussian_rd_bound" in text and "bytes_per_row: read from" in text
    assert (tmp_path / "mse_vs_bytes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argument", ["pq", "pq=", "pq=0", "pq=ten", "nope=10"])
def test_bench_rejects_bad_training_caps(argument, capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--train-rows", argument])
    assert "--train-rows" in capsys.readouterr().err


def _bench_codecs_script():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_codecs.py"
    spec = importlib.util.spec_from_file_location("bench_codecs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("dataset", ["glove-50", "minilm-stdlib"])
def test_benchmark_script_command_lines_parse(dataset):
    """Every method name, cap and skip in benchmarks/bench_codecs.py is one `qetvec bench` accepts."""
    script = _bench_codecs_script()
    args = _parser().parse_args(script.arguments(dataset))
    assert args.dataset == dataset and "auto" in args.methods and "rq-beam32" in args.methods
    assert dict(args.train_rows) == script.RUNS[dataset]["train_rows"]
    assert dict(args.skip) == script.RUNS[dataset]["skip"]
