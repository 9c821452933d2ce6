"""The query layer the JSON API and the dashboards share: rollups in, `api.results` out.

Every function takes an open `AsyncConnection` and a `Window` (or `Series`) from `api.windows`
and runs one or two statements of `api.rollup_sql` (plus a cheap lookup of the name, only when
it has no row in the window). Reads only `service_rollups` and `edge_rollups`, never raw spans.

Choices the API documents:
- A service's signals come from its entry spans (`service_rollups`). A node without entry-span
  rows in the window (a mesh-metrics-only service, a database, a broker) gets the sum of its
  inbound edges instead; `signals_from` says which.
- An edge with mesh-metrics rows in the window counts those only (metrics are not sampled) and
  lists both sources; the choice is made once per window, for series points too.
- mTLS mesh-wide (`/mtls`) sums the edges as the graph draws them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from api import rollup_sql as sql
from api.results import (
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
from api.windows import Series, Window, bucket_ranges

MESH_METRICS = "mesh-metrics"


async def services(conn: AsyncConnection, window: Window) -> list[Node]:
    """Every service with requests in the window (entry spans, or inbound edges), by name."""
    return [node for node in (await graph(conn, window)).nodes if node.type == "service"]


async def graph(conn: AsyncConnection, window: Window) -> Graph:
    """Nodes (services and virtual nodes) and edges with their signals."""
    rows = await _service_rows(conn, window, sql.SERVICE_TOTALS)
    edges = await _edges(conn, window, sql.EDGE_ANY)
    totals = {row.service: row.signals for row in rows}
    return Graph(nodes=_nodes(window, totals, edges), edges=edges)


async def service_detail(conn: AsyncConnection, window: Window, name: str) -> ServiceDetail | None:
    """One node's signals, edges, operations and versions; None when `name` was never seen."""
    rows = await _service_rows(conn, window, sql.ONE_SERVICE, name)
    edges = await _edges(conn, window, sql.EDGE_OF, name)
    totals = {row.service: row.signals for row in rows if not row.operation and not row.version}
    nodes = [node for node in _nodes(window, totals, edges) if node.name == name]
    if not nodes:
        seen_as = await node_type(conn, name)
        if seen_as is None:
            return None
        nodes = [Node(name, seen_as, Signals(seconds=window.seconds), INBOUND_EDGES)]
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
    rows = await _fetch(conn, sql.services(chosen, sql.ONE_SERVICE_TOTAL, name))
    signals_from = ENTRY_SPANS
    if not rows:
        rows = _counted(await _fetch(conn, sql.edges(chosen, sql.EDGE_INTO, name)))[1]
        signals_from = INBOUND_EDGES
    if not rows and await node_type(conn, name) is None:
        return None
    points = [SeriesPoint(*series.point(n), _empty(series, n)) for n in range(series.size)]
    for row in rows:
        _add(points[row["point"]].signals, row)
    return ServiceSeries(name, series, points, signals_from)


async def mtls(conn: AsyncConnection, series: Series) -> MtlsSummary:
    """mTLS states mesh-wide and per edge over the series' window, and coverage per point."""
    edges = await _edges(conn, series.window, sql.EDGE_ANY)
    _, rows = _counted(await _fetch(conn, sql.mtls_points(sql.Rows.series(series))))
    points = [MtlsPoint(*series.point(n), Mtls()) for n in range(series.size)]
    for row in rows:
        points[row["point"]].mtls.merge(_mtls(row))
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
    )


async def node_type(conn: AsyncConnection, name: str) -> str | None:
    """The type `name` had in some rollup row (any time), None when it was never seen."""
    result = await conn.execute(sql.NODE_TYPE, {"name": name})
    found: str | None = result.scalar()
    return found


# --- rows to results ---------------------------------------------------------------------------


async def _fetch(conn: AsyncConnection, query: sql.Query) -> Sequence[RowMapping]:
    result = await conn.execute(query.statement, query.parameters)
    return result.mappings().all()


def _rows(window: Window) -> sql.Rows:
    lo, hi = window.start_unix, window.end_unix
    return sql.Rows.window(lo, hi, bucket_ranges(lo, hi))


@dataclass(frozen=True, slots=True)
class _ServiceRow:
    service: str
    operation: str
    version: str
    signals: Signals


async def _service_rows(
    conn: AsyncConnection, window: Window, where: str, name: str | None = None
) -> list[_ServiceRow]:
    """Service rows of the window summed per service, operation and version."""
    summed: dict[tuple[str, str, str], Signals] = {}
    for row in await _fetch(conn, sql.services(_rows(window), where, name)):
        key = (row["service"], row["operation"], row["version"])
        signals = summed.get(key)
        if signals is None:
            signals = summed[key] = Signals(seconds=window.seconds)
        _add(signals, row)
    return [_ServiceRow(*key, signals) for key, signals in summed.items()]


async def _edges(
    conn: AsyncConnection, window: Window, where: str, name: str | None = None
) -> list[Edge]:
    """Edges of the window, by source then target, each from the kind of rows that counts."""
    sources, rows = _counted(await _fetch(conn, sql.edges(_rows(window), where, name)))
    edges: dict[tuple[str, str], Edge] = {}
    for row in rows:
        key = (row["source"], row["target"])
        edge = edges.get(key)
        if edge is None:
            edge = Edge(
                source=key[0],
                source_type="",
                target=key[1],
                target_type="",
                sources=sources[key],
                signals=Signals(seconds=window.seconds),
            )
            edges[key] = edge
        edge.source_type = max(edge.source_type, row["source_type"])
        edge.target_type = max(edge.target_type, row["target_type"])
        _add(edge.signals, row)
    return [edges[key] for key in sorted(edges)]


def _counted(
    rows: Sequence[RowMapping],
) -> tuple[dict[tuple[str, str], tuple[str, ...]], list[RowMapping]]:
    """Kinds seen per edge (sorted), and the rows that count: mesh metrics when an edge has
    them, else its traces."""
    kinds: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in rows:
        kinds[(row["source"], row["target"])].add(row["kind"])
    counted = [
        row
        for row in rows
        if row["kind"] == MESH_METRICS or MESH_METRICS not in kinds[(row["source"], row["target"])]
    ]
    return {edge: tuple(sorted(seen)) for edge, seen in kinds.items()}, counted


def _add(signals: Signals, row: RowMapping) -> None:
    """Add one rollup row into `signals`, its histogram arrays straight into the sparse counts
    (building a `LatencyHistogram` per row to merge it would triple the cost)."""
    signals.requests += row["requests"]
    signals.errors += row["errors"]
    signals.mtls.merge(_mtls(row))
    counts = signals.latency.counts
    get = counts.get
    for key, count in zip(row["latency_keys"], row["latency_counts"], strict=True):
        counts[key] = get(key, 0) + count


def _mtls(row: RowMapping) -> Mtls:
    return Mtls(
        mutual=row["mtls_mutual"],
        tls=row["mtls_tls"],
        plaintext=row["mtls_plaintext"],
        unknown=row["mtls_unknown"],
    )


def _empty(series: Series, number: int) -> Signals:
    return Signals(seconds=series.window.covered(*series.point(number)))


def _nodes(window: Window, totals: Mapping[str, Signals], edges: Iterable[Edge]) -> list[Node]:
    """Nodes of the services with entry-span signals and of every edge's ends, by name."""
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
            nodes.append(Node(name, "service", totals[name], ENTRY_SPANS))
        else:
            signals = inbound.get(name) or Signals(seconds=window.seconds)
            nodes.append(Node(name, _node_type(types[name]), signals, INBOUND_EDGES))
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
