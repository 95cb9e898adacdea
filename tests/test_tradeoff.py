"""The recall / speed trade-off read off an nprobe sweep: Pareto front, queries/s at a recall
interpolated along it, and the equal-recall ratios of the main job, against hand computations."""
import math

import pytest

from qetvec.bench.methods import ivf_methods
from qetvec.bench.operating_point import compare_at_recall
from qetvec.bench.tradeoff import pareto_front, qps_at_recall


def test_pareto_front_drops_points_beaten_on_both_axes():
    # (0.7, 500) is beaten by (0.8, 1000): more recall and more queries/s (timing noise)
    points = [(0.8, 1000.0), (0.7, 500.0), (0.95, 100.0), (0.95, 80.0), (0.9, 90.0)]
    assert pareto_front(points) == [(0.8, 1000.0), (0.95, 100.0)]


def test_qps_at_recall_is_log_linear_between_the_two_front_points_around_it():
    points = [(0.7, 500.0), (0.8, 1000.0), (0.95, 100.0)]
    # 0.9 lies 2/3 of the way from recall 0.8 to 0.95: 1000 * (100 / 1000) ** (2 / 3)
    assert qps_at_recall(points, 0.9) == pytest.approx(1000 * 10 ** (-2 / 3))  # 215.44
    assert qps_at_recall(points, 0.95) == pytest.approx(100.0)  # a swept point: its own speed
    assert qps_at_recall(points, 0.6) == pytest.approx(1000.0)  # every point reaches it: the fastest
    assert qps_at_recall(points, 0.96) is None  # never reached


def _row(method, library, curve):
    return {"method": method, "library": library, "curve": [[i + 1, r, q, q / 2] for i, (r, q) in enumerate(curve)]}


def test_methods_are_compared_with_faiss_at_equal_recall():
    pq = _row("pq", "faiss", [(0.8, 1000.0), (0.95, 100.0)])
    sq = _row("sq4", "faiss", [(0.85, 300.0), (0.92, 250.0)])
    ours = _row("auto", "qetvec", [(0.5, 2000.0), (0.85, 600.0), (0.97, 200.0)])
    never = _row("rabitq", "faiss", [(0.6, 900.0), (0.7, 800.0)])
    rows = {r["method"]: r for r in compare_at_recall([pq, sq, ours, never], 0.9)}
    pq_qps = 1000 * 0.1 ** (2 / 3)  # 215.4: 2/3 of the way (in recall) from 1000 to 100 queries/s
    sq_qps = 300 * (250 / 300) ** (5 / 7)  # 263.4: recall 0.9 is 5/7 of the way from 0.85 to 0.92
    ours_qps = 600 * (200 / 600) ** (5 / 12)  # 379.6
    assert rows["pq"]["qps_at_target_1thread"] == pytest.approx(pq_qps)
    assert rows["auto"]["qps_at_target_1thread"] == pytest.approx(ours_qps)
    assert rows["auto"]["vs_pq_1thread"] == pytest.approx(ours_qps / pq_qps)  # 1.76
    assert rows["auto"]["best_faiss_1thread"] == "sq4"  # FAISS's fastest at recall 0.9, not PQ
    assert rows["auto"]["vs_best_faiss_1thread"] == pytest.approx(ours_qps / sq_qps)  # 1.44
    assert rows["auto"]["qps_at_target_all"] == pytest.approx(ours_qps / 2)  # the other thread count
    assert rows["auto"]["nprobe_at_target"] == 3 and rows["auto"]["max_recall"] == 0.97
    assert rows["rabitq"]["qps_at_target_1thread"] is None and "vs_pq_1thread" not in rows["rabitq"]
    assert rows["rabitq"]["nprobe_at_target"] is None


def test_the_ivf_run_takes_the_largest_fixed_size_code_that_fits():
    methods = ["auto", "pq", "sqtqmse1", "sqtqmse2", "sqtqmse4", "rabitq", "qet-L1S1"]
    # d = 50: SQtqmse<b> takes 1 + ceil(50 b / 8) bytes (7, 13, 25), RaBitQ 15
    assert ivf_methods(methods, 50, 10) == ["auto", "pq", "sqtqmse1", "rabitq", "qet-L1S1"]
    assert ivf_methods(methods, 50, 25) == ["auto", "pq", "sqtqmse4", "rabitq", "qet-L1S1"]


def test_log_linear_interpolation_matches_a_geometric_speed_curve():
    """Where queries/s fall geometrically in recall, the interpolation is exact."""
    curve = [(r, 5000 * math.exp(-8 * r)) for r in (0.5, 0.75, 0.95)]
    assert qps_at_recall(curve, 0.9) == pytest.approx(5000 * math.exp(-8 * 0.9))
