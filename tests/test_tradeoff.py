"""The recall / speed trade-off read off an nprobe sweep: Pareto front, queries/s at a recall
interpolated along it, against hand computations."""
import math

import pytest

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


def test_log_linear_interpolation_matches_a_geometric_speed_curve():
    """Where queries/s fall geometrically in recall, the interpolation is exact."""
    curve = [(r, 5000 * math.exp(-8 * r)) for r in (0.5, 0.75, 0.95)]
    assert qps_at_recall(curve, 0.9) == pytest.approx(5000 * math.exp(-8 * 0.9))
