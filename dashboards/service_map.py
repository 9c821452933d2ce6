"""The service map (`/map`): the graph as a plotly figure, built as a plain dict.

Nodes sit where `dashboards.layout.layered_positions` puts them (callers left of callees); their
shape says their type and their colour their health (error ratio). Edges are coloured by error
ratio, as wide as their requests per second (log scale) and dashed when some of their requests
were plaintext, dotted when one-way TLS; an arrowhead at the callee shows the direction.

Trace order (drawing order, bottom to top), every trace a `scatter` with a stable `uid`:

1. `edges:<kind>:<health>:<width>`: the edge lines, one trace per look (line styles cannot
   vary along a trace), segments separated by nulls. kind: `plaintext`, `tls`, `mutual`.
2. `arrows:<kind>`: an arrowhead marker per edge at its callee.
3. `edge-hover:<kind>`: a faint marker at each edge's middle, carrying its hover text.
4. `nodes:<type>`: one trace per node type (service, database, messaging, external, client,
   then any other), a point per node with its label, hover text and `customdata`: the URL of the
   service's page for services, null for the others (the page opens it on click).
5. `legend:...`: point-less traces giving the legend its entries (node types, edge kinds) in
   neutral colours; each shares a `legendgroup` with the traces it stands for, so clicking it
   hides or shows them.

Names, types and reasons come from telemetry: plotly draws text as HTML-ish markup, so every
one of them is escaped (`plotly_text`), and only this module's own `<b>`/`<br>` stay markup.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal
from urllib.parse import quote

from dashboards.charts import plotly_text
from dashboards.formatting import ms, percent, rate
from dashboards.health import BAD_ERROR_RATE, HEALTH_COLOURS, WARN_ERROR_RATE, Health, health
from dashboards.layout import Position, focus, layered_positions
from meshlens.read.results import Edge, Graph, Mtls, Node, Signals

__all__ = [
    "BAD_ERROR_RATE",
    "HEALTH_COLOURS",
    "WARN_ERROR_RATE",
    "Health",
    "focus",
    "health",
    "layered_positions",
    "map_figure",
    "plotly_text",
]

Figure = dict[str, Any]
Trace = dict[str, Any]
# --- looks -------------------------------------------------------------------------------------

NODE_TYPES: Final = ("service", "database", "messaging", "external", "client")
NODE_SYMBOLS: Final[Mapping[str, str]] = {
    "service": "circle",
    "database": "square",
    "messaging": "diamond",
    "external": "hexagon",
    "client": "triangle-right",
}
OTHER_SYMBOL: Final = "circle-dot"
NODE_SIZE: Final = 20
NODE_OUTLINE: Final = "#374151"
LABEL_CHARACTERS: Final = 28
"""Longer names are cut (with an ellipsis) in labels; hover text shows them whole."""

EdgeKind = Literal["plaintext", "tls", "mutual"]
EDGE_KINDS: Final[Mapping[EdgeKind, tuple[str, str]]] = {
    "plaintext": ("dash", "plaintext edges (dashed)"),
    "tls": ("dot", "one-way TLS edges (dotted)"),
    "mutual": ("solid", "mTLS or unknown edges"),
}
"""Each edge kind's line dash and legend entry."""

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

RECIPROCAL_BEND: Final = 0.12
"""How far (x units: one per layer) the middle of an edge with a reverse twin bows out."""
BACKWARD_BEND: Final = 0.25
"""How far an edge to the same or an earlier layer bows out (at least)."""
MAX_BEND: Final = 0.45
LOOP_WIDTH: Final = 0.07
LOOP_HEIGHT: Final = 0.28
CURVE_POINTS: Final = 13

ROW_HEIGHT_PX: Final = 90
MIN_HEIGHT_PX: Final = 420
FONT: Final = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif"
INK: Final = "#1f2937"
NEUTRAL: Final = "#9ca3af"
UIREVISION: Final = "service-map"
"""Kept across refreshes, so zoom and pan survive them; a page may set its own (per focus)."""


def map_figure(graph: Graph, *, base_url: str = "", query: str = "") -> Figure:
    """The service map of `graph` as a plotly figure dict (JSON-serialisable).

    A service's `customdata` is `{base_url}/services/{name, percent-encoded}{query}`; `query` is
    appended as given (`""` or `"?window=15m"`).
    """
    nodes = _all_nodes(graph)
    positions = layered_positions(graph)
    paths = _edge_paths(graph.edges, positions)
    data = _edge_traces(graph.edges, paths)
    data += _node_traces(nodes, positions, base_url.rstrip("/"), query)
    data += _legend_traces(nodes, graph.edges)
    return {"data": data, "layout": _layout(positions, paths)}


# --- nodes -------------------------------------------------------------------------------------


def _all_nodes(graph: Graph) -> list[Node]:
    """The graph's nodes, plus an empty one for an edge end that has none."""
    nodes = list(graph.nodes)
    named = {node.name for node in nodes}
    for edge in graph.edges:
        for name, type_ in ((edge.source, edge.source_type), (edge.target, edge.target_type)):
            if name not in named:
                named.add(name)
                nodes.append(Node(name, type_, Signals(seconds=edge.signals.seconds), "none"))
    return nodes


def _type_order(types: set[str]) -> list[str]:
    return [t for t in NODE_TYPES if t in types] + sorted(types - set(NODE_TYPES))


def _node_traces(
    nodes: Sequence[Node], positions: Mapping[str, Position], base_url: str, query: str
) -> list[Trace]:
    by_type: dict[str, list[Node]] = defaultdict(list)
    for node in sorted(nodes, key=lambda node: node.name):
        by_type[node.type].append(node)
    traces = []
    for type_ in _type_order(set(by_type)):
        members = by_type[type_]
        traces.append(
            {
                "type": "scatter",
                "uid": f"nodes:{type_}",
                "name": plotly_text(type_),
                "legendgroup": f"nodes:{type_}",
                "showlegend": False,
                "mode": "markers+text",
                "x": [positions[node.name][0] for node in members],
                "y": [positions[node.name][1] for node in members],
                "text": [plotly_text(_label(node.name)) for node in members],
                "textposition": "bottom center",
                "textfont": {"size": 11, "color": INK},
                "hovertext": [_node_hover(node) for node in members],
                "hoverinfo": "text",
                "customdata": [
                    f"{base_url}/services/{quote(node.name, safe='')}{query}"
                    if node.type == "service"
                    else None
                    for node in members
                ],
                "marker": {
                    "symbol": NODE_SYMBOLS.get(type_, OTHER_SYMBOL),
                    "size": NODE_SIZE,
                    "color": [HEALTH_COLOURS[health(node.signals.error_rate)] for node in members],
                    "line": {"color": NODE_OUTLINE, "width": 1},
                },
                "cliponaxis": False,
            }
        )
    return traces


def _label(name: str) -> str:
    return name if len(name) <= LABEL_CHARACTERS else name[: LABEL_CHARACTERS - 1] + "…"


def _node_hover(node: Node) -> str:
    signals = node.signals
    lines = [f"<b>{plotly_text(node.name)}</b>", plotly_text(node.type)]
    lines += _signal_lines(signals)
    coverage = signals.mtls.coverage
    lines.append(f"inbound mTLS coverage: {percent(coverage)}")
    if signals.saturation is not None:
        lines.append(f"saturation: {percent(signals.saturation)}")
    if node.type == "service":
        lines.append("<i>click to open the service page</i>")
    return "<br>".join(lines)


def _signal_lines(signals: Signals) -> list[str]:
    if not signals.requests:
        return ["no requests in the window"]
    latency = signals.latency_ms()
    return [
        f"{rate(signals.rps)} · {signals.requests:,} requests",
        f"errors: {percent(signals.error_rate)} ({signals.errors:,})",
        "p50 / p95 / p99: " + " / ".join(ms(latency[name]) for name in ("p50", "p95", "p99")),
    ]


# --- edges -------------------------------------------------------------------------------------


def _kind(mtls: Mtls) -> EdgeKind:
    if mtls.plaintext > 0:
        return "plaintext"
    return "tls" if mtls.tls > 0 else "mutual"


def _width(rps: float) -> int:
    """Line width in pixels: 1 up to `THIN_RPS`, 8 from `THICK_RPS`, log scale between."""
    if not rps > THIN_RPS:
        return MIN_WIDTH
    share = min(math.log(rps / THIN_RPS) / math.log(THICK_RPS / THIN_RPS), 1.0)
    return MIN_WIDTH + round(share * (MAX_WIDTH - MIN_WIDTH))


def _edge_paths(edges: Sequence[Edge], positions: Mapping[str, Position]) -> list[list[Position]]:
    """Points of each edge's line, from its source's position to its target's."""
    pairs = {(edge.source, edge.target) for edge in edges}
    paths = []
    for edge in edges:
        start, end = positions[edge.source], positions[edge.target]
        if edge.source == edge.target:
            paths.append(_loop(start))
            continue
        bend = RECIPROCAL_BEND if (edge.target, edge.source) in pairs else 0.0
        if end[0] <= start[0]:  # same or earlier layer: bow out, clear of the nodes between
            bend = max(bend, min(BACKWARD_BEND + 0.05 * abs(end[1] - start[1]), MAX_BEND))
        paths.append(_curve(start, end, bend) if bend else [start, end])
    return paths


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


def _middle(path: Sequence[Position]) -> Position:
    if len(path) == 2:
        (x0, y0), (x1, y1) = path
        return ((x0 + x1) / 2, (y0 + y1) / 2)
    return path[len(path) // 2]


def _just_before(path: Sequence[Position]) -> Position:
    """A point a hair before the end, along the last stretch (sets the arrow's angle)."""
    (x0, y0), (x1, y1) = path[-2], path[-1]
    length = math.hypot(x1 - x0, y1 - y0) or 1.0
    return (x1 - 0.01 * (x1 - x0) / length, y1 - 0.01 * (y1 - y0) / length)


def _edge_traces(edges: Sequence[Edge], paths: Sequence[list[Position]]) -> list[Trace]:
    lines: dict[tuple[int, Health, int], list[list[Position]]] = defaultdict(list)
    arrows: dict[EdgeKind, list[tuple[Position, Position, str, int]]] = defaultdict(list)
    hovers: dict[EdgeKind, list[tuple[Position, str, str]]] = defaultdict(list)
    kinds = list(EDGE_KINDS)
    for edge, path in zip(edges, paths, strict=True):
        signals = edge.signals
        kind, looks = _kind(signals.mtls), health(signals.error_rate)
        width, colour = _width(signals.rps), HEALTH_COLOURS[looks]
        lines[kinds.index(kind), looks, width].append(path)
        arrows[kind].append((_just_before(path), path[-1], colour, width))
        hovers[kind].append((_middle(path), colour, _edge_hover(edge)))
    traces: list[Trace] = []
    for (number, looks, width), group in sorted(lines.items()):
        kind = kinds[number]
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
                "uid": f"edges:{kind}:{looks}:{width}",
                "legendgroup": f"edges:{kind}",
                "showlegend": False,
                "mode": "lines",
                "x": xs,
                "y": ys,
                "line": {
                    "color": HEALTH_COLOURS[looks],
                    "width": width,
                    "dash": EDGE_KINDS[kind][0],
                },
                "opacity": EDGE_OPACITY if len(edges) <= CROWDED_EDGES else CROWDED_OPACITY,
                "hoverinfo": "skip",
            }
        )
    for kind in (k for k in kinds if k in arrows):
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
    for kind in (k for k in kinds if k in hovers):
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


def _edge_hover(edge: Edge) -> str:
    signals, mtls = edge.signals, edge.signals.mtls
    lines = [
        f"<b>{plotly_text(edge.source)} → {plotly_text(edge.target)}</b>",
        f"{plotly_text(edge.source_type)} → {plotly_text(edge.target_type)}",
    ]
    lines += _signal_lines(signals)
    coverage = mtls.coverage
    lines.append(
        f"mTLS: {mtls.mutual:,} mutual · {mtls.tls:,} one-way TLS · "
        f"{mtls.plaintext:,} plaintext · {mtls.unknown:,} unknown"
    )
    lines.append(f"mTLS coverage: {percent(coverage)}")
    reason = edge.plaintext_reason
    if reason is not None:
        lines.append(f"plaintext because: {plotly_text(reason)}")
    lines.append(f"from: {plotly_text(', '.join(edge.sources)) or '–'}")
    return "<br>".join(lines)


# --- legend and layout -------------------------------------------------------------------------


def _legend_traces(nodes: Sequence[Node], edges: Sequence[Edge]) -> list[Trace]:
    traces: list[Trace] = []
    for rank, type_ in enumerate(_type_order({node.type for node in nodes})):
        traces.append(
            {
                "type": "scatter",
                "uid": f"legend:nodes:{type_}",
                "name": plotly_text(type_),
                "legendgroup": f"nodes:{type_}",
                "legendrank": rank + 1,
                "mode": "markers",
                "x": [None],
                "y": [None],
                "marker": {
                    "symbol": NODE_SYMBOLS.get(type_, OTHER_SYMBOL),
                    "size": 12,
                    "color": NEUTRAL,
                    "line": {"color": NODE_OUTLINE, "width": 1},
                },
                "hoverinfo": "skip",
            }
        )
    present = {_kind(edge.signals.mtls) for edge in edges}
    for rank, (kind, (dash, name)) in enumerate(EDGE_KINDS.items()):
        if kind in present:
            traces.append(
                {
                    "type": "scatter",
                    "uid": f"legend:edges:{kind}",
                    "name": name,
                    "legendgroup": f"edges:{kind}",
                    "legendrank": 100 + rank,
                    "mode": "lines",
                    "x": [None],
                    "y": [None],
                    "line": {"color": NEUTRAL, "width": 2, "dash": dash},
                    "hoverinfo": "skip",
                }
            )
    return traces


def _layout(positions: Mapping[str, Position], paths: Sequence[list[Position]]) -> dict[str, Any]:
    points = list(positions.values()) + [point for path in paths for point in path]
    xs = [x for x, _ in points] or [0.0]
    ys = [y for _, y in points] or [0.0]
    rows: dict[float, int] = defaultdict(int)
    for x, _ in positions.values():
        rows[x] += 1
    height = max(MIN_HEIGHT_PX, ROW_HEIGHT_PX * max(rows.values(), default=0) + 80)
    axis = {
        "visible": False,
        "showgrid": False,
        "zeroline": False,
        "showticklabels": False,
        "ticks": "",
    }
    return {
        "height": height,
        "margin": {"l": 8, "r": 8, "t": 36, "b": 8},
        "font": {"family": FONT, "size": 12, "color": INK},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "hovermode": "closest",
        "hoverlabel": {
            "bgcolor": "#ffffff",
            "bordercolor": "#d1d5db",
            "font": {"family": FONT, "size": 12, "color": INK},
            "align": "left",
        },
        "dragmode": "pan",
        "uirevision": UIREVISION,
        "showlegend": True,
        "legend": {
            "orientation": "h",
            "x": 0,
            "xanchor": "left",
            "y": 1,
            "yanchor": "bottom",
            "bgcolor": "rgba(0,0,0,0)",
            "font": {"size": 11},
        },
        "xaxis": {**axis, "range": [min(xs) - 0.5, max(xs) + 0.5]},
        "yaxis": {**axis, "range": [min(ys) - 0.6, max(ys) + 0.5]},
    }
