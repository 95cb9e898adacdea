"""`qetvec bench` end to end on a small real slice: exits 0, writes JSON, table and plots."""
import json

from qetvec.cli import main


def test_bench_writes_json_table_and_plots(tmp_path):
    out = tmp_path / "run"
    code = main(["bench", "--n-train", "2500", "--n-eval", "1000", "--n-base", "3000", "--n-queries", "10",
                 "--bytes", "10", "--methods", "qet-L1S1", "pq", "--repeats", "1", "--out", str(out)])
    assert code == 0
    result = json.loads((out / "result.json").read_text())
    assert result["dataset"] == "glove-50"
    codecs = {r["method"]: r for r in result["codecs"]}
    assert codecs["qet-L1S1"]["bits_per_row"] == codecs["pq"]["bits_per_row"] == 80
    assert 0 < codecs["qet-L1S1"]["mse"] < 1 and codecs["qet-L1S1"]["encode_rows_per_s_1thread"] > 0
    search = {r["method"]: r for r in result["search"]}
    assert 0 < search["pq"]["recall@10"] <= 1 and search["qet-L1S1"]["speed_ratio_1thread"] > 0
    for name in ("result.md", "mse_vs_bits.png", "recall_vs_bits.png", "recall_vs_qps.png"):
        assert (out / name).stat().st_size > 0
    assert "| qet-L1S1 |" in (out / "result.md").read_text()


def test_bench_rejects_unknown_methods(capsys):
    import pytest
    with pytest.raises(SystemExit):
        main(["bench", "--methods", "sq8"])
    assert "unknown method" in capsys.readouterr().err
