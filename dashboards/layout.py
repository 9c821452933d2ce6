"""Where the service map puts its nodes: the focus filter and a layered left-to-right layout.

Pure functions of an `meshlens.read.results.Graph` (no I/O), computed server-side with networkx.

The layout is a small Sugiyama-style one:

1. Layers. Edges into `client` nodes are left out (a client such as `user` always starts the
   map). The strongly connected components are condensed into a DAG (networkx) and ranked in
   its topological order; the members of a component of several nodes (calls in a cycle) are
   ranked among themselves by the greedy feedback-arc-set heuristic of Eades, Lin and Smyth, so
   that few edges go against the rank (at least one per cycle). A node's layer is then the
   longest path to it over the edges that follow the rank: on a DAG every caller is left of its
   callees, and in a cycle only the edges against the rank point right to left. A source that is
   not a client moves right next to its first callee, so that a batch job calling a deep service
   does not draw an edge across the whole map. Virtual nodes (databases, queues, external hosts)
   are callees: they land one layer after their last caller.
2. Order within layers. Nodes start sorted by type (clients first) and name, then a few sweeps
   alternate left to right and right to left, each sorting a layer by the barycenter of its
   neighbours' rows in the layers already placed (fewer crossings).
3. Coordinates. x is the layer (0, 1, 2, ...); y spreads a layer's nodes one unit apart,
   centred on 0, the first row on top.

Everything is sorted by name where an order is needed: the same graph gives the same positions
whatever the order of its lists.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable

import networkx as nx

from meshlens.read.results import Graph

CLIENT = "client"
"""The node type that always starts the map (layer 0)."""

SWEEPS = 4
"""Barycenter sweeps ordering the nodes within their layers (alternately left to right and back)."""

Position = tuple[float, float]


def focus(graph: Graph, service: str | None, hops: int) -> Graph:
    """The nodes within `hops` hops of `service`, whatever the edges' direction, and the edges
    among them (the neighbourhood `networkx.ego_graph(..., undirected=True)` takes).

    `service` None gives the whole graph; a name that is no node nor edge end gives an empty
    graph. Lists keep the graph's order; nodes and edges are the graph's own objects.
    """
    if service is None:
        return Graph(nodes=list(graph.nodes), edges=list(graph.edges))
    if hops < 0:
        raise ValueError(f"hops must be at least 0, not {hops}")
    digraph = _digraph((node.name for node in graph.nodes), _pairs(graph))
    if service not in digraph:
        return Graph(nodes=[], edges=[])
    undirected = digraph.to_undirected(as_view=True)
    kept = set(nx.single_source_shortest_path_length(undirected, service, cutoff=hops))
    return Graph(
        nodes=[node for node in graph.nodes if node.name in kept],
        edges=[edge for edge in graph.edges if edge.source in kept and edge.target in kept],
    )


def layered_positions(graph: Graph) -> dict[str, Position]:
    """(x, y) of every node and edge end: x the layer (callers left of callees), y the row.

    Cycles do not stop it (see the module's docstring); self-calls are ignored. Deterministic.
    """
    types = _types(graph)
    if not types:
        return {}
    pairs = sorted(set(_pairs(graph)))
    layered = _digraph(types, ((u, v) for u, v in pairs if u != v and types[v] != CLIENT))
    layer = _layers(layered, types)
    rows = _rows(layer, pairs, types)
    positions: dict[str, Position] = {}
    for number, names in enumerate(rows):
        middle = (len(names) - 1) / 2
        for index, name in enumerate(names):
            positions[name] = (float(number), middle - index)
    return positions


# --- layers ------------------------------------------------------------------------------------


def _types(graph: Graph) -> dict[str, str]:
    """Type of every node and edge end, by name (nodes first, then what the edges say)."""
    types: dict[str, str] = {}
    for edge in graph.edges:
        types.setdefault(edge.source, edge.source_type)
        types.setdefault(edge.target, edge.target_type)
    types.update((node.name, node.type) for node in graph.nodes)
    return dict(sorted(types.items()))


def _pairs(graph: Graph) -> Iterable[tuple[str, str]]:
    return ((edge.source, edge.target) for edge in graph.edges)


def _digraph(names: Iterable[str], pairs: Iterable[tuple[str, str]]) -> nx.DiGraph[str]:
    digraph: nx.DiGraph[str] = nx.DiGraph()
    digraph.add_nodes_from(names)
    digraph.add_edges_from(pairs)
    return digraph


def _layers(digraph: nx.DiGraph[str], types: dict[str, str]) -> dict[str, int]:
    """Layer of every node: longest paths over the edges that follow `_rank`."""
    rank = _rank(digraph)
    layer: dict[str, int] = {}
    for name in sorted(digraph, key=rank.__getitem__):
        callers = (c for c in digraph.predecessors(name) if rank[c] < rank[name])
        layer[name] = max((layer[c] + 1 for c in callers), default=0)
    for name in digraph:  # a source that is no client moves up to its first callee
        if types[name] != CLIENT and digraph.in_degree(name) == 0 and digraph.out_degree(name):
            layer[name] = min(layer[callee] for callee in digraph.successors(name)) - 1
    return layer


def _rank(digraph: nx.DiGraph[str]) -> dict[str, int]:
    """A linear order of the nodes every edge follows, but for one edge per cycle at least:
    the strongly connected components in topological order, each ordered by `_cycle_order`."""
    condensed = nx.condensation(digraph)
    order: list[str] = []
    for component in nx.topological_sort(condensed):
        members: set[str] = condensed.nodes[component]["members"]
        order += members if len(members) == 1 else _cycle_order(digraph, sorted(members))
    return {name: number for number, name in enumerate(order)}


def _cycle_order(digraph: nx.DiGraph[str], members: list[str]) -> list[str]:
    """Members of one strongly connected component in an order few of its edges go against:
    the greedy heuristic of Eades, Lin and Smyth (sinks last, sources first, else the node with
    the most more callees than callers next; ties: the most called from outside, then by name)."""
    inside = set(members)
    callees = {n: [s for s in digraph.successors(n) if s in inside and s != n] for n in members}
    callers = {n: [p for p in digraph.predecessors(n) if p in inside and p != n] for n in members}
    entries = {n: sum(1 for p in digraph.predecessors(n) if p not in inside) for n in members}
    out_degree = {n: len(callees[n]) for n in members}
    in_degree = {n: len(callers[n]) for n in members}
    remaining = dict.fromkeys(members)
    first: list[str] = []
    last: list[str] = []
    sinks: deque[str] = deque()
    sources: deque[str] = deque()

    def take(name: str, into: list[str]) -> None:
        into.append(name)
        del remaining[name]
        for callee in callees[name]:
            if callee in remaining:
                in_degree[callee] -= 1
                if not in_degree[callee]:
                    sources.append(callee)
        for caller in callers[name]:
            if caller in remaining:
                out_degree[caller] -= 1
                if not out_degree[caller]:
                    sinks.append(caller)

    while remaining:
        if sinks:
            if (name := sinks.popleft()) in remaining:
                take(name, last)
        elif sources:
            if (name := sources.popleft()) in remaining:
                take(name, first)
        else:
            take(max(remaining, key=lambda n: (out_degree[n] - in_degree[n], entries[n])), first)
    return first + last[::-1]


# --- order within layers -----------------------------------------------------------------------


def _rows(
    layer: dict[str, int], pairs: Iterable[tuple[str, str]], types: dict[str, str]
) -> list[list[str]]:
    """Names per layer, ordered by barycenter sweeps to cut crossings."""
    before: dict[str, list[str]] = defaultdict(list)  # neighbours in earlier layers
    after: dict[str, list[str]] = defaultdict(list)  # neighbours in later layers
    for source, target in pairs:
        if layer[source] < layer[target]:
            before[target].append(source)
            after[source].append(target)
        elif layer[source] > layer[target]:
            before[source].append(target)
            after[target].append(source)
    rows: list[list[str]] = [[] for _ in range(max(layer.values()) + 1)]
    for name in sorted(layer, key=lambda name: (types[name] != CLIENT, name)):
        rows[layer[name]].append(name)
    y: dict[str, float] = {}
    for names in rows:
        _place(names, y)
    for sweep in range(SWEEPS):
        rightwards = sweep % 2 == 0
        placed = before if rightwards else after
        for number in range(1, len(rows)) if rightwards else range(len(rows) - 2, -1, -1):
            names = rows[number]
            keys = {}
            for name in names:
                others = placed.get(name)
                middle = sum(y[o] for o in others) / len(others) if others else y[name]
                keys[name] = (middle, y[name])
            names.sort(key=keys.__getitem__)
            _place(names, y)
    return rows


def _place(names: list[str], y: dict[str, float]) -> None:
    """Rows of one layer centred on 0, the first on top (row numbers grow downwards here)."""
    middle = (len(names) - 1) / 2
    for index, name in enumerate(names):
        y[name] = index - middle
