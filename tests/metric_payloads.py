"""Hand-made OTLP metric requests: cumulative sums and histograms with mesh labels, gauges."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

from tests.otlp_payloads import attribute

CUMULATIVE, DELTA = 2, 1
ISTIO_BOUNDS_MS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000]


@dataclass
class Point:
    """One data point: a counter value, or histogram bucket counts (count = their sum)."""

    labels: dict[str, object]
    time_unix_nano: int
    start_unix_nano: int = 0
    value: float = 0.0
    buckets: list[int] = field(default_factory=list)


@dataclass
class MetricSpec:
    name: str
    kind: str  # sum | histogram | gauge
    points: list[Point]
    bounds: list[float] = field(default_factory=lambda: list(ISTIO_BOUNDS_MS))
    temporality: int = CUMULATIVE
    unit: str = ""


def metrics_request(
    resource: dict[str, object], metrics: list[MetricSpec]
) -> ExportMetricsServiceRequest:
    """One request: one resource, one scope, `metrics`."""
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.extend(attribute(k, v) for k, v in resource.items())
    scope = resource_metrics.scope_metrics.add()
    scope.scope.name = "otelcol/prometheusreceiver"
    for spec in metrics:
        _add_metric(scope.metrics.add(), spec)
    return request


def _add_metric(metric: Metric, spec: MetricSpec) -> None:
    metric.name, metric.unit = spec.name, spec.unit
    if spec.kind == "sum":
        metric.sum.aggregation_temporality = spec.temporality
        metric.sum.is_monotonic = True
        for p in spec.points:
            point = metric.sum.data_points.add(as_double=p.value)
            _fill(point, p)
    elif spec.kind == "histogram":
        metric.histogram.aggregation_temporality = spec.temporality
        for p in spec.points:
            point = metric.histogram.data_points.add(count=sum(p.buckets))
            point.explicit_bounds.extend(spec.bounds)
            point.bucket_counts.extend(p.buckets)
            _fill(point, p)
    else:
        for p in spec.points:
            point = metric.gauge.data_points.add(as_double=p.value)
            _fill(point, p)


def _fill(point: Any, spec: Point) -> None:
    point.time_unix_nano = spec.time_unix_nano
    point.start_time_unix_nano = spec.start_unix_nano
    point.attributes.extend(attribute(k, v) for k, v in spec.labels.items())


def buckets(bounds: list[float], **by_upper: int) -> list[int]:
    """Bucket counts for `bounds` from counts by upper bound name (`le_100=3`, `le_inf=1`)."""
    counts = [0] * (len(bounds) + 1)
    for name, n in by_upper.items():
        upper = name.removeprefix("le_").replace("_", ".")
        counts[len(bounds) if upper == "inf" else bounds.index(float(upper))] = n
    return counts


def istio_labels(source: str, destination: str, **labels: object) -> dict[str, object]:
    """Labels of a destination-reported Istio series from `source` to `destination`."""
    base: dict[str, object] = {
        "reporter": "destination",
        "source_workload": f"{source}-v1",
        "source_workload_namespace": "default",
        "source_canonical_service": source,
        "source_principal": f"spiffe://cluster.local/ns/default/sa/{source}",
        "destination_workload": f"{destination}-v1",
        "destination_canonical_service": destination,
        "destination_service": f"{destination}.default.svc.cluster.local",
        "destination_service_name": destination,
        "destination_principal": f"spiffe://cluster.local/ns/default/sa/{destination}",
        "request_protocol": "http",
        "response_code": "200",
        "grpc_response_status": "",
        "response_flags": "-",
        "connection_security_policy": "mutual_tls",
    }
    return {**base, **labels}


def linkerd_labels(source: str, destination: str, **labels: object) -> dict[str, object]:
    """Labels of an outbound Linkerd series of `source`'s proxy to `destination`."""
    base: dict[str, object] = {
        "direction": "outbound",
        "authority": f"{destination}.default.svc.cluster.local:8080",
        "dst_deployment": destination,
        "dst_namespace": "default",
        "dst_service": destination,
        "deployment": source,
        "namespace": "default",
        "tls": "true",
        "classification": "success",
        "status_code": "200",
    }
    return {**base, **labels}
