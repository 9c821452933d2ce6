"""Where the service map's edges run: straight, bowed out, or a loop for a self-call.

A path is a list of points from the caller's position to the callee's, in the layout's units
(x: one per layer).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Final

from dashboards.layout import Position
from meshlens.read.results import Edge, NodeKey

RECIPROCAL_BEND: Final = 0.12
"""How far (x units: one per layer) the middle of an edge with a reverse twin bows out."""
BACKWARD_BEND: Final = 0.25
"""How far an edge to the same or an earlier layer bows out (at least)."""
MAX_BEND: Final = 0.45
LOOP_WIDTH: Final = 0.07
LOOP_HEIGHT: Final = 0.28
CURVE_POINTS: Final = 13


def edge_paths(
    edges: Sequence[Edge], positions: Mapping[NodeKey, Position]
) -> list[list[Position]]:
    """Points of each edge's line, from its source's position to its target's (by the ends'
    names and types)."""
    pairs = {(edge.source_key, edge.target_key) for edge in edges}
    paths = []
    for edge in edges:
        start, end = positions[edge.source_key], positions[edge.target_key]
        if edge.source_key == edge.target_key:
            paths.append(_loop(start))
            continue
        bend = RECIPROCAL_BEND if (edge.target_key, edge.source_key) in pairs else 0.0
        if end[0] <= start[0]:  # same or earlier layer: bow out, clear of the nodes between
            bend = max(bend, min(BACKWARD_BEND + 0.05 * abs(end[1] - start[1]), MAX_BEND))
        paths.append(_curve(start, end, bend) if bend else [start, end])
    return paths


def middle(path: Sequence[Position]) -> Position:
    """The point halfway along `path` (where its hover marker sits)."""
    if len(path) == 2:
        (x0, y0), (x1, y1) = path
        return ((x0 + x1) / 2, (y0 + y1) / 2)
    return path[len(path) // 2]


def just_before(path: Sequence[Position]) -> Position:
    """A point a hair before the end, along the last stretch (sets the arrow's angle)."""
    (x0, y0), (x1, y1) = path[-2], path[-1]
    length = math.hypot(x1 - x0, y1 - y0) or 1.0
    return (x1 - 0.01 * (x1 - x0) / length, y1 - 0.01 * (y1 - y0) / length)


def _curve(start: Position, end: Position, bend: float) -> list[Position]:
    """A quadratic Bézier from start to end whose middle is `bend` right of the chord."""
    (x0, y0), (x1, y1) = start, end
    length = math.hypot(x1 - x0, y1 - y0)
    right_x, right_y = (y1 - y0) / length, (x0 - x1) / length  # right of the way it goes
    cx, cy = (x0 + x1) / 2 + 2 * bend * right_x, (y0 + y1) / 2 + 2 * bend * right_y
    points = []
    for step in range(CURVE_POINTS):
        t = step / (CURVE_POINTS - 1)
        a, b, c = (1 - t) ** 2, 2 * t * (1 - t), t**2
        points.append((a * x0 + b * cx + c * x1, a * y0 + b * cy + c * y1))
    return points


def _loop(at: Position) -> list[Position]:
    """A self-call: an ellipse standing on the node, back to it."""
    x, y = at
    points = []
    for step in range(CURVE_POINTS):
        angle = -math.pi / 2 + 2 * math.pi * step / (CURVE_POINTS - 1)
        points.append((x + LOOP_WIDTH * math.cos(angle), y + LOOP_HEIGHT * (1 + math.sin(angle))))
    points[0] = points[-1] = at
    return points
