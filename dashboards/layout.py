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

A node is its name and its type (`NodeKey`): a service `redis` and a database `redis` are two
nodes, at two positions. Everything is sorted by name (then type) where an order is needed: the
same graph gives the same positions whatever the order of its lists.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable

import networkx as nx

from meshlens.read.results import Graph, NodeKey, node_order

CLIENT = "client"
"""The node type that always starts the map (layer 0)."""

SWEEPS = 4
"""Barycenter sweeps ordering the nodes within their layers (alternately left to right and back)."""

Position = tuple[float, float]


def focus(graph: Graph, service: str | None, hops: int) -> Graph:
    """The nodes within `hops` hops of the node named `service` (its first by type: the service,
    when there is one), whatever the edges' direction, and the edges among them (the
    neighbourhood `networkx.ego_graph(..., undirected=True)` takes).

    `service` None gives the whole graph; a name that is no node nor edge end gives an empty
    graph. Lists keep the graph's order; nodes and edges are the graph's own objects.
    """
    if service is None:
        return Graph(nodes=list(graph.nodes), edges=list(graph.edges))
    if hops < 0:
        raise ValueError(f"hops must be at least 0, not {hops}")
    digraph = _digraph((node.key for node in graph.nodes), _pairs(graph))
    start = min((key for key in digraph if key[0] == service), key=node_order, default=None)
    if start is None:
        return Graph(nodes=[], edges=[])
    undirected = digraph.to_undirected(as_view=True)
    kept = set(nx.single_source_shortest_path_length(undirected, start, cutoff=hops))
    return Graph(
        nodes=[node for node in graph.nodes if node.key in kept],
        edges=[e for e in graph.edges if e.source_key in kept and e.target_key in kept],
    )


def layered_positions(graph: Graph) -> dict[NodeKey, Position]:
    """(x, y) of every node and edge end, by (name, type): x the layer (callers left of
    callees), y the row.

    Cycles do not stop it (see the module's docstring); self-calls are ignored. Deterministic.
    """
    keys = _keys(graph)
    if not keys:
        return {}
    pairs = sorted(set(_pairs(graph)))
    layered = _digraph(keys, ((u, v) for u, v in pairs if u != v and v[1] != CLIENT))
    layer = _layers(layered)
    rows = _rows(layer, pairs)
    positions: dict[NodeKey, Position] = {}
    for number, keys_in_layer in enumerate(rows):
        middle = (len(keys_in_layer) - 1) / 2
        for index, key in enumerate(keys_in_layer):
            positions[key] = (float(number), middle - index)
    return positions


# --- layers ------------------------------------------------------------------------------------


def _keys(graph: Graph) -> list[NodeKey]:
    """Every node and edge end, sorted."""
    keys = {node.key for node in graph.nodes}
    keys.update(key for edge in graph.edges for key in (edge.source_key, edge.target_key))
    return sorted(keys)


def _pairs(graph: Graph) -> Iterable[tuple[NodeKey, NodeKey]]:
    return ((edge.source_key, edge.target_key) for edge in graph.edges)


def _digraph(
    keys: Iterable[NodeKey], pairs: Iterable[tuple[NodeKey, NodeKey]]
) -> nx.DiGraph[NodeKey]:
    digraph: nx.DiGraph[NodeKey] = nx.DiGraph()
    digraph.add_nodes_from(keys)
    digraph.add_edges_from(pairs)
    return digraph


def _layers(digraph: nx.DiGraph[NodeKey]) -> dict[NodeKey, int]:
    """Layer of every node: longest paths over the edges that follow `_rank`."""
    rank = _rank(digraph)
    layer: dict[NodeKey, int] = {}
    for key in sorted(digraph, key=rank.__getitem__):
        callers = (c for c in digraph.predecessors(key) if rank[c] < rank[key])
        layer[key] = max((layer[c] + 1 for c in callers), default=0)
    for key in digraph:  # a source that is no client moves up to its first callee
        if key[1] != CLIENT and digraph.in_degree(key) == 0 and digraph.out_degree(key):
            layer[key] = min(layer[callee] for callee in digraph.successors(key)) - 1
    return layer


def _rank(digraph: nx.DiGraph[NodeKey]) -> dict[NodeKey, int]:
    """A linear order of the nodes every edge follows, but for one edge per cycle at least:
    the strongly connected components in topological order, each ordered by `_cycle_order`."""
    condensed = nx.condensation(digraph)
    order: list[NodeKey] = []
    for component in nx.topological_sort(condensed):
        members: set[NodeKey] = condensed.nodes[component]["members"]
        order += members if len(members) == 1 else _cycle_order(digraph, sorted(members))
    return {key: number for number, key in enumerate(order)}


def _cycle_order(digraph: nx.DiGraph[NodeKey], members: list[NodeKey]) -> list[NodeKey]:
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
    first: list[NodeKey] = []
    last: list[NodeKey] = []
    sinks: deque[NodeKey] = deque()
    sources: deque[NodeKey] = deque()

    def take(name: NodeKey, into: list[NodeKey]) -> None:
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
    layer: dict[NodeKey, int], pairs: Iterable[tuple[NodeKey, NodeKey]]
) -> list[list[NodeKey]]:
    """Nodes per layer, ordered by barycenter sweeps to cut crossings."""
    before: dict[NodeKey, list[NodeKey]] = defaultdict(list)  # neighbours in earlier layers
    after: dict[NodeKey, list[NodeKey]] = defaultdict(list)  # neighbours in later layers
    for source, target in pairs:
        if layer[source] < layer[target]:
            before[target].append(source)
            after[source].append(target)
        elif layer[source] > layer[target]:
            before[source].append(target)
            after[target].append(source)
    rows: list[list[NodeKey]] = [[] for _ in range(max(layer.values()) + 1)]
    for key in sorted(layer, key=lambda key: (key[1] != CLIENT, key)):
        rows[layer[key]].append(key)
    y: dict[NodeKey, float] = {}
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


def _place(names: list[NodeKey], y: dict[NodeKey, float]) -> None:
    """Rows of one layer centred on 0, the first on top (row numbers grow downwards here)."""
    middle = (len(names) - 1) / 2
    for index, name in enumerate(names):
        y[name] = index - middle
