"""Edges from Istio and Linkerd metrics, and saturation from gauges, as the rollups hold them.

Two real `meshlens serve` processes share one database (series cursors live in PostgreSQL, so
a series' points may reach either); metrics are hand-made OTLP (cumulative sums and histograms
with mesh labels, as a Collector's Prometheus receiver sends them), saturation comes from the
OpenTelemetry SDK.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from harness.postgres import DatabaseFactory
from harness.waiting import wait_until
from meshlens.signals.histogram import LatencyHistogram
from tests.metric_payloads import (
    MetricSpec,
    Point,
    buckets,
    istio_labels,
    linkerd_labels,
    metrics_request,
)
from tests.otlp_payloads import SpanSpec, new_ids, spans_request
from tests.support import FAST_DERIVATION, RunningServer, running_server, unique_names

S = 1_000_000_000
MS = 1_000_000
REQUESTS, DURATION = "istio_requests_total", "istio_request_duration_milliseconds"


def _proxy(name: str) -> dict[str, object]:
    """The resource of one scraped proxy (its own instance: the new-series rule is per resource)."""
    return {"service.name": "istio-proxies", "service.instance.id": f"{name}:15090"}


def _send(server: RunningServer, request: ExportMetricsServiceRequest) -> None:
    answer = httpx.post(
        f"{server.otlp_http}/v1/metrics",
        content=request.SerializeToString(),
        headers={"content-type": "application/x-protobuf"},
    )
    assert answer.status_code == 200, answer.text
    response = ExportMetricsServiceResponse.FromString(answer.content)
    assert response.partial_success.rejected_data_points == 0, response


def _counter(resource: dict[str, object], *points: Point, name: str = REQUESTS) -> Any:
    return metrics_request(resource, [MetricSpec(name, "sum", list(points))])


def _edges(server: RunningServer, source: str, resolution: int = 60) -> dict[str, dict[str, Any]]:
    """Per `target/source_kind`: summed signals, plaintext reasons and the latency histogram."""
    rows = server.query(
        "SELECT target, target_type, source_kind, requests, errors, mtls_mutual, mtls_tls,"
        " mtls_plaintext, mtls_unknown, plaintext_reasons, latency_keys, latency_counts"
        " FROM edge_rollups WHERE resolution = %s AND source = %s",
        (resolution, source),
    )
    edges: dict[str, dict[str, Any]] = {}
    names = ("requests", "errors", "mutual", "tls", "plaintext", "unknown")
    for row in rows:
        edge = edges.setdefault(
            f"{row[0]}/{row[2]}",
            {
                "type": row[1],
                "reasons": Counter(),
                "latency": LatencyHistogram(),
                **dict.fromkeys(names, 0),
            },
        )
        for name, value in zip(names, row[3:9], strict=True):
            edge[name] += value
        edge["reasons"].update(row[9])
        edge["latency"].merge(LatencyHistogram.from_arrays(row[10], row[11]))
    return edges


def _settled(server: RunningServer, source: str, key: str, requests: int) -> dict[str, Any]:
    """The edge once it holds `requests`; after another few passes it must still hold them."""
    wait_until(
        lambda: _edges(server, source).get(key, {}).get("requests", 0) >= requests,
        timeout=15,
        what="the edge's requests",
    )
    time.sleep(1.5)
    edge = _edges(server, source)[key]
    assert edge["requests"] == requests
    return edge


def test_counter_deltas_across_a_reset_and_two_processes(
    twin_servers: tuple[RunningServer, RunningServer],
) -> None:
    first, second = twin_servers
    name = unique_names()
    proxy = _proxy(name("reviews"))
    ok = istio_labels(name("productpage"), name("reviews"))
    failed = istio_labels(name("productpage"), name("reviews"), response_code="503")
    base = time.time_ns() - 120 * S
    start = base - 20 * S  # the proxy started 20 s before its first scrape: counted from there
    restart = base + 20 * S
    scrapes = [
        (base, start, 10, 2),
        (base + 15 * S, start, 25, 3),
        (base + 30 * S, restart, 4, 0),  # the counters dropped: a reset, 4 new requests
        (base + 45 * S, restart, 9, 1),
    ]
    for n, (at, began, good, bad) in enumerate(scrapes):
        request = _counter(proxy, Point(ok, at, began, good), Point(failed, at, began, bad))
        _send((first, second)[n % 2], request)
        time.sleep(0.4)  # in separate deriver passes, whichever process runs them
    key = f"{name('reviews')}/mesh-metrics"
    edge = _settled(first, name("productpage"), key, (10 + 15 + 4 + 5) + (2 + 1 + 0 + 1))
    assert (edge["type"], edge["errors"]) == ("service", 2 + 1 + 0 + 1)
    for coarser in (600, 3600):
        rows = _edges(first, name("productpage"), resolution=coarser)
        assert rows[key]["requests"] == edge["requests"], coarser


def test_a_series_counts_from_its_start_only_when_new(
    twin_servers: tuple[RunningServer, RunningServer],
) -> None:
    first, _ = twin_servers
    name = unique_names()
    proxy = _proxy(name("cart"))
    ok = istio_labels(name("web"), name("cart"))
    failed = istio_labels(name("web"), name("cart"), response_code="500")
    long_ago = time.time_ns() - 2 * 3600 * S  # meshlens was not watching then
    now = time.time_ns() - 30 * S
    _send(first, _counter(proxy, Point(ok, now, long_ago, 1000)))  # a baseline only
    time.sleep(0.8)
    # the next scrape: 10 more, and a series that did not exist at the first scrape
    _send(
        first,
        _counter(
            proxy, Point(ok, now + 15 * S, long_ago, 1010), Point(failed, now + 15 * S, long_ago, 2)
        ),
    )
    edge = _settled(first, name("web"), f"{name('cart')}/mesh-metrics", 12)
    assert edge["errors"] == 2


def test_resent_and_late_points_count_once(
    twin_servers: tuple[RunningServer, RunningServer],
) -> None:
    first, second = twin_servers
    name = unique_names()
    proxy = _proxy(name("ratings"))
    labels = istio_labels(name("reviews"), name("ratings"))
    base = time.time_ns() - 90 * S
    opening = _counter(proxy, Point(labels, base, base - 5 * S, 5))
    _send(first, opening)
    _send(second, opening)  # a resend, through the other process
    time.sleep(0.8)
    latest_point = Point(labels, base + 30 * S, base - 5 * S, 20)
    latest = _counter(proxy, latest_point)
    _send(first, latest)
    time.sleep(0.8)
    _send(second, _counter(proxy, Point(labels, base + 15 * S, base - 5 * S, 12)))  # late
    time.sleep(0.8)
    newest = Point(labels, base + 45 * S, base - 5 * S, 26)
    _send(first, _counter(proxy, latest_point, newest))  # a resend with a new point
    edge = _settled(first, name("reviews"), f"{name('ratings')}/mesh-metrics", 26)
    assert edge["mutual"] == 26
    out_of_order = sum(
        _metric(s, 'meshlens_derive_metric_points_total{outcome="out_of_order"}')
        for s in twin_servers
    )
    assert out_of_order >= 1


def _metric(server: RunningServer, line_start: str) -> float:
    for line in httpx.get(f"{server.web}/metrics").text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    return 0.0


def test_destination_reporter_counts_once_and_source_reports_outside_the_mesh(
    twin_servers: tuple[RunningServer, RunningServer],
) -> None:
    first, _ = twin_servers
    name = unique_names()
    at = time.time_ns() - 30 * S
    start = at - 10 * S
    to_details = istio_labels(name("productpage"), name("details"))
    seen_by_source = {**to_details, "reporter": "source", "connection_security_policy": "unknown"}
    to_stripe = istio_labels(
        name("productpage"),
        "x",
        reporter="source",
        destination_workload="unknown",
        destination_canonical_service="unknown",
        destination_service="api.stripe.com",
        destination_service_name="api.stripe.com",
        connection_security_policy="unknown",
    )
    _send(first, _counter(_proxy(name("details")), Point(to_details, at, start, 7)))
    _send(
        first,
        _counter(
            _proxy(name("productpage")),
            Point(seen_by_source, at, start, 7),
            Point(to_stripe, at, start, 3),
        ),
    )
    _settled(first, name("productpage"), f"{name('details')}/mesh-metrics", 7)
    edges = _edges(first, name("productpage"))
    assert set(edges) == {f"{name('details')}/mesh-metrics", "api.stripe.com/mesh-metrics"}
    stripe = edges["api.stripe.com/mesh-metrics"]
    assert (stripe["type"], stripe["requests"], stripe["unknown"]) == ("external", 3, 3)


def test_mtls_states_and_a_plaintext_reason(
    twin_servers: tuple[RunningServer, RunningServer],
) -> None:
    first, _ = twin_servers
    name = unique_names()
    at = time.time_ns() - 30 * S
    start = at - 10 * S
    istio = [
        Point(
            istio_labels(name("web"), name("api"), connection_security_policy=policy), at, start, n
        )
        for policy, n in (("mutual_tls", 4), ("none", 3), ("unknown", 2))
    ]
    _send(first, _counter(_proxy(name("api")), *istio))
    linkerd = metrics_request(
        {"service.name": "linkerd-proxy", "service.instance.id": f"{name('web')}:4191"},
        [
            MetricSpec(
                "response_total",
                "sum",
                [
                    Point(linkerd_labels(name("web"), name("books")), at, start, 5),
                    Point(
                        linkerd_labels(
                            name("web"),
                            name("books"),
                            tls="no_identity",
                            no_tls_reason="not_provided_by_service_discovery",
                        ),
                        at,
                        start,
                        2,
                    ),
                    Point(
                        linkerd_labels(name("web"), name("books"), classification="failure"),
                        at,
                        start,
                        1,
                    ),
                    Point(
                        linkerd_labels(name("web"), name("books"), direction="inbound"),
                        at,
                        start,
                        50,
                    ),
                ],
            )
        ],
    )
    _send(first, linkerd)
    api = _settled(first, name("web"), f"{name('api')}/mesh-metrics", 9)
    assert (api["mutual"], api["tls"], api["plaintext"], api["unknown"]) == (4, 0, 3, 2)
    books = _settled(first, name("web"), f"{name('books')}/mesh-metrics", 8)
    assert (books["mutual"], books["plaintext"], books["errors"]) == (6, 2, 1)
    assert books["reasons"] == {"not_provided_by_service_discovery": 2}
    for coarser in (600, 3600):
        assert _edges(first, name("web"), coarser)[f"{name('books')}/mesh-metrics"]["reasons"] == {
            "not_provided_by_service_discovery": 2
        }
    answer = httpx.get(f"{first.web}/api/v1/mtls?window=15m", timeout=10).json()
    plaintext = {(e["source"], e["target"]): e for e in answer["plaintext_edges"]}
    listed = plaintext[(name("web"), name("books"))]
    assert listed["reason"] == "not_provided_by_service_discovery"
    assert listed["reasons"] == {"not_provided_by_service_discovery": 2}
    assert listed["plaintext_reasons"] == listed["reasons"]
    istio_edge = plaintext[(name("web"), name("api"))]  # Istio gives no reason
    assert (istio_edge["reason"], istio_edge["reasons"]) == (None, {})


def test_latency_from_the_duration_histogram(
    twin_servers: tuple[RunningServer, RunningServer],
) -> None:
    first, _ = twin_servers
    name = unique_names()
    labels = istio_labels(name("web"), name("search"), reporter="source")
    bounds = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000]
    at = time.time_ns() - 60 * S
    start = at - 10 * S
    histogram = metrics_request(
        _proxy(name("web")),
        [
            MetricSpec(
                DURATION,
                "histogram",
                [Point(labels, at, start, buckets=buckets(bounds, le_100=10))],
                unit="ms",
            )
        ],
    )
    _send(first, histogram)
    time.sleep(0.8)
    later = buckets(bounds, le_100=10, le_250=30, le_inf=1)
    histogram = metrics_request(
        _proxy(name("web")),
        [
            MetricSpec(
                DURATION,
                "histogram",
                [Point(labels, at + 15 * S, start, buckets=later)],
                unit="ms",
            )
        ],
    )
    _send(first, histogram)
    key = f"{name('search')}/mesh-metrics"

    def latency() -> LatencyHistogram:
        edge = _edges(first, name("web")).get(key)
        return edge["latency"] if edge else LatencyHistogram()

    wait_until(
        lambda: latency().total == 41,
        timeout=15,
        what="41 requests in the latency histogram",
    )
    time.sleep(1)
    measured = latency()
    assert measured.quantile(0.1) < 100 * MS < measured.quantile(0.5) < 250 * MS
    assert measured.quantile(1.0) >= 30_000 * MS * 0.98  # the overflow sits on the last bound
    assert _edges(first, name("web"))[key]["requests"] == 0  # requests come from the counter


def test_an_edge_from_traces_and_mesh_metrics_lists_both(
    twin_servers: tuple[RunningServer, RunningServer],
) -> None:
    first, _ = twin_servers
    name = unique_names()
    trace_id, client_id = new_ids()
    spans = [
        SpanSpec(name("checkout"), 3, trace_id, client_id),
        SpanSpec(name("cart"), 2, trace_id, os.urandom(8), client_id),
    ]
    answer = httpx.post(
        f"{first.otlp_http}/v1/traces",
        content=spans_request(spans).SerializeToString(),
        headers={"content-type": "application/x-protobuf"},
    )
    assert answer.status_code == 200
    at = time.time_ns() - 10 * S
    labels = istio_labels(name("checkout"), name("cart"))
    _send(first, _counter(_proxy(name("cart")), Point(labels, at, at - 5 * S, 40)))
    wait_until(
        lambda: len(_edges(first, name("checkout"))) == 2,
        timeout=15,
        what="two edges from checkout",
    )
    edges = _edges(first, name("checkout"))
    assert edges[f"{name('cart')}/traces"]["requests"] == 1
    assert edges[f"{name('cart')}/mesh-metrics"]["requests"] == 40


def test_cursors_survive_a_restart(databases: DatabaseFactory, tmp_path: Path) -> None:
    url = databases.create()
    name = unique_names()
    proxy = _proxy(name("api"))
    labels = istio_labels(name("web"), name("api"))
    base = time.time_ns() - 60 * S
    with running_server(url, tmp_path / "1.log", **FAST_DERIVATION) as server:
        _send(server, _counter(proxy, Point(labels, base, base - 3600 * S, 500)))  # baseline
        time.sleep(1)
    with running_server(url, tmp_path / "2.log", **FAST_DERIVATION) as server:
        _send(server, _counter(proxy, Point(labels, base + 15 * S, base - 3600 * S, 512)))
        _settled(server, name("web"), f"{name('api')}/mesh-metrics", 12)


def test_saturation_from_an_sdk_gauge(
    twin_servers: tuple[RunningServer, RunningServer],
) -> None:
    first, _ = twin_servers
    service = unique_names()("inventory")
    exporter = OTLPMetricExporter(endpoint=f"{first.otlp_http}/v1/metrics", timeout=10)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(
        resource=Resource.create({"service.name": service}), metric_readers=[reader]
    )
    meter = provider.get_meter("tests.saturation")

    def gauge(value: float) -> Callable[[CallbackOptions], list[Observation]]:
        return lambda _: [Observation(value)]

    meter.create_observable_gauge("process.cpu.utilization", callbacks=[gauge(0.37)], unit="1")
    meter.create_observable_gauge("k8s.container.cpu_limit_utilization", callbacks=[gauge(0.55)])
    meter.create_observable_gauge("app.queue.ratio", callbacks=[gauge(0.99)])  # not a setting
    minute = time.time() // 60 * 60
    provider.shutdown()  # one collection and export

    def saturation() -> dict[int, list[tuple[int, float]]]:
        rows = first.query(
            "SELECT resolution, bucket_unix, value FROM saturation_rollups WHERE service = %s",
            (service,),
        )
        found: dict[int, list[tuple[int, float]]] = {}
        for resolution, bucket, value in rows:
            found.setdefault(resolution, []).append((bucket, value))
        return found

    wait_until(
        lambda: set(saturation()) == {60, 600, 3600},
        timeout=15,
        what="saturation at every resolution",
    )
    found = saturation()
    ((bucket, value),) = found[60]
    assert value == pytest.approx(0.55)
    assert bucket in (minute, minute + 60)  # the export may cross a minute boundary
    assert found[600] == [(bucket // 600 * 600, pytest.approx(0.55))]
    assert found[3600] == [(bucket // 3600 * 3600, pytest.approx(0.55))]
    detail = httpx.get(f"{first.web}/api/v1/services/{service}?window=15m", timeout=10).json()
    assert detail["saturation"] == pytest.approx(0.55)  # a service known by its gauges only
    assert detail["requests"] == 0
