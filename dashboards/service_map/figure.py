"""The service map figure: its traces in drawing order, the legend and the plotly layout."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Final

from dashboards.charts import plotly_text
from dashboards.layout import Position, layered_positions
from dashboards.service_map.edge_paths import edge_paths
from dashboards.service_map.edges import edge_traces
from dashboards.service_map.looks import (
    EDGE_KINDS,
    FONT,
    INK,
    NEUTRAL,
    NODE_OUTLINE,
    NODE_SYMBOLS,
    OTHER_SYMBOL,
    Figure,
    Trace,
    edge_kind,
    type_order,
)
from dashboards.service_map.nodes import all_nodes, node_traces
from meshlens.read.results import Edge, Graph, Node, NodeKey

ROW_HEIGHT_PX: Final = 90
MIN_HEIGHT_PX: Final = 420
UIREVISION: Final = "service-map"
"""Kept across refreshes, so zoom and pan survive them; a page may set its own (per focus)."""


def map_figure(graph: Graph, *, base_url: str = "", query: str = "") -> Figure:
    """The service map of `graph` as a plotly figure dict (JSON-serialisable).

    A service's `customdata` is `{base_url}/services/{name, percent-encoded}{query}`; `query` is
    appended as given (`""` or `"?window=15m"`).
    """
    nodes = all_nodes(graph)
    positions = layered_positions(graph)
    paths = edge_paths(graph.edges, positions)
    data = edge_traces(graph.edges, paths)
    data += node_traces(nodes, positions, base_url.rstrip("/"), query)
    data += _legend_traces(nodes, graph.edges)
    return {"data": data, "layout": _layout(positions, paths)}


def _legend_traces(nodes: Sequence[Node], edges: Sequence[Edge]) -> list[Trace]:
    traces: list[Trace] = []
    for rank, type_ in enumerate(type_order({node.type for node in nodes})):
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
    present = {edge_kind(edge.signals.mtls) for edge in edges}
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


def _layout(
    positions: Mapping[NodeKey, Position], paths: Sequence[list[Position]]
) -> dict[str, Any]:
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
