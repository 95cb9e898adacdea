"""The audit's summary of `auto` against the best no-tree configuration and the bounds."""
import pytest

from qetvec.bench import report
from qetvec.bench.audit import auto_summary, claim_check, run_matrix


def _rows(dataset, bpe, mse, bound):
    base = {"dataset": dataset, "bits_per_element": bpe, "rd_bound": bound, "rd_side": "rows",
            "iid_bound": 4.0 ** -bpe}
    return [{**base, "method": method, "mse": value, **({"config": "pca+6.5 + ectcq"} if method == "auto" else {})}
            for method, value in mse.items()]


def test_claims_carry_auto_and_its_ratios():
    rows = _rows("a", 3.0, {"pq": 0.2, "qet": 0.1, "best-no-tree": 0.05, "best-qet": 0.06, "auto": 0.02}, 0.008) + \
        _rows("b", 4.0, {"pq": 0.2, "qet": 0.1, "best-no-tree": 0.01, "best-qet": 0.02, "auto": 0.009}, 0.001) + \
        _rows("c", 2.0, {"pq": 0.3, "qet": 0.2, "best-no-tree": 0.1, "auto": 0.05}, 0.04)
    claims = {(c["dataset"], c["bits_per_element"]): c for c in claim_check(rows)}
    a = claims["a", 3.0]
    assert a["auto"] == 0.02 and a["auto_method"] == "pca+6.5 + ectcq"
    assert a["auto_vs_best_no_tree"] == pytest.approx(0.4) and a["auto_vs_rd_bound"] == pytest.approx(2.5)
    assert a["auto_vs_iid_bound"] == pytest.approx(0.02 / 4.0 ** -3)
    summary = auto_summary(list(claims.values()))
    assert summary == {"cells": 3, "within_2x_rd_bound": 1, "within_3x_rd_bound": 2,
                       "cells_at_3_4_bits": 2, "half_best_no_tree_at_3_4_bits": 1}


def test_every_plot_lists_the_methods_in_one_order_with_both_bounds(monkeypatch, tmp_path):
    """A method missing from one matrix (opq did not fit) leaves its place empty, so every
    other method keeps its colour from plot to plot; both bounds are drawn as references."""
    rows = _rows("a", 3.0, {"pq": 0.2, "qet": 0.1, "opq": 0.15, "auto": 0.02}, 0.008) + \
        _rows("b", 3.0, {"pq": 0.2, "qet": 0.1, "auto": 0.009}, 0.001) + \
        [{**_rows("b", 3.0, {"opq": 0.0}, 0.001)[0], "skipped": "budget too small"}]
    for row in rows[-1:]:
        del row["mse"]
    plots = []
    monkeypatch.setattr(report, "line_plot", lambda series, *args, references, **kwargs: plots.append(
        (series, references)))
    result = {"command": "test", "matrices": {"a": "", "b": ""}, "matrix": rows, "vector": [],
              "claims": claim_check(rows)}
    report.write_audit(result, tmp_path)
    (series_a, bounds_a), (series_b, bounds_b) = plots
    assert list(series_a) == list(series_b) == ["pq", "qet", "opq", "auto"]
    assert series_b["opq"] == [] and series_b["auto"] == [(3.0, 0.009)]
    assert bounds_b == {"Gaussian R(D) bound": [(3.0, 0.001)], "i.i.d. Gaussian bound 4^-R": [(3.0, 4.0 ** -3)]}


@pytest.mark.slow
def test_audit_rows_include_auto_within_budget():
    rows = run_matrix("glove-50", [2.0], niter=2, search=False)
    by_method = {r["method"]: r for r in rows}
    auto = by_method["auto"]
    assert auto["nbytes"] <= auto["budget_bytes"]
    assert auto["mse"] <= min(r["mse"] for r in rows if "mse" in r)
    assert auto["rd_side"].startswith("rows") and auto["rd_bound"] < auto["mse"]
