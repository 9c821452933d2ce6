"""The official OpenTelemetry Python SDK exports to meshlens; we check what PostgreSQL holds."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.support import RunningServer


def _service() -> str:
    return f"checkout-{uuid.uuid4().hex[:8]}"


class RecordingExporter(SpanExporter):
    """Wraps the real exporter and keeps what it sent and what it was answered."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.sent: list[ReadableSpan] = []
        self.results: list[SpanExportResult] = []

    def export(self, spans: Any) -> SpanExportResult:
        result = self.inner.export(spans)
        self.sent.extend(spans)
        self.results.append(result)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()


def _emit_trace(exporter: SpanExporter, service: str) -> RecordingExporter:
    recorder = RecordingExporter(exporter)
    resource = Resource.create(
        {"service.name": service, "service.version": "1.4.2", "k8s.namespace.name": "shop"}
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(recorder))
    tracer = provider.get_tracer("tests.sdk", "0.9")
    with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER) as server_span:
        server_span.set_attribute("http.route", "/orders")
        server_span.set_attribute("http.response.status_code", 201)
        with tracer.start_as_current_span("SELECT orders", kind=SpanKind.CLIENT) as db:
            db.set_attribute("db.system", "postgresql")
            db.set_attribute("db.rows", 3)
            db.set_attribute("db.ratio", 0.25)
            db.set_attribute("db.tags", ["a", "b"])
            db.set_attribute("db.cached", False)
        with tracer.start_as_current_span("GET /stock", kind=SpanKind.CLIENT) as failing:
            failing.set_status(Status(StatusCode.ERROR, "stock service down"))
    provider.shutdown()
    return recorder


def _stored(server: RunningServer, service: str) -> dict[str, dict[str, Any]]:
    rows = server.query(
        "SELECT s.name, s.kind, s.trace_id, s.span_id, s.parent_span_id, s.start_unix_nano,"
        " s.end_unix_nano, s.status_code, s.status_message, s.attributes, s.scope_name,"
        " s.scope_version, r.attributes FROM spans s JOIN resources r ON r.id = s.resource_id"
        " WHERE s.service = %s",
        (service,),
    )
    keys = [
        "kind",
        "trace_id",
        "span_id",
        "parent",
        "start",
        "end",
        "status",
        "message",
        "attributes",
        "scope",
        "scope_version",
        "resource",
    ]
    return {row[0]: dict(zip(keys, row[1:], strict=True)) for row in rows}


def _check_stored_trace(server: RunningServer, service: str, recorder: RecordingExporter) -> None:
    assert recorder.results == [SpanExportResult.SUCCESS] * 3
    stored = _stored(server, service)
    assert set(stored) == {"POST /orders", "SELECT orders", "GET /stock"}
    for span in recorder.sent:
        row = stored[span.name]
        context = span.get_span_context()
        assert row["trace_id"] == context.trace_id.to_bytes(16, "big")
        assert row["span_id"] == context.span_id.to_bytes(8, "big")
        parent = span.parent.span_id.to_bytes(8, "big") if span.parent else None
        assert row["parent"] == parent
        assert (row["start"], row["end"]) == (span.start_time, span.end_time)
        assert row["scope"] == "tests.sdk"
        assert row["scope_version"] == "0.9"
        assert row["resource"]["service.name"] == service
        assert row["resource"]["service.version"] == "1.4.2"
    assert stored["POST /orders"]["kind"] == 2
    assert stored["SELECT orders"]["kind"] == 3
    assert stored["POST /orders"]["attributes"] == {
        "http.route": "/orders",
        "http.response.status_code": 201,
    }
    assert stored["SELECT orders"]["attributes"] == {
        "db.system": "postgresql",
        "db.rows": 3,
        "db.ratio": 0.25,
        "db.tags": ["a", "b"],
        "db.cached": False,
    }
    assert (stored["GET /stock"]["status"], stored["GET /stock"]["message"]) == (
        2,
        "stock service down",
    )
    assert stored["POST /orders"]["status"] == 0


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_spans_over_http_protobuf(server: RunningServer, compression: Compression) -> None:
    service = _service()
    exporter = HttpSpanExporter(
        endpoint=f"{server.otlp_http}/v1/traces", compression=compression, timeout=10
    )
    _check_stored_trace(server, service, _emit_trace(exporter, service))


@pytest.mark.parametrize("gzip", [False, True])
def test_spans_over_grpc(server: RunningServer, gzip: bool) -> None:
    from grpc import Compression as GrpcCompression

    service = _service()
    exporter = GrpcSpanExporter(
        endpoint=server.grpc_endpoint,
        insecure=True,
        compression=GrpcCompression.Gzip if gzip else GrpcCompression.NoCompression,
        timeout=10,
    )
    _check_stored_trace(server, service, _emit_trace(exporter, service))


# -- metrics ----------------------------------------------------------------------------------


@pytest.fixture(params=["http", "grpc"])
def metric_exporter(request: pytest.FixtureRequest, server: RunningServer) -> MetricExporter:
    exporter: MetricExporter
    if request.param == "http":
        exporter = HttpMetricExporter(endpoint=f"{server.otlp_http}/v1/metrics", timeout=10)
    else:
        exporter = GrpcMetricExporter(endpoint=server.grpc_endpoint, insecure=True, timeout=10)
    return exporter


def _emit_metrics(exporter: MetricExporter, service: str) -> None:
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(
        resource=Resource.create({"service.name": service}), metric_readers=[reader]
    )
    meter = provider.get_meter("tests.metrics")
    requests = meter.create_counter("app.requests", unit="{request}", description="Requests")
    requests.add(3, {"route": "/a"})
    requests.add(4, {"route": "/a"})
    requests.add(1, {"route": "/b"})
    inflight = meter.create_up_down_counter("app.inflight")
    inflight.add(5)
    inflight.add(-2)
    latency = meter.create_histogram("app.latency", unit="ms")
    for value in (3.0, 12.0, 80.0, 700.0):
        latency.record(value)

    def utilization(_: CallbackOptions) -> list[Observation]:
        return [Observation(0.42, {"resource": "cpu"})]

    meter.create_observable_gauge("app.utilization", callbacks=[utilization])
    provider.shutdown()  # one final collection and export


def test_metrics_every_instrument(server: RunningServer, metric_exporter: Any) -> None:
    service = _service()
    _emit_metrics(metric_exporter, service)
    rows = server.query(
        "SELECT ms.name, ms.type, ms.temporality, ms.is_monotonic, ms.unit, ms.attributes,"
        " p.as_double, p.as_int, p.count, p.sum, p.min, p.max, p.bucket_counts,"
        " p.explicit_bounds, p.start_unix_nano, p.time_unix_nano"
        " FROM metric_points p JOIN metric_series ms ON ms.id = p.series_id"
        " WHERE ms.service = %s ORDER BY ms.name, ms.attributes::text",
        (service,),
    )
    by_name: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_name.setdefault(row[0], []).append(row)
    assert set(by_name) == {"app.requests", "app.inflight", "app.latency", "app.utilization"}

    requests = by_name["app.requests"]
    assert [(r[5], r[7]) for r in requests] == [({"route": "/a"}, 7), ({"route": "/b"}, 1)]
    assert {(r[1], r[2], r[3], r[4]) for r in requests} == {("sum", 2, True, "{request}")}

    (inflight,) = by_name["app.inflight"]
    assert (inflight[1], inflight[2], inflight[3], inflight[7]) == ("sum", 2, False, 3)

    (latency,) = by_name["app.latency"]
    assert latency[1:3] == ("histogram", 2)
    assert (latency[8], latency[9], latency[10], latency[11]) == (4, 795.0, 3.0, 700.0)
    bounds = latency[13]
    assert bounds[:3] == [0.0, 5.0, 10.0]
    assert len(latency[12]) == len(bounds) + 1
    assert sum(latency[12]) == 4
    assert latency[12][1] == 1  # 3.0 lies in (0, 5]

    (gauge,) = by_name["app.utilization"]
    assert (gauge[1], gauge[5], gauge[6], gauge[7]) == ("gauge", {"resource": "cpu"}, 0.42, None)
    for row in rows:
        assert row[15] > 0
    assert json.loads(json.dumps(rows[0][5])) == rows[0][5]
