"""Hand-made OTLP requests for tests that need exact control over ids and times."""

from __future__ import annotations

import os
import time

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
