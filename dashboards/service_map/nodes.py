"""The service map's nodes: one trace per node type, shaped by type, coloured by health."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Final
from urllib.parse import quote

from dashboards.charts import plotly_text
from dashboards.health import HEALTH_COLOURS, health
from dashboards.layout import Position
from dashboards.service_map.hover import node_hover
from dashboards.service_map.looks import (
    INK,
    NODE_OUTLINE,
    NODE_SIZE,
    NODE_SYMBOLS,
    OTHER_SYMBOL,
    Trace,
    type_order,
)
from meshlens.read.results import Graph, Node, NodeKey, Signals, node_order

LABEL_CHARACTERS: Final = 28
"""Longer names are cut (with an ellipsis) in labels; hover text shows them whole."""


def all_nodes(graph: Graph) -> list[Node]:
    """The graph's nodes, plus an empty one for an edge end (name and type) that has none."""
    nodes = list(graph.nodes)
    keys = {node.key for node in nodes}
    for edge in graph.edges:
        for name, type_ in (edge.source_key, edge.target_key):
            if (name, type_) not in keys:
                keys.add((name, type_))
                nodes.append(Node(name, type_, Signals(seconds=edge.signals.seconds), "none"))
    return nodes


def node_traces(
    nodes: Sequence[Node], positions: Mapping[NodeKey, Position], base_url: str, query: str
) -> list[Trace]:
    """A `nodes:<type>` trace per node type; a service's `customdata` is its page's URL."""
    by_type: dict[str, list[Node]] = defaultdict(list)
    for node in sorted(nodes, key=lambda node: node_order(node.key)):
        by_type[node.type].append(node)
    traces = []
    for type_ in type_order(set(by_type)):
        members = by_type[type_]
        traces.append(
            {
                "type": "scatter",
                "uid": f"nodes:{type_}",
                "name": plotly_text(type_),
                "legendgroup": f"nodes:{type_}",
                "showlegend": False,
                "mode": "markers+text",
                "x": [positions[node.key][0] for node in members],
                "y": [positions[node.key][1] for node in members],
                "text": [plotly_text(_label(node.name)) for node in members],
                "textposition": "bottom center",
                "textfont": {"size": 11, "color": INK},
                "hovertext": [node_hover(node) for node in members],
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
