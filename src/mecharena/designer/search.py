"""The best constant over a grid of rules: successive halving, then steepest ascent.

A point of the grid is a tuple of indices, one per field (``sizes``). ``means(points, rows)`` scores
points on the first ``rows`` of the training episodes (the same ones for every point: common random
numbers). The pool plays a sixteenth of the rows; the best sixteenth of it (at least 32) a quarter;
the best 32 all of them. From the best, steepest ascent over the points that differ in one field
moves while a move raises the mean on all the rows. Every score kept is on all the rows.
"""

from collections.abc import Callable, Iterable

import numpy as np

from mecharena.core.types import FloatArray

Point = tuple[int, ...]
Means = Callable[[list[Point], int], FloatArray]  # (points, rows) -> (len(points),) mean rewards


def halve_and_climb(sizes: tuple[int, ...], pool: Iterable[Point], means: Means,
                    rows: int) -> tuple[Point, Point, dict[Point, float]]:
    """The best point, the best before the ascent, and every point scored on all ``rows`` with its mean.

    Args:
        sizes: the number of values of each field.
        pool: the points to start from (drawn at random, a menu).
        means: scores points on the first ``rows`` training episodes.
        rows: the training episodes (at least 16, so that every rung plays at least one).
    """
    points = sorted(set(pool))
    for played, keep in ((rows // 16, max(32, len(points) // 16)), (rows // 4, 32)):
        points = [points[j] for j in np.argsort(-means(points, played), kind="stable")[:keep]]
    scored = dict(zip(points, means(points, rows).tolist(), strict=True))
    best = sampled = max(scored, key=scored.__getitem__)
    while True:
        neighbours = [best[:f] + (v,) + best[f + 1:] for f, size in enumerate(sizes) for v in range(size)
                      if v != best[f]]
        moves = [point for point in neighbours if point not in scored]
        if moves:
            scored.update(zip(moves, means(moves, rows).tolist(), strict=True))
        step = max(neighbours, key=scored.__getitem__)
        if scored[step] <= scored[best]:
            return best, sampled, scored
        best = step
