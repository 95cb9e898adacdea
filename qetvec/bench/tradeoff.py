"""The recall / speed trade-off of an index, read off its nprobe sweep: the Pareto front of
(recall, queries/s) points and the queries/s at a given recall, interpolated along that front,
so that two indexes are compared at equal recall rather than at equal nprobe."""
from __future__ import annotations

import math
from typing import Sequence


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (recall, qps) points no other point beats on both (higher or equal recall and
    higher or equal queries/s, one of them strictly), sorted by recall; each recall kept once,
    at its highest qps. A sweep's timing noise can make a larger nprobe look faster: that
    point then dominates the slower one, as ann-benchmarks draws it."""
    front: list[tuple[float, float]] = []
    for recall, qps in sorted(points, key=lambda p: (-p[0], -p[1])):  # by recall, best first
        if not front or qps > front[-1][1]:
            front.append((recall, qps))
    return front[::-1]


def qps_at_recall(points: Sequence[tuple[float, float]], target: float) -> float | None:
    """Queries/s at recall `target` along the Pareto front of (recall, qps) points: the
    front's qps at the first point reaching `target` when no front point lies below it,
    else log(qps) interpolated linearly in recall between the two front points around
    `target` (queries/s fall about geometrically as nprobe doubles). None when no point
    reaches `target`."""
    front = pareto_front(points)
    above = next((i for i, (recall, _) in enumerate(front) if recall >= target), None)
    if above is None:
        return None
    if above == 0:
        return front[0][1]
    (r0, q0), (r1, q1) = front[above - 1], front[above]
    share = (target - r0) / (r1 - r0)
    return math.exp(math.log(q0) + share * (math.log(q1) - math.log(q0)))
