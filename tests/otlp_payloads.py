"""Hand-made OTLP requests for tests that need exact control over ids and times."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


def string_attribute(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def trace_request(
    service: str, spans: int = 3, *, start_unix_nano: int | None = None
) -> ExportTraceServiceRequest:
    """A request of `spans` server spans of `service`, fresh ids, starting now."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(string_attribute("service.name", service))
    scope_spans = resource_spans.scope_spans.add()
    start = start_unix_nano if start_unix_nano is not None else time.time_ns()
    for n in range(spans):
        span = scope_spans.spans.add()
        span.trace_id = os.urandom(16)
        span.span_id = os.urandom(8)
        span.name = f"GET /items/{n}"
        span.kind = 2
        span.start_time_unix_nano = start + n
        span.end_time_unix_nano = start + n + 1_000_000
        span.attributes.append(string_attribute("http.route", "/items/{id}"))
    return request


def attribute(key: str, value: object) -> KeyValue:
    """A KeyValue of a str, bool, int or float value."""
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


@dataclass
class SpanSpec:
    """One span to send: who emits it and how it relates to others."""

    service: str
    kind: int
    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes = b""
    name: str = "op"
    duration_ns: int = 10_000_000
    start_unix_nano: int = field(default_factory=time.time_ns)
    status_code: int = 0
    attributes: dict[str, object] = field(default_factory=dict)
    resource: dict[str, object] = field(default_factory=dict)
    links: list[tuple[bytes, bytes]] = field(default_factory=list)


def spans_request(specs: list[SpanSpec]) -> ExportTraceServiceRequest:
    """One request carrying `specs`, one ResourceSpans per span (as separate SDKs would)."""
    request = ExportTraceServiceRequest()
    for spec in specs:
        resource_spans = request.resource_spans.add()
        resource = {"service.name": spec.service, **spec.resource}
        resource_spans.resource.attributes.extend(attribute(k, v) for k, v in resource.items())
        span = resource_spans.scope_spans.add().spans.add()
        span.trace_id, span.span_id = spec.trace_id, spec.span_id
        span.parent_span_id = spec.parent_span_id
        span.name, span.kind = spec.name, spec.kind
        span.start_time_unix_nano = spec.start_unix_nano
        span.end_time_unix_nano = spec.start_unix_nano + spec.duration_ns
        span.status.code = spec.status_code
        span.attributes.extend(attribute(k, v) for k, v in spec.attributes.items())
        for trace_id, span_id in spec.links:
            span.links.add(trace_id=trace_id, span_id=span_id)
    return request


def new_ids() -> tuple[bytes, bytes]:
    """A fresh trace id and span id."""
    return os.urandom(16), os.urandom(8)
