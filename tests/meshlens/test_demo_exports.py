"""What `meshlens demo` exports, request by request and scrape by scrape, to a real HTTP server
standing in for meshlens: every proxy and every app exports on its own, and the proxies'
metrics are scrapes of cumulative series, as a Collector's `prometheus` receiver sends them.
"""

from __future__ import annotations

import gzip
import subprocess
import time
from dataclasses import dataclass

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from harness.repo import REPO
from harness.webhook_sink import RecordedRequest, WebhookSink
from tests.meshlens.demo_cli import demo_command, demo_environment

S = 1_000_000_000


def _body(request: RecordedRequest) -> bytes:
    if request.headers.get("content-encoding") == "gzip":
        return gzip.decompress(request.body)
    return request.body


@dataclass(frozen=True)
class SinkRun:
    """What one demo run sent to a real HTTP server standing in for meshlens."""

    began_ns: int  # before the demo started
    traces: list[ExportTraceServiceRequest]
    metrics: list[ExportMetricsServiceRequest]


@pytest.fixture(scope="module")
def sink_run() -> SinkRun:
    began = time.time_ns()
    with WebhookSink() as sink:
        flags = ("--backfill", "1", "--backfill-rate", "5", "--duration", "0", "--seed", "2")
        result = subprocess.run(
            demo_command("--endpoint", sink.base_url, *flags),
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
            env=demo_environment(),
        )
    assert result.returncode == 0, result.stdout + result.stderr
    requests = [r for r in sink.requests if r.body]  # the reachability check is empty
    traces = [
        ExportTraceServiceRequest.FromString(_body(r)) for r in requests if r.path == "/v1/traces"
    ]
    metrics = [
        ExportMetricsServiceRequest.FromString(_body(r))
        for r in requests
        if r.path == "/v1/metrics"
    ]
    return SinkRun(began, traces, metrics)


def test_every_proxy_and_every_app_exports_on_its_own(sink_run: SinkRun) -> None:
    """A sidecar and its app are two processes: they never share an export request, and a
    proxy's export carries the proxy's resource (a real HTTP server records what is sent)."""
    emitters: dict[str, set[str]] = {}
    for export in sink_run.traces:
        assert len(export.resource_spans) == 1  # one process, one resource
        (resource_spans,) = export.resource_spans
        resource = {kv.key: kv.value for kv in resource_spans.resource.attributes}
        name = resource["service.name"].string_value
        if (
            "telemetry.sdk.name" in resource
            and resource["telemetry.sdk.name"].string_value == "envoy"
        ):
            kind = "envoy"
        elif name == "linkerd-proxy":
            kind = "linkerd"
            name = resource["linkerd.io/proxy-deployment"].string_value
        else:
            kind = resource["telemetry.sdk.language"].string_value
        emitters.setdefault(kind, set()).add(name)
        if kind != "python":  # proxies export spans with no instrumentation scope
            assert [scope.scope.name for scope in resource_spans.scope_spans] == [""]
    assert emitters["envoy"] >= {
        "istio-ingressgateway.istio-system",
        "frontend.shop",
        "reviews.shop",
    }
    assert "shipping.shop" not in emitters["envoy"]  # no sidecar
    assert emitters["linkerd"] == {"email", "templates"}
    assert emitters["python"] >= {"frontend", "reviews", "shipping", "email", "templates"}


def _scrapes(run: SinkRun) -> list[ExportMetricsServiceRequest]:
    """The exports of the proxies' scraped metrics (the others carry the apps' gauges)."""
    scrapes = []
    for export in run.metrics:
        scopes = {
            scope.scope.name
            for resource_metrics in export.resource_metrics
            for scope in resource_metrics.scope_metrics
        }
        if any(name.endswith("/receiver/prometheusreceiver") for name in scopes):
            assert len(scopes) == 1, scopes  # a Collector's export: never an app's gauges
            scrapes.append(export)
    return scrapes


def test_the_proxies_metrics_are_scraped_cumulative_series(sink_run: SinkRun) -> None:
    """Every proxy's pod is scraped, backfill included: cumulative series that start at the
    pods' start and never go down; the gateway counts each request it took once."""
    scrapes = _scrapes(sink_run)
    assert len(scrapes) >= 4  # a minute of backfill at 15 s, then the last scrape
    pods: dict[str, set[str]] = {}
    names: dict[str, set[str]] = {}
    series: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[tuple[int, int, float]]] = {}
    for export in scrapes:
        for resource_metrics in export.resource_metrics:
            resource = {
                kv.key: kv.value.string_value for kv in resource_metrics.resource.attributes
            }
            job, instance = resource["service.name"], resource["service.instance.id"]
            pods.setdefault(job, set()).add(resource["k8s.pod.name"])
            for metric in resource_metrics.scope_metrics[0].metrics:
                names.setdefault(job, set()).add(metric.name)
                cumulative = metric.sum if metric.HasField("sum") else metric.histogram
                assert cumulative.aggregation_temporality == 2  # cumulative
                for point in cumulative.data_points:
                    value = point.as_double if metric.HasField("sum") else point.count
                    labels = tuple((kv.key, kv.value.string_value) for kv in point.attributes)
                    key = (instance, metric.name, labels)
                    entry = (point.start_time_unix_nano, point.time_unix_nano, value)
                    series.setdefault(key, []).append(entry)
    assert set(names) == {"kubernetes-pods", "linkerd-proxy"}
    assert names["kubernetes-pods"] == {
        "istio_requests_total",
        "istio_request_duration_milliseconds",
    }
    assert names["linkerd-proxy"] == {"request_total", "response_total", "response_latency_ms"}
    istio_pods = {pod.rsplit("-", 2)[0] for pod in pods["kubernetes-pods"]}
    assert istio_pods >= {"istio-ingressgateway", "frontend", "reviews-v1", "checkout"}
    assert "shipping" not in istio_pods  # no sidecar
    assert {pod.rsplit("-", 2)[0] for pod in pods["linkerd-proxy"]} == {"email", "templates"}
    starts = {start for points in series.values() for start, _, _ in points}
    (start,) = starts  # one start: the pods', a minute of backfill before the run
    assert sink_run.began_ns - 60 * S <= start <= sink_run.began_ns - 30 * S
    linkerd_starts = {  # what the linkerd2-proxies say of their process in their spans
        kv.value.int_value
        for export in sink_run.traces
        for resource_spans in export.resource_spans
        for kv in resource_spans.resource.attributes
        if kv.key == "process.start_timestamp"
    }
    assert linkerd_starts == {start // S}
    assert min(at for points in series.values() for _, at, _ in points) < sink_run.began_ns
    for key, points in series.items():
        times = [at for _, at, _ in points]
        values = [value for _, _, value in points]
        assert times == sorted(set(times)), key
        assert times[0] > start
        assert values == sorted(values), key  # cumulative: never down
    gateway_counts = sum(
        points[-1][2]
        for (_, name, labels), points in series.items()
        if name == "istio_requests_total"
        and {("reporter", "source"), ("source_workload", "istio-ingressgateway")} <= set(labels)
    )
    gateway_roots = sum(
        1
        for export in sink_run.traces
        for resource_spans in export.resource_spans
        if any(
            kv.value.string_value == "istio-ingressgateway.istio-system"
            for kv in resource_spans.resource.attributes
            if kv.key == "service.name"
        )
        for scope in resource_spans.scope_spans
        for span in scope.spans
        if span.kind == 2  # SERVER: one per request from outside
    )
    assert gateway_counts == gateway_roots > 0
