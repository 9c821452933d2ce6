"""OTLP wire format <-> domain rows. The only place that imports `opentelemetry.proto`.

Pure functions of their inputs (time is an argument): protobuf or OTLP/JSON request bodies
become a `DecodedBatch`; partial-success answers are encoded in the request's encoding. Items
that cannot be stored (bad ids, times outside the accepted range) are rejected one by one and
reported through `partial_success`, never by failing the whole request.
"""

from __future__ import annotations

from typing import Any

import orjson
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsPartialSuccess,
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from collector.decode.attributes import AttributeEncoder, fingerprint
from collector.decode.lazy import lazy_trace_request_class
from collector.decode.metrics import MetricDecoder
from collector.decode.traces import SpanDecoder
from collector.decode.window import TimeWindow
from collector.decode.wire import (
    encode,
    parse_json,
    parse_protobuf,
    retry_trailers,
    status_body,
)
from collector.derive import classify
from collector.rows import DecodedBatch, ResourceRow

UNKNOWN_SERVICE = "unknown_service"


class OtlpDecoder:
    """Turns OTLP export requests into rows. Holds bounded caches; reuse it across requests."""

    def __init__(
        self,
        saturation_metrics: frozenset[str] = frozenset(),
        sampling_percent: float | None = None,
    ) -> None:
        self._attributes = AttributeEncoder(classify.SPAN_KEYS)
        self._spans = SpanDecoder(self._attributes, sampling_percent)
        self._metrics = MetricDecoder(self._attributes, saturation_metrics)

    def traces(
        self,
        body: bytes,
        window: TimeWindow,
        *,
        as_json: bool = False,
        sender_id: int | None = None,
    ) -> DecodedBatch:
        """Decode an `ExportTraceServiceRequest` body; rows carry `sender_id`."""
        if as_json:  # the JSON mapping needs the real schema; then the same path as protobuf
            body = parse_json(ExportTraceServiceRequest(), body).SerializeToString()
        request = parse_protobuf(lazy_trace_request_class()(), body)
        batch = DecodedBatch()
        for resource_spans in request.resource_spans:
            attributes = self._attributes.as_dict(resource_spans.resource.attributes)
            resource = self._resource_row(attributes)
            batch.resources[resource.id] = resource
            for scope_spans in resource_spans.scope_spans:
                spans, scope = scope_spans.spans, scope_spans.scope
                self._spans.decode(batch, spans, resource, attributes, scope, window, sender_id)
        return batch

    def metrics(
        self,
        body: bytes,
        window: TimeWindow,
        *,
        as_json: bool = False,
        sender_id: int | None = None,
    ) -> DecodedBatch:
        """Decode an `ExportMetricsServiceRequest` body; rows carry `sender_id`."""
        parse = parse_json if as_json else parse_protobuf
        request = parse(ExportMetricsServiceRequest(), body)
        batch = DecodedBatch()
        for resource_metrics in request.resource_metrics:
            attributes = self._attributes.as_dict(resource_metrics.resource.attributes)
            resource = self._resource_row(attributes)
            batch.resources[resource.id] = resource
            for scope_metrics in resource_metrics.scope_metrics:
                scope_name = scope_metrics.scope.name
                for metric in scope_metrics.metrics:
                    self._metrics.decode(
                        batch, metric, resource, scope_name, window, attributes, sender_id
                    )
        return batch

    def _resource_row(self, attributes: dict[str, Any]) -> ResourceRow:
        """The resource as a row keyed by the fingerprint of its sorted attributes."""
        canonical = orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS)
        service = attributes.get("service.name")
        if not isinstance(service, str) or not service:
            service = UNKNOWN_SERVICE
        return ResourceRow(fingerprint(canonical), service, canonical.decode())


def trace_response(rejected: int, message: str, *, as_json: bool) -> bytes:
    """`ExportTraceServiceResponse`, with `partial_success` set only when spans were rejected."""
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.CopyFrom(
            ExportTracePartialSuccess(rejected_spans=rejected, error_message=message)
        )
    return encode(response, as_json=as_json)


def metrics_response(rejected: int, message: str, *, as_json: bool) -> bytes:
    """`ExportMetricsServiceResponse`, with `partial_success` set only when points were rejected."""
    response = ExportMetricsServiceResponse()
    if rejected:
        response.partial_success.CopyFrom(
            ExportMetricsPartialSuccess(rejected_data_points=rejected, error_message=message)
        )
    return encode(response, as_json=as_json)


__all__ = [
    "OtlpDecoder",
    "TimeWindow",
    "metrics_response",
    "retry_trailers",
    "status_body",
    "trace_response",
]
