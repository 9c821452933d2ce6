"""What each page shows: the query layer's results turned into template contexts.

Every function reads through `read.queries` on one read-only connection, never SQL of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from dashboards import charts, rows
from dashboards import service_map as drawing
from dashboards.charts import Line
from dashboards.formatting import SAMPLED
from dashboards.time_range import TimeRange
from meshlens.read import queries
from meshlens.read.results import (
    Edge,
    EdgeKey,
    Mtls,
    MtlsPoint,
    NodeKey,
    SeriesPoint,
    Signals,
    node_ids,
    node_order,
)

Context = dict[str, Any]
MAX_COVERAGE_LINES = 8
CHANGE_THRESHOLD = 0.01
"""An edge's coverage changed when its first and last known points differ by a point or more."""


async def overview(conn: AsyncConnection, when: TimeRange) -> Context:
    graph = await queries.graph(conn, when.window, edge_latency=False)  # no edge is shown
    points = await queries.mesh_series(conn, when.series)
    coverage_points, _ = await queries.mtls_points(conn, when.series)
    mesh = Signals(seconds=when.window.seconds)
    for point in points:
        mesh.merge(point.signals)
    mtls = Mtls()
    for edge in graph.edges:
        mtls.merge(edge.signals.mtls)
    x = charts.timestamps([point.start_unix for point in points])
    return {
        "mesh": rows.signal_row("mesh", mesh),
        "mtls": mtls,
        "coverage_trend": _trend([point.mtls for point in coverage_points]),
        "services": rows.service_rows(graph.nodes),
        "node_count": len(graph.nodes),
        "edge_count": len(graph.edges),
        "empty": not graph.nodes,
        "figures": {
            "mesh-rps": charts.line_chart(_rate_title(points), x, [_rps(points)], unit="req/s"),
            "mesh-errors": charts.line_chart(
                "Error ratio", x, [_error_rates(points, "errors")], percent=True
            ),
            "mesh-p95": charts.line_chart("p95 latency", x, [_quantile(points, "p95")], unit="ms"),
            "mesh-coverage": _coverage_chart(x, coverage_points, {}),
        },
    }


async def service_map(conn: AsyncConnection, when: TimeRange, focus: str, hops: int) -> Context:
    graph = await queries.graph(conn, when.window)
    shown = drawing.focus(graph, focus or None, hops)
    query = when.query()
    return {
        "services": sorted(node.name for node in graph.nodes if node.type == "service"),
        "focus": focus,
        "hops": hops,
        "focus_unknown": bool(focus) and not shown.nodes,
        "empty": not graph.nodes,
        "node_count": len(shown.nodes),
        "edge_count": len(shown.edges),
        "edges": rows.edge_rows(shown.edges),
        "figures": {"service-map": drawing.map_figure(shown, query=query)},
    }


async def service(
    conn: AsyncConnection, when: TimeRange, name: str, type_: str | None = None
) -> Context | None:
    """The service page's context: the node (`name`, `type_`), or with `type_` None the first
    node of `name` by type (the service, when there is one); None when it was never seen."""
    detail = await queries.service_detail(conn, when.window, name, type_)
    if detail is None:
        return None
    history = await queries.service_series(conn, when.series, name, detail.node.type)
    points = history.points if history is not None else []
    x = charts.timestamps([point.start_unix for point in points])
    versions = rows.share_rows(detail.versions)
    figures = {
        "service-rps": charts.line_chart(_rate_title(points), x, [_rps(points)], unit="req/s"),
        "service-errors": charts.line_chart(
            "Error ratio", x, [_error_rates(points, "errors")], percent=True
        ),
        "service-latency": charts.line_chart(
            "Latency",
            x,
            [_quantile(points, "p50"), _quantile(points, "p95"), _quantile(points, "p99")],
            unit="ms",
        ),
        "service-saturation": charts.line_chart(
            "Saturation",
            x,
            [Line("saturation", [point.signals.saturation for point in points], fill=True)],
            percent=True,
            y_max=1.0,
        ),
    }
    return {
        "name": name,
        "type": detail.node.type,
        "signals_from": detail.node.signals_from,
        "signals": rows.signal_row(name, detail.node.signals),
        "upstream": rows.edge_rows(detail.upstream),
        "downstream": rows.edge_rows(detail.downstream),
        "operations": rows.share_rows(detail.operations),
        "versions": versions,
        "figures": figures,
    }


async def mtls(conn: AsyncConnection, when: TimeRange) -> Context:
    summary = await queries.mtls(conn, when.series)
    by_service: dict[NodeKey, list[Mtls]] = {}
    for (_, _, target, target_type), states in summary.edge_points.items():
        merged = by_service.setdefault((target, target_type), [Mtls() for _ in states])
        for total, state in zip(merged, states, strict=True):
            total.merge(state)
    busiest = sorted(by_service, key=lambda key: -sum(_known(m) for m in by_service[key]))
    labels = node_ids(by_service)  # the name, unless two nodes of the lines share it
    shown = {
        labels[key]: by_service[key] for key in sorted(busiest[:MAX_COVERAGE_LINES], key=node_order)
    }
    x = charts.timestamps([point.start_unix for point in summary.points])
    edges = rows.edge_rows(summary.edges)
    return {
        "mtls": summary.totals,
        "empty": not summary.edges,
        "edges": edges,
        "plaintext_edges": [row for row in edges if row.mtls.plaintext > 0],
        "tls_edges": [row for row in edges if row.mtls.tls > 0],
        "changed_edges": _changed(summary.edge_points),
        "services": _service_coverage(summary.edges),
        "figures": {"mtls-coverage": _coverage_chart(x, summary.points, shown)},
    }


# --- series to lines ---------------------------------------------------------------------------


def _rate_title(points: Sequence[SeriesPoint]) -> str:
    """ "Requests/s", saying so when some point counts spans sampled at an unknown rate."""
    if any(point.signals.rate_is_lower_bound for point in points):
        return f"Requests/s — {SAMPLED}"
    return "Requests/s"


def _rps(points: Sequence[SeriesPoint]) -> Line:
    return Line("requests/s", [point.signals.rps for point in points], fill=True)


def _error_rates(points: Sequence[SeriesPoint], name: str) -> Line:
    return Line(name, [point.signals.error_rate for point in points], colour="#dc2626")


def _quantile(points: Sequence[SeriesPoint], name: str) -> Line:
    colours = {"p50": "#0891b2", "p95": "#2563eb", "p99": "#7c3aed"}
    values = [point.signals.latency_ms()[name] for point in points]
    return Line(name, values, colour=colours[name])


def _coverage_chart(
    x: list[str], mesh: Sequence[MtlsPoint], services: dict[str, list[Mtls]]
) -> charts.Figure:
    lines = [Line("mesh", [point.mtls.coverage for point in mesh], colour="#16a34a", fill=True)]
    lines += [
        Line(name, [state.coverage for state in states], dash="dot")
        for name, states in services.items()
    ]
    return charts.line_chart("mTLS coverage", x, lines, percent=True, y_max=1.05)


def _known(mtls: Mtls) -> int:
    return mtls.mutual + mtls.tls + mtls.plaintext


def _trend(states: Sequence[Mtls]) -> float | None:
    """Coverage of the last known point minus that of the first; None with fewer than two."""
    known = [state.coverage for state in states if state.coverage is not None]
    return known[-1] - known[0] if len(known) >= 2 else None


def _changed(edge_points: dict[EdgeKey, list[Mtls]]) -> list[dict[str, Any]]:
    """Edges whose coverage moved within the window: first and last known points."""
    changed = []
    for (source, source_type, target, target_type), states in sorted(edge_points.items()):
        known = [state.coverage for state in states if state.coverage is not None]
        if len(known) >= 2 and abs(known[-1] - known[0]) >= CHANGE_THRESHOLD:
            changed.append(
                {
                    "source": source,
                    "source_type": source_type,
                    "target": target,
                    "target_type": target_type,
                    "before": known[0],
                    "after": known[-1],
                }
            )
    return changed


def _service_coverage(edges: Sequence[Edge]) -> list[dict[str, Any]]:
    """Inbound mTLS per node (name and type) over the window, least covered first."""
    inbound: dict[NodeKey, Mtls] = {}
    for edge in edges:
        inbound.setdefault(edge.target_key, Mtls()).merge(edge.signals.mtls)
    found = [
        {"name": name, "type": type_, "mtls": state, "coverage": state.coverage}
        for (name, type_), state in inbound.items()
    ]
    return sorted(
        found,
        key=lambda row: (row["coverage"] is None, row["coverage"] or 0, row["name"], row["type"]),
    )
