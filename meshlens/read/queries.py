"""The query layer the JSON API and the dashboards share: rollups in, `meshlens.read.results` out.

Every function takes an open `AsyncConnection` and a `Window` (or `Series`) from `read.windows`
and runs two or three statements of `read.rollup_sql` (plus a cheap lookup of the name, only
when it has no row in the window), which sum the rows per key and point. Reads only
`service_rollups`, `edge_rollups` and `saturation_rollups`, never raw spans or points.

Choices the API documents:
- A service's signals come from its entry spans (`service_rollups`). A node without entry-span
  rows in the window (a mesh-metrics-only service, a database, a broker) gets the sum of its
  inbound edges instead; `signals_from` says which.
- An edge with mesh-metrics rows in the window counts those only (metrics are not sampled) and
  lists both sources; the choice is made once per window, for series points too.
- mTLS mesh-wide (`/mtls`) sums the edges as the graph draws them; an edge's plaintext
  reasons are summed from the rows it counts.
- Saturation is the highest value of the saturation rows covering the window (or point) of
  the node's name, whatever its signals come from; None without any.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from meshlens.read import rollup_sql as sql
from meshlens.read.results import (
    ENTRY_SPANS,
    INBOUND_EDGES,
    NODE_TYPE_PRECEDENCE,
    Edge,
    Graph,
    Mtls,
    MtlsPoint,
    MtlsSummary,
    Node,
    SeriesPoint,
    ServiceDetail,
    ServiceSeries,
    Share,
    Signals,
)
from meshlens.read.windows import Series, Window

Row = tuple[Any, ...]
VERSION_TOTALS = "t.operation = '' AND t.version <> ''"


async def services(conn: AsyncConnection, window: Window) -> list[Node]:
    """Every service with requests in the window (entry spans, or inbound edges), by name."""
    graph = await _graph(conn, window, edge_latency=False)
    return [node for node in graph.nodes if node.type == "service"]


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
    return Graph(nodes=_nodes(window, totals, edges, saturation), edges=edges)


async def versions(conn: AsyncConnection, window: Window) -> list[tuple[str, str, Signals]]:
    """Every service's versions with their entry-span signals: (service, version, signals)."""
    rows = await _service_rows(conn, window, VERSION_TOTALS)
    return [(row.service, row.version, row.signals) for row in rows]


async def service_detail(conn: AsyncConnection, window: Window, name: str) -> ServiceDetail | None:
    """One node's signals, edges, operations and versions; None when `name` was never seen."""
    rows = await _service_rows(conn, window, sql.ONE_SERVICE, name)
    edges = await _edges(conn, window, sql.EDGE_OF, name)
    saturation = await _saturation(conn, window, sql.SATURATION_OF, name)
    totals = {row.service: row.signals for row in rows if not row.operation and not row.version}
    nodes = [node for node in _nodes(window, totals, edges, saturation) if node.name == name]
    if not nodes:
        seen_as = await node_type(conn, name)
        if seen_as is None:
            return None
        signals = Signals(seconds=window.seconds, saturation=saturation.get(name))
        nodes = [Node(name, seen_as, signals, INBOUND_EDGES)]
    node = nodes[0]
    return ServiceDetail(
        node=node,
        upstream=[edge for edge in edges if edge.target == name],
        downstream=[edge for edge in edges if edge.source == name],
        operations=_shares(node.signals, {row.operation: row.signals for row in rows}),
        versions=_shares(node.signals, {row.version: row.signals for row in rows}),
    )


async def service_series(conn: AsyncConnection, series: Series, name: str) -> ServiceSeries | None:
    """One node's signals per point; None when `name` was never seen."""
    chosen = sql.Rows.series(series)
    points = [SeriesPoint(*series.point(n), _empty(series, n)) for n in range(series.size)]
    rows = await fetch(conn, sql.services(chosen, sql.ONE_SERVICE_TOTAL, name))
    signals_from = ENTRY_SPANS
    for _, _, _, point, *columns in rows:
        _add(points[point].signals, *columns)
    if not rows:
        rows = await fetch(conn, sql.edges(chosen, sql.EDGE_INTO, name))
        signals_from = INBOUND_EDGES
        for _, _, _, _, _, counted, point, *columns, _ in rows:
            if counted:
                _add(points[point].signals, *columns)
    saturation = await fetch(conn, sql.saturation(chosen, sql.SATURATION_OF, name))
    if not rows and not saturation and await node_type(conn, name) is None:
        return None
    for _, point, highest in saturation:
        points[point].signals.saturation = highest
    return ServiceSeries(name, series, points, signals_from)


async def mesh_series(conn: AsyncConnection, series: Series) -> list[SeriesPoint]:
    """Requests, errors, latency and mTLS of every service's entry spans, per point.

    A request through three services counts three times: each service served it."""
    points = [SeriesPoint(*series.point(n), _empty(series, n)) for n in range(series.size)]
    for point, *columns in await fetch(conn, sql.mesh_services(sql.Rows.series(series))):
        _add(points[point].signals, *columns)
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
) -> tuple[list[MtlsPoint], dict[tuple[str, str], list[Mtls]]]:
    """mTLS states per point mesh-wide, and per point of each edge by (source, target), from
    the rows that count (as the graph draws the edges)."""
    points = [MtlsPoint(*series.point(n), Mtls()) for n in range(series.size)]
    per_edge: dict[tuple[str, str], list[Mtls]] = {}
    for row in await fetch(conn, sql.mtls_points(sql.Rows.series(series))):
        source, target, _, counted, point, *states = row
        if counted:
            points[point].mtls.add(*states)
            edge_points = per_edge.setdefault((source, target), [Mtls() for _ in points])
            edge_points[point].add(*states)
    return points, per_edge


async def node_type(conn: AsyncConnection, name: str) -> str | None:
    """The type `name` had in some rollup row (any time), None when it was never seen."""
    result = await conn.execute(sql.NODE_TYPE, {"name": name})
    found: str | None = result.scalar()
    return found


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
        _add(signals, *columns)
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
    """Edges of the window, by source then target, each from the kind of rows that counts
    (mesh metrics when the edge has them in the window, else traces), listing the kinds seen."""
    edges: dict[tuple[str, str], Edge] = {}
    kinds: dict[tuple[str, str], set[str]] = defaultdict(set)
    query = sql.edges(_rows(window), where, name, served_latency=served_latency)
    for row in await fetch(conn, query):
        source, source_type, target, target_type, kind, counted, _, *columns, reasons = row
        key = (source, target)
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
        else:
            edge.source_type = max(edge.source_type, source_type)
            edge.target_type = max(edge.target_type, target_type)
        if counted:
            _add(edge.signals, *columns)
            for counts in reasons or ():
                edge.plaintext_reasons.update(counts)
    for key, edge in edges.items():
        edge.sources = tuple(sorted(kinds[key]))
    return [edges[key] for key in sorted(edges)]


async def _saturation(
    conn: AsyncConnection, window: Window, where: sql.Where, name: str | None = None
) -> dict[str, float]:
    """The highest utilization per service over the window."""
    rows = await fetch(conn, sql.saturation(_rows(window), where, name))
    return {service: highest for service, _, highest in rows}


def _add(
    signals: Signals,
    requests: int,
    errors: int,
    latency: str | None,
    mutual: int,
    tls: int,
    plaintext: int,
    unknown: int,
) -> None:
    """Add summed signal columns into `signals` (histograms are summed when asked)."""
    signals.requests += requests
    signals.errors += errors
    signals.mtls.add(mutual, tls, plaintext, unknown)
    if latency is not None:
        signals.latency.add_text(latency)


def _empty(series: Series, number: int) -> Signals:
    return Signals(seconds=series.window.covered(*series.point(number)))


def _nodes(
    window: Window,
    totals: Mapping[str, Signals],
    edges: Iterable[Edge],
    saturation: Mapping[str, float],
) -> list[Node]:
    """Nodes of the services with entry-span signals and of every edge's ends, by name, with
    the saturation of their name."""
    types: dict[str, set[str]] = defaultdict(set)
    inbound: dict[str, Signals] = {}
    for edge in edges:
        types[edge.source].add(edge.source_type)
        types[edge.target].add(edge.target_type)
        signals = inbound.setdefault(edge.target, Signals(seconds=window.seconds))
        signals.merge(edge.signals)
    for name in totals:
        types[name].add("service")
    nodes = []
    for name in sorted(types):
        if name in totals:
            node = Node(name, "service", totals[name], ENTRY_SPANS)
        else:
            signals = inbound.get(name) or Signals(seconds=window.seconds)
            node = Node(name, _node_type(types[name]), signals, INBOUND_EDGES)
        node.signals.saturation = saturation.get(name)
        nodes.append(node)
    return nodes


def _node_type(seen: set[str]) -> str:
    """One type for a node the edges typed differently: service first, then client, ..."""
    return next((t for t in NODE_TYPE_PRECEDENCE if t in seen), min(seen))


def _shares(total: Signals, parts: Mapping[str, Signals]) -> list[Share]:
    """Parts by requests (most first), each with its share of `total`'s requests.

    The '' key (rows that are not this breakdown) is left out.
    """
    shares = [
        Share(name, signals, signals.requests / total.requests if total.requests else None)
        for name, signals in parts.items()
        if name
    ]
    return sorted(shares, key=lambda share: (-share.signals.requests, share.name))
