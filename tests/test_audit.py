"""The audit's summary of `auto` against the best no-tree configuration and the bounds."""
import pytest

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


@pytest.mark.slow
def test_audit_rows_include_auto_within_budget():
    rows = run_matrix("glove-50", [2.0], niter=2, search=False)
    by_method = {r["method"]: r for r in rows}
    auto = by_method["auto"]
    assert auto["nbytes"] <= auto["budget_bytes"]
    assert auto["mse"] <= min(r["mse"] for r in rows if "mse" in r)
    assert auto["rd_side"].startswith("rows") and auto["rd_bound"] < auto["mse"]
