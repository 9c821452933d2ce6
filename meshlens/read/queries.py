"""The query layer the JSON API and the dashboards share: rollups in, `meshlens.read.results` out.

Every function takes an open `AsyncConnection` and a `Window` (or `Series`) from `read.windows`
and runs two or three statements of `read.rollup_sql` (plus a cheap lookup of the name, only
when it has no row in the window), which sum the rows per key and point. Reads only
`service_rollups`, `edge_rollups` and `saturation_rollups`, never raw spans or points.

Choices the API documents:
- A node is its name and its type (`results.NodeKey`): a service `redis` and a database `redis`
  are two nodes, and an edge is its two ends. Asked for a name alone, the answer is about its
  first node by type (`results.type_rank`: the service, when there is one).
- A service's signals come from its entry spans (`service_rollups`). A node without entry-span
  rows in the window (a mesh-metrics-only service, a database, a broker) gets the sum of its
  inbound edges instead; `signals_from` says which.
- An edge with mesh-metrics rows in the window counts those only (metrics are not sampled) and
  lists both sources; the choice is made once per window, for series points too.
- So does a service: with mesh-metrics rows into it in the window (`rollup_sql.METERED`: Istio's
  destination-reported `istio_requests_total`, Linkerd's outbound `response_total`), its
  requests, errors and mTLS states are those of its inbound mesh-metric edges, its latency that
  of its entry spans; operations and versions stay from entry spans. The mesh-wide series sums
  services the same way. Why, and the details: `read.node_signals`.
- Every count carries `unknown_rate` (requests from spans sampled at a rate nobody declared)
  and `metered` (requests from mesh metrics), so answers can say when a rate is a lower bound.
- mTLS mesh-wide (`/mtls`) sums the edges as the graph draws them; an edge's plaintext
  reasons are summed from the rows it counts.
- Saturation is the highest value of the saturation rows covering the window (or point) of
  the node's name, whatever its signals come from; None without any. It describes a service:
  of the nodes of one name, only the first by type (the service, when there is one) has it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from meshlens.read import node_signals as signals_of
from meshlens.read import rollup_sql as sql
from meshlens.read.results import (
    ENTRY_SPANS,
    INBOUND_EDGES,
    MESH_METRICS,
    SERVICE,
    Edge,
    EdgeKey,
    Graph,
    Mtls,
    MtlsPoint,
    MtlsSummary,
    Node,
    SeriesPoint,
    ServiceDetail,
    ServiceSeries,
    Signals,
    type_rank,
)
from meshlens.read.windows import Series, Window

Row = tuple[Any, ...]
VERSION_TOTALS = "t.operation = '' AND t.version <> ''"


async def services(conn: AsyncConnection, window: Window) -> list[Node]:
    """Every service with requests in the window (entry spans, or inbound edges), by name."""
    graph = await _graph(conn, window, edge_latency=False)
    return [node for node in graph.nodes if node.type == SERVICE]


async def graph(conn: AsyncConnection, window: Window, *, edge_latency: bool = True) -> Graph:
    """Nodes (services and virtual nodes) and edges with their signals; without
    `edge_latency`, edges carry counts and mTLS states but not always their latency (cheaper:
    the nodes stay whole)."""
    return await _graph(conn, window, edge_latency=edge_latency)


async def _graph(conn: AsyncConnection, window: Window, *, edge_latency: bool) -> Graph:
    """The graph; without `edge_latency`, the edges' latency (and plaintext reasons) only
    counts where a node sums its inbound edges: the nodes are whole, the edges are not."""
    rows = await _service_rows(conn, window, sql.SERVICE_TOTALS)
    edges = await _edges(conn, window, sql.EDGE_ANY, served_latency=edge_latency)
    saturation = await _saturation(conn, window, sql.SATURATION_ANY)
    totals = {row.service: row.signals for row in rows}
    return Graph(nodes=signals_of.nodes(window, totals, edges, saturation), edges=edges)


async def versions(conn: AsyncConnection, window: Window) -> list[tuple[str, str, Signals]]:
    """Every service's versions with their entry-span signals: (service, version, signals)."""
    rows = await _service_rows(conn, window, VERSION_TOTALS)
    return [(row.service, row.version, row.signals) for row in rows]


async def service_detail(
    conn: AsyncConnection, window: Window, name: str, type_: str | None = None
) -> ServiceDetail | None:
    """One node's signals, edges, operations and versions: the node (`name`, `type_`), or with
    `type_` None the first node of `name` by type; None when that node was never seen."""
    rows = await _service_rows(conn, window, sql.ONE_SERVICE, name)
    edges = await _edges(conn, window, sql.EDGE_OF, name)
    saturation = await _saturation(conn, window, sql.SATURATION_OF, name)
    totals = {row.service: row.signals for row in rows if not row.operation and not row.version}
    every = signals_of.nodes(window, totals, edges, saturation)
    named = [node for node in every if node.name == name]
    nodes = [node for node in named if type_ is None or node.type == type_]
    if not nodes:
        seen_as = await _seen_as(conn, name, type_)
        if seen_as is None:
            return None
        first = all(type_rank(seen_as) < type_rank(other.type) for other in named)
        signals = Signals(
            seconds=window.seconds, saturation=saturation.get(name) if first else None
        )
        nodes = [Node(name, seen_as, signals, INBOUND_EDGES)]
    node = nodes[0]
    served = node.type == SERVICE
    entry = totals.get(name, node.signals) if served else node.signals  # the shares' whole
    return ServiceDetail(
        node=node,
        upstream=[edge for edge in edges if edge.target_key == node.key],
        downstream=[edge for edge in edges if edge.source_key == node.key],
        operations=signals_of.shares(entry, {r.operation: r.signals for r in rows if served}),
        versions=signals_of.shares(entry, {r.version: r.signals for r in rows if served}),
    )


async def service_series(
    conn: AsyncConnection, series: Series, name: str, type_: str | None = None
) -> ServiceSeries | None:
    """One node's signals per point: the node (`name`, `type_`), or with `type_` None the first
    node of `name` by type; None when that node was never seen."""
    chosen = sql.Rows.series(series)
    points = [SeriesPoint(*series.point(n), _empty(series, n)) for n in range(series.size)]
    rows = await fetch(conn, sql.services(chosen, sql.ONE_SERVICE_TOTAL, name))
    edge_rows: Sequence[Row] = ()
    metered: Sequence[Row] = ()  # a service's counts when mesh metrics count into it
    if not rows or type_ not in (None, SERVICE):
        edge_rows = await fetch(conn, sql.edges(chosen, sql.EDGE_OF, name))
    else:
        metered = await fetch(conn, sql.metered(chosen, sql.METERED_INTO, name))
    types = {SERVICE} if rows else set()
    types.update(row[1] for row in edge_rows if row[0] == name)  # as the source
    types.update(row[3] for row in edge_rows if row[2] == name)  # as the target
    saturation = await fetch(conn, sql.saturation(chosen, sql.SATURATION_OF, name))
    if saturation and not types:  # a name with utilization gauges only is a service
        types.add(SERVICE)
    wanted = type_ or min(types, key=type_rank, default=None)
    node_type_ = wanted if wanted in types else await _seen_as(conn, name, wanted)
    if node_type_ is None:
        return None
    node = (name, node_type_)
    signals_from = INBOUND_EDGES
    if node_type_ == SERVICE and rows:
        signals_from = ENTRY_SPANS
        add_entry = signals_of.add_latency if metered else signals_of.add_columns
        for _, _, _, point, *columns in rows:  # with mesh metrics, only the latency
            add_entry(points[point].signals, columns)
        for point, *columns in metered:
            signals_of.add(points[point].signals, *columns, metered=True)
    else:
        inbound = [row for row in edge_rows if row[5] and (row[2], row[3]) == node]  # counted
        into_service = [row for row in inbound if row[4] == MESH_METRICS and row[3] == SERVICE]
        for _, _, _, _, kind, _, point, *columns, _ in into_service or inbound:
            signals_of.add(points[point].signals, *columns, metered=kind == MESH_METRICS)
    if all(type_rank(node_type_) <= type_rank(other) for other in types):
        for _, point, highest in saturation:
            points[point].signals.saturation = highest
    return ServiceSeries(name, series, points, signals_from, node_type_)


async def mesh_series(conn: AsyncConnection, series: Series) -> list[SeriesPoint]:
    """Requests, errors, latency and mTLS of every service, per point: of its entry spans, or
    where mesh metrics count into it in the window, their counts (and the entry spans'
    latency), as `services` takes them.

    A request through three services counts three times: each service served it."""
    points = [SeriesPoint(*series.point(n), _empty(series, n)) for n in range(series.size)]
    rows = sql.Rows.series(series)
    for point, *columns in await fetch(conn, sql.mesh_services(rows)):
        signals_of.add(points[point].signals, *columns)
    for point, *columns in await fetch(conn, sql.metered(rows)):
        signals_of.add(points[point].signals, *columns, metered=True)
    return points


async def mtls(conn: AsyncConnection, series: Series) -> MtlsSummary:
    """mTLS states mesh-wide and per edge over the series' window, and coverage per point."""
    edges = await _edges(conn, series.window, sql.EDGE_ANY)
    points, per_edge = await mtls_points(conn, series)
    totals = Mtls()
    for edge in edges:
        totals.merge(edge.signals.mtls)
    return MtlsSummary(
        totals=totals,
        edges=edges,
        plaintext_edges=[edge for edge in edges if edge.signals.mtls.plaintext > 0],
        tls_edges=[edge for edge in edges if edge.signals.mtls.tls > 0],
        series=series,
        points=points,
        edge_points=per_edge,
    )


async def mtls_points(
    conn: AsyncConnection, series: Series
) -> tuple[list[MtlsPoint], dict[EdgeKey, list[Mtls]]]:
    """mTLS states per point mesh-wide, and per point of each edge by `Edge.key`, from the
    rows that count (as the graph draws the edges)."""
    points = [MtlsPoint(*series.point(n), Mtls()) for n in range(series.size)]
    per_edge: dict[EdgeKey, list[Mtls]] = {}
    for row in await fetch(conn, sql.mtls_points(sql.Rows.series(series))):
        source, source_type, target, target_type, _, counted, point, *states = row
        if counted:
            points[point].mtls.add(*states)
            key = (source, source_type, target, target_type)
            edge_points = per_edge.setdefault(key, [Mtls() for _ in points])
            edge_points[point].add(*states)
    return points, per_edge


async def node_type(conn: AsyncConnection, name: str) -> str | None:
    """A type `name` had in some rollup row (any time), `service` when it ever was one; None
    when it was never seen."""
    result = await conn.execute(sql.NODE_TYPE, {"name": name})
    found: str | None = result.scalar()
    return found


async def node_seen(conn: AsyncConnection, name: str, type_: str) -> bool:
    """Whether the node (`name`, `type_`) is in some rollup row (any time)."""
    result = await conn.execute(sql.NODE_SEEN, {"name": name, "type": type_})
    return result.scalar() is not None


async def _seen_as(conn: AsyncConnection, name: str, type_: str | None) -> str | None:
    """`type_` if the node (`name`, `type_`) was ever seen, or with `type_` None a type `name`
    was seen with; None when never."""
    if type_ is None:
        return await node_type(conn, name)
    return type_ if await node_seen(conn, name, type_) else None


# --- rows to results ---------------------------------------------------------------------------


async def fetch(conn: AsyncConnection, query: sql.Query) -> Sequence[Row]:
    """The result rows of `query` (as many as keys and points: `meshlens.read.rollup_sql` sums).

    Every summing statement of the reads above (all but `node_type`) runs through here: the place
    to time them (`bench/alerting.py` does)."""
    result = await conn.execute(query.statement, query.parameters)
    return [tuple(row) for row in result]


def _rows(window: Window) -> sql.Rows:
    return sql.Rows.window(window.start_unix, window.end_unix)


@dataclass(frozen=True, slots=True)
class _ServiceRow:
    service: str
    operation: str
    version: str
    signals: Signals


async def _service_rows(
    conn: AsyncConnection, window: Window, where: sql.Where, name: str | None = None
) -> list[_ServiceRow]:
    """Service rows of the window summed per service, operation and version."""
    found = []
    for service, operation, version, _, *columns in await fetch(
        conn, sql.services(_rows(window), where, name)
    ):
        signals = Signals(seconds=window.seconds)
        signals_of.add(signals, *columns)
        found.append(_ServiceRow(service, operation, version, signals))
    return found


async def _edges(
    conn: AsyncConnection,
    window: Window,
    where: sql.Where,
    name: str | None = None,
    *,
    served_latency: bool = True,
) -> list[Edge]:
    """Edges of the window (one per source, source type, target and target type), by source,
    target and their types, each from the kind of rows that counts (mesh metrics when the edge
    has them in the window, else traces), listing the kinds seen."""
    edges: dict[EdgeKey, Edge] = {}
    kinds: dict[EdgeKey, set[str]] = defaultdict(set)
    query = sql.edges(_rows(window), where, name, served_latency=served_latency)
    for row in await fetch(conn, query):
        source, source_type, target, target_type, kind, counted, _, *columns, reasons = row
        key = (source, source_type, target, target_type)
        kinds[key].add(kind)
        edge = edges.get(key)
        if edge is None:
            edge = edges[key] = Edge(
                source=source,
                source_type=source_type,
                target=target,
                target_type=target_type,
                sources=(),
                signals=Signals(seconds=window.seconds),
            )
        if counted:
            signals_of.add(edge.signals, *columns, metered=kind == MESH_METRICS)
            for counts in reasons or ():
                edge.plaintext_reasons.update(counts)
    for key, edge in edges.items():
        edge.sources = tuple(sorted(kinds[key]))
    return sorted(edges.values(), key=_edge_order)


def _edge_order(edge: Edge) -> tuple[str, str, tuple[int, str], tuple[int, str]]:
    return (edge.source, edge.target, type_rank(edge.source_type), type_rank(edge.target_type))


async def _saturation(
    conn: AsyncConnection, window: Window, where: sql.Where, name: str | None = None
) -> dict[str, float]:
    """The highest utilization per service over the window."""
    rows = await fetch(conn, sql.saturation(_rows(window), where, name))
    return {service: highest for service, _, highest in rows}


def _empty(series: Series, number: int) -> Signals:
    return Signals(seconds=series.window.covered(*series.point(number)))
