"""The cardinality budget, end to end: real `meshlens serve` processes with small caps, spans
and metric points sent over OTLP/HTTP.

What is past a cap counts under `meshlens.overflow`, totals still add up, raw spans and points
are all stored, `/metrics` counts the folds, and the budget holds across two processes on one
database and across a restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from harness.postgres import DatabaseFactory
from harness.waiting import wait_until
from tests.metric_payloads import MetricSpec, Point, istio_labels, metrics_request
from tests.otlp_payloads import SpanSpec, new_ids, spans_request
from tests.support import FAST_DERIVATION, RunningServer, metric_total, start_server, stop_server

OVERFLOW = "meshlens.overflow"
SERVER, CLIENT = 2, 3
S = 1_000_000_000
CAPS = {
    "MESHLENS_MAX_SERVICES": "5",
    "MESHLENS_MAX_OPERATIONS_PER_SERVICE": "3",
    "MESHLENS_MAX_EDGES": "4",
    **FAST_DERIVATION,
}


@pytest.fixture
def servers(databases: DatabaseFactory, tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Starts `meshlens serve` processes on one fresh database; stops them all at the end."""
    url = databases.create()
    started: list[RunningServer] = []

    def start(name: str, **env: str) -> RunningServer:
        settings: dict[str, Any] = env
        started.append(start_server(url, tmp_path / f"{name}.log", **settings))
        return started[-1]

    yield start
    for server in started:
        stop_server(server)


def _post(server: RunningServer, path: str, body: bytes) -> None:
    answer = httpx.post(
        f"{server.otlp_http}{path}",
        content=body,
        headers={"content-type": "application/x-protobuf"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def _traces(server: RunningServer, specs: list[SpanSpec]) -> None:
    request: ExportTraceServiceRequest = spans_request(specs)
    _post(server, "/v1/traces", request.SerializeToString())


def _metrics(server: RunningServer, request: ExportMetricsServiceRequest) -> None:
    _post(server, "/v1/metrics", request.SerializeToString())


def _roots(service: str, *operations: str) -> list[SpanSpec]:
    """Root SERVER spans of `service`, one per operation: requests from the client `user`."""
    return [SpanSpec(service, SERVER, *new_ids(), name=operation) for operation in operations]


def _call(client: str, server: str, operation: str = "op") -> list[SpanSpec]:
    """A request client -> server: its CLIENT span and the SERVER span under it."""
    trace_id, span_id = new_ids()
    _, server_span = new_ids()
    return [
        SpanSpec(client, CLIENT, trace_id, span_id, b"\x01" * 8, name=operation),
        SpanSpec(server, SERVER, trace_id, server_span, span_id, name=operation),
    ]


def _database_call(client: str, database: str) -> list[SpanSpec]:
    trace_id, span_id = new_ids()
    attributes: dict[str, object] = {"db.system": "postgresql", "db.namespace": database}
    return [SpanSpec(client, CLIENT, trace_id, span_id, b"\x02" * 8, attributes=attributes)]


def _services(server: RunningServer) -> dict[str, int]:
    rows = server.query(
        "SELECT service, sum(requests) FROM service_rollups WHERE resolution = 60"
        " AND operation = '' AND version = '' GROUP BY service"
    )
    return {name: int(total) for name, total in rows}


def _operations(server: RunningServer, service: str) -> dict[str, int]:
    rows = server.query(
        "SELECT operation, sum(requests) FROM service_rollups WHERE resolution = 60"
        " AND service = %s AND operation <> '' GROUP BY operation",
        (service,),
    )
    return {name: int(total) for name, total in rows}


def _edges(server: RunningServer) -> dict[tuple[str, str], int]:
    rows = server.query(
        "SELECT source, target, sum(requests) FROM edge_rollups WHERE resolution = 60"
        " GROUP BY source, target"
    )
    return {(source, target): int(total) for source, target, total in rows}


def _metric(servers: list[RunningServer], name: str, kind: str) -> float:
    """The sum over `servers` of the sample `name`{kind=...} on their /metrics."""
    return sum(metric_total(server, name, kind=kind) for server in servers)


def _get(server: RunningServer, path: str) -> Any:
    answer = httpx.get(f"{server.web}{path}", timeout=10)
    assert answer.status_code == 200, (path, answer.text[:500])
    return answer.json() if answer.headers["content-type"].startswith("application/json") else None


def test_services_operations_and_edges_past_their_caps(
    servers: Callable[..., RunningServer],
) -> None:
    first, second = servers("first", **CAPS), servers("second", **CAPS)
    # within the caps: nodes user, front, back, x0, x1 (5); edges user->front, front->back,
    # user->x0, user->x1 (4); front's operations op0..op2 (3)
    _traces(first, _roots("front", "op0", "op1", "op2") + _call("front", "back"))
    wait_until(
        lambda: _services(first) == {"front": 3, "back": 1},
        timeout=20,
        what="front's 3 and back's 1 requests",
        every=0.1,
    )
    _traces(second, _roots("x0", "op") + _roots("x1", "op"))
    wait_until(lambda: len(_services(first)) == 4, timeout=20, what="4 services", every=0.1)
    assert _metric([first, second], "meshlens_cardinality_overflow_total", "service") == 0

    # past them, sent to both processes: new services, operations, an edge, a database
    _traces(first, _roots("x2", "op", "op") + _roots("x3", "op"))
    _traces(second, _roots("front", "op3", "op4", "op0"))
    _traces(first, _call("back", "x0"))
    _traces(second, _database_call("front", "orders"))
    expected_services = {"front": 6, "back": 1, "x0": 2, "x1": 1, OVERFLOW: 3}
    expected_edges = {
        ("user", "front"): 6,
        ("front", "back"): 1,
        ("user", "x0"): 1,
        ("user", "x1"): 1,
        ("user", OVERFLOW): 3,  # x2, x3: nodes past the cap
        (OVERFLOW, "x0"): 1,  # back -> x0: an edge past the cap keeps its target
        ("front", OVERFLOW): 1,  # the database orders: a node past the cap
    }
    wait_until(
        lambda: _services(first) == expected_services and _edges(first) == expected_edges,
        timeout=20,
        what="the services and edges within the budget",
        every=0.1,
    )
    assert _operations(first, "front") == {"op0": 2, "op1": 1, "op2": 1, OVERFLOW: 2}
    assert server_count(first, "SELECT count(*) FROM spans") == 16  # every raw span is stored

    both = [first, second]
    wait_until(
        lambda: _metric(both, "meshlens_cardinality_overflow_total", "edge") == 5,
        timeout=20,
        what="5 edge requests counted under the overflow",
        every=0.1,
    )
    assert _metric(both, "meshlens_cardinality_overflow_total", "service") == 3
    assert _metric(both, "meshlens_cardinality_overflow_total", "operation") == 2
    assert _metric([first], "meshlens_cardinality_limit", "service") == 5
    known = [_metric([server], "meshlens_cardinality_known", "service") for server in both]
    assert max(known) == 5
    logs = first.log() + second.log()
    assert 1 <= logs.count("cardinality cap reached for service") <= 2  # once per process

    # the overflow bucket is a node like any other in the API and on the pages
    services = _get(first, "/api/v1/services?window=15m")["services"]
    assert {s["name"]: s["requests"] for s in services} == {
        name: total for name, total in expected_services.items()
    }
    graph = _get(first, "/api/v1/graph?window=15m")
    assert {(e["source"], e["target"]) for e in graph["edges"]} >= {(OVERFLOW, "x0")}
    assert _get(first, f"/api/v1/services/{OVERFLOW}?window=15m")["requests"] == 3
    for page in ("/", "/map", f"/services/{OVERFLOW}", "/mtls"):
        _get(first, page)

    # a restart keeps the budget: known names stay themselves, new ones still fold
    stop_server(first)
    stop_server(second)
    third = servers("third", **CAPS)
    _traces(third, _roots("x4", "op") + _roots("x1", "op") + _roots("front", "op1", "op5"))
    wait_until(
        lambda: _services(third).get(OVERFLOW) == 4,
        timeout=20,
        what="4 requests of the third process under the overflow",
        every=0.1,
    )
    assert _services(third)["x1"] == 2
    assert _operations(third, "front") == {"op0": 2, "op1": 2, "op2": 1, OVERFLOW: 3}
    assert "x4" not in _services(third)


def server_count(server: RunningServer, sql: str) -> int:
    return int(server.query(sql)[0][0])


def _gauges(time_unix_nano: int, *queues: int) -> MetricSpec:
    points = [Point({"queue": f"q{n}"}, time_unix_nano, value=float(n)) for n in queues]
    return MetricSpec("queue.depth", "gauge", points)


def _istio(start: int, time_unix_nano: int, ok: float, failed: float) -> MetricSpec:
    return MetricSpec(
        "istio_requests_total",
        "sum",
        [
            Point(istio_labels("ma", "mb"), time_unix_nano, start, ok),
            Point(istio_labels("ma", "mb", response_code="503"), time_unix_nano, start, failed),
        ],
    )


PROXY: dict[str, object] = {"service.name": "istio-proxies", "service.instance.id": "ma:15090"}


def test_metric_series_past_the_cap(servers: Callable[..., RunningServer]) -> None:
    caps = {"MESHLENS_MAX_METRIC_SERIES": "4", **FAST_DERIVATION}
    server, other = servers("series", **caps), servers("series-other", **caps)
    t0 = time.time_ns() - 60 * S
    _metrics(server, metrics_request(PROXY, [_gauges(t0, 0, 1, 2, 3)]))  # the cap: 4 series
    late = metrics_request(PROXY, [_istio(t0 - S, t0, 10, 4), _gauges(t0, 4, 5)])
    _metrics(other, late)  # past it (the other process knows): two counters, two gauges at t0
    _metrics(
        server,
        metrics_request(PROXY, [_istio(t0 - S, t0 + 10 * S, 25, 6), _gauges(t0 + 10 * S, 0, 4)]),
    )
    _metrics(other, late)  # a resend: stored once
    _metrics(server, late)

    series = server.query("SELECT name, service, attributes FROM metric_series ORDER BY name")
    own = [row for row in series if row[1] != OVERFLOW]
    assert len(own) == 4  # the first four series are kept as themselves
    assert sorted(row[2]["queue"] for row in own) == ["q0", "q1", "q2", "q3"]
    overflow = {row[0]: row[2] for row in series if row[1] == OVERFLOW}
    assert overflow == {
        "istio_requests_total": {"otel.metric.overflow": True},
        "queue.depth": {"otel.metric.overflow": True},
    }
    assert server_count(server, "SELECT count(*) FROM metric_points") == 12  # all of them
    folded = server.query(
        "SELECT s.name, p.time_unix_nano, count(DISTINCT p.overflow_key) FROM metric_points p"
        " JOIN metric_series s ON s.id = p.series_id WHERE s.service = %s GROUP BY 1, 2",
        (OVERFLOW,),
    )
    assert sorted(folded) == [
        ("istio_requests_total", t0, 2),  # two series at one time: two points
        ("istio_requests_total", t0 + 10 * S, 2),
        ("queue.depth", t0, 2),
        ("queue.depth", t0 + 10 * S, 1),
    ]

    # the counters still become deltas per series: 10 + 15 and 4 + 2 (503s), not a mix
    def edge() -> tuple[int, int] | None:
        rows = server.query(
            "SELECT sum(requests), sum(errors) FROM edge_rollups WHERE resolution = 60"
            " AND source = 'ma' AND target = 'mb' AND source_kind = 'mesh-metrics'"
        )
        return (int(rows[0][0]), int(rows[0][1])) if rows and rows[0][0] is not None else None

    wait_until(
        lambda: edge() == (31, 6),
        timeout=20,
        what="the edge's 31 requests and 6 errors",
        every=0.1,
    )
    both = [server, other]
    assert _metric(both, "meshlens_cardinality_overflow_total", "series") == 7  # resends not
    assert _metric([server], "meshlens_cardinality_known", "series") == 4
    assert _metric([server], "meshlens_cardinality_limit", "series") == 4
    assert other.log().count("cardinality cap reached for series") == 1

    stop_server(server)  # a restart keeps the budget
    stop_server(other)
    again = servers("series-again", **caps)
    t2 = t0 + 20 * S
    _metrics(again, metrics_request(PROXY, [_gauges(t2, 1, 6)]))
    assert server_count(again, "SELECT count(*) FROM metric_series") == 6
    assert server.query(
        "SELECT count(*) FROM metric_points p JOIN metric_series s ON s.id = p.series_id"
        " WHERE p.time_unix_nano = %s AND s.service = %s",
        (t2, OVERFLOW),
    ) == [(1,)]
    assert _metric([again], "meshlens_cardinality_overflow_total", "series") == 1
