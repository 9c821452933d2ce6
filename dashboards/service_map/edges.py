"""The service map's edges: lines by look, arrowheads at the callees and hover markers.

An edge's line is coloured by its error ratio, as wide as its requests per second (log scale)
and dashed by its kind (`looks.EDGE_KINDS`); every trace of a kind shares the legend group
`edges:<kind>`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Final

from dashboards.health import HEALTH_COLOURS, Health, health
from dashboards.layout import Position
from dashboards.service_map.edge_paths import just_before, middle
from dashboards.service_map.hover import edge_hover
from dashboards.service_map.looks import EDGE_KINDS, NODE_SIZE, EdgeKind, Trace, edge_kind
from meshlens.read.results import Edge

MIN_WIDTH: Final = 1
MAX_WIDTH: Final = 8
THIN_RPS: Final = 0.1
"""At most this many requests per second: the thinnest line."""
THICK_RPS: Final = 1000.0
"""At least this many requests per second: the widest line (log scale in between)."""

EDGE_OPACITY: Final = 0.8
CROWDED_EDGES: Final = 150
CROWDED_OPACITY: Final = 0.5
"""Lines are fainter on maps of more than `CROWDED_EDGES` edges (the nodes stand out)."""
ARROW_SIZE: Final = 9
ARROW_STANDOFF: Final = NODE_SIZE / 2 + 2
"""Pixels between an arrow's tip and its callee's centre (the tip touches the marker's rim)."""
HOVER_MARKER_SIZE: Final = 9

Lines = Mapping[tuple[int, Health, int], list[list[Position]]]
"""Paths by look: (the kind's rank in EDGE_KINDS, health, width)."""
Arrows = Mapping[EdgeKind, list[tuple[Position, Position, str, int]]]
"""By kind: (a point just before the tip, the tip, colour, line width) per edge."""
Hovers = Mapping[EdgeKind, list[tuple[Position, str, str]]]
"""By kind: (where, colour, hover text) per edge."""

KINDS: Final[list[EdgeKind]] = list(EDGE_KINDS)


def width(rps: float) -> int:
    """Line width in pixels: 1 up to `THIN_RPS`, 8 from `THICK_RPS`, log scale between."""
    if not rps > THIN_RPS:
        return MIN_WIDTH
    share = min(math.log(rps / THIN_RPS) / math.log(THICK_RPS / THIN_RPS), 1.0)
    return MIN_WIDTH + round(share * (MAX_WIDTH - MIN_WIDTH))


def edge_traces(edges: Sequence[Edge], paths: Sequence[list[Position]]) -> list[Trace]:
    """The edge lines, then the arrowheads, then the hover markers of `edges` along `paths`."""
    lines: dict[tuple[int, Health, int], list[list[Position]]] = defaultdict(list)
    arrows: dict[EdgeKind, list[tuple[Position, Position, str, int]]] = defaultdict(list)
    hovers: dict[EdgeKind, list[tuple[Position, str, str]]] = defaultdict(list)
    for edge, path in zip(edges, paths, strict=True):
        signals = edge.signals
        kind, looks = edge_kind(signals.mtls), health(signals.error_rate)
        line_width, colour = width(signals.rps), HEALTH_COLOURS[looks]
        lines[KINDS.index(kind), looks, line_width].append(path)
        arrows[kind].append((just_before(path), path[-1], colour, line_width))
        hovers[kind].append((middle(path), colour, edge_hover(edge)))
    opacity = EDGE_OPACITY if len(edges) <= CROWDED_EDGES else CROWDED_OPACITY
    return _line_traces(lines, opacity) + _arrow_traces(arrows) + _hover_traces(hovers)


def _line_traces(lines: Lines, opacity: float) -> list[Trace]:
    """One `edges:<kind>:<health>:<width>` trace per look, its paths separated by nulls."""
    traces: list[Trace] = []
    for (number, looks, line_width), group in sorted(lines.items()):
        kind = KINDS[number]
        xs: list[float | None] = []
        ys: list[float | None] = []
        for path in group:
            if xs:
                xs.append(None)
                ys.append(None)
            xs += [x for x, _ in path]
            ys += [y for _, y in path]
        traces.append(
            {
                "type": "scatter",
                "uid": f"edges:{kind}:{looks}:{line_width}",
                "legendgroup": f"edges:{kind}",
                "showlegend": False,
                "mode": "lines",
                "x": xs,
                "y": ys,
                "line": {
                    "color": HEALTH_COLOURS[looks],
                    "width": line_width,
                    "dash": EDGE_KINDS[kind][0],
                },
                "opacity": opacity,
                "hoverinfo": "skip",
            }
        )
    return traces


def _arrow_traces(arrows: Arrows) -> list[Trace]:
    """One `arrows:<kind>` trace per kind: an arrowhead at each edge's callee."""
    traces: list[Trace] = []
    for kind in (k for k in KINDS if k in arrows):
        heads = arrows[kind]
        traces.append(
            {
                "type": "scatter",
                "uid": f"arrows:{kind}",
                "legendgroup": f"edges:{kind}",
                "showlegend": False,
                "mode": "markers",
                # pairs: an unseen point just before the tip, then the tip; `angleref:
                # previous` turns each tip along the line from the point before it
                "x": [x for before, tip, _, _ in heads for x in (before[0], tip[0])],
                "y": [y for before, tip, _, _ in heads for y in (before[1], tip[1])],
                "marker": {
                    "symbol": "arrow",
                    "angleref": "previous",
                    "standoff": ARROW_STANDOFF,
                    "size": [s for *_, w in heads for s in (0, ARROW_SIZE + w)],
                    "color": [c for _, _, c, _ in heads for c in (c, c)],
                    "line": {"width": 0},
                },
                "hoverinfo": "skip",
                "cliponaxis": False,
            }
        )
    return traces


def _hover_traces(hovers: Hovers) -> list[Trace]:
    """One `edge-hover:<kind>` trace per kind: a faint marker mid-edge with its hover text."""
    traces: list[Trace] = []
    for kind in (k for k in KINDS if k in hovers):
        points = hovers[kind]
        traces.append(
            {
                "type": "scatter",
                "uid": f"edge-hover:{kind}",
                "legendgroup": f"edges:{kind}",
                "showlegend": False,
                "mode": "markers",
                "x": [at[0] for at, _, _ in points],
                "y": [at[1] for at, _, _ in points],
                "marker": {
                    "size": HOVER_MARKER_SIZE,
                    "color": [colour for _, colour, _ in points],
                    "opacity": 0.35,
                    "line": {"width": 0},
                },
                "hovertext": [text for _, _, text in points],
                "hoverinfo": "text",
            }
        )
    return traces
