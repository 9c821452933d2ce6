"""Hypothesis strategies for OTLP requests, for the fuzz tests (mutations: `tests.otlp_mutations`).

Messages are built from the official `opentelemetry.proto` classes, so every one of them is a
valid `ExportTraceServiceRequest` / `ExportMetricsServiceRequest` that the official parser
reads back. Values go to the edges that break decoders: ids of every length (and all zero),
times of 0, far past, far ahead and 2**64 - 1, open-enum values past the declared ones, uint64
counts past int64, NaN and infinities, NUL and other odd characters, empty names, nested array
and kvlist attributes. Attribute keys and metric names are drawn partly from the ones meshlens
reads (span classification, Istio / Linkerd series, utilization gauges), so the derivation
code behind the decoder runs on odd values too.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from functools import cache
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from collector.derive.classify import RESOURCE_KEYS, SPAN_KEYS
from meshlens.settings import DEFAULT_SATURATION_METRICS

DAY_NS = 86_400 * 1_000_000_000
INT64_MAX, UINT64_MAX = 2**63 - 1, 2**64 - 1
INT32 = st.integers(-(2**31), 2**31 - 1)
UINT32 = st.integers(0, 2**32 - 1)
UINT64 = st.one_of(st.integers(0, 1000), st.integers(0, UINT64_MAX))
MESH_LABELS = (
    "reporter", "source_workload", "source_canonical_service", "destination_workload",
    "destination_canonical_service", "destination_service", "response_code", "response_flags",
    "grpc_response_status", "connection_security_policy", "direction", "dst_deployment",
    "dst_service", "authority", "classification", "tls", "no_tls_reason", "deployment",
    "cpu.mode", "state",
)  # fmt: skip
MESH_METRICS = (
    "istio_requests_total", "istio_request_duration_milliseconds", "response_total",
    "response_latency_ms",
)  # fmt: skip
KNOWN_KEYS = sorted({*SPAN_KEYS, *RESOURCE_KEYS, *MESH_LABELS, "service.name"})
MESH_VALUES = (
    "destination", "source", "waypoint", "outbound", "inbound", "mutual_tls", "none", "true",
    "false", "failure", "success", "200", "503", "unknown", "UF", "FI", "14", "idle", "user",
)  # fmt: skip

LONG_RUN = int(os.environ.get("MESHLENS_FUZZ_EXAMPLES", "0"))


def fuzz(examples: int) -> Callable[[Any], Any]:
    """Hypothesis settings for the fuzz tests: `examples` examples of a derandomized search, so
    runs are reproducible; with MESHLENS_FUZZ_EXAMPLES=N, N random examples a test instead (a
    longer hunt, with failures kept in Hypothesis' database and replayed first)."""
    slow = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
    if LONG_RUN:
        return settings(max_examples=LONG_RUN, deadline=None, suppress_health_check=slow)
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=slow,
        print_blob=True,
    )


texts = st.text(max_size=12) | st.sampled_from(["", "\x00", "a\x00b", "\ufffd", "é" * 3, "𝄞"])
EDGE_DOUBLES = (math.nan, math.inf, -math.inf, -0.0, 0.0, 1.0, 1e308, -5e-324)
doubles = st.sampled_from(EDGE_DOUBLES) | st.floats()  # drawn floats are rarely NaN or inf


def mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`usual` seven times in eight, else `odd`: a span has several fields, and with each of
    them odd half the time nearly every span would be rejected before the code that stores it."""
    return st.integers(0, 7).flatmap(lambda n: odd if n == 0 else usual)


@cache
def ids(size: int) -> st.SearchStrategy[bytes]:
    """Mostly ids of the right `size`, else all zero or any length up to size + 1."""
    return mostly(
        st.binary(min_size=size, max_size=size), st.just(bytes(size)) | st.binary(max_size=size + 1)
    )


@cache
def times(now: int) -> st.SearchStrategy[int]:
    """Unix nanoseconds: mostly within the accepted window around `now`, else at the edges."""
    edges = [0, 1, now - 30 * DAY_NS, now + 2 * DAY_NS, INT64_MAX, INT64_MAX + 1, UINT64_MAX]
    return mostly(st.integers(now - DAY_NS, now + 60 * 10**9), st.sampled_from(edges))


@cache
def keys() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(KNOWN_KEYS), texts)


@cache
def scalar_values() -> st.SearchStrategy[AnyValue]:
    return st.one_of(
        st.builds(AnyValue),  # no value set
        st.builds(AnyValue, string_value=texts | st.sampled_from(MESH_VALUES)),
        st.builds(AnyValue, bool_value=st.booleans()),
        st.builds(AnyValue, int_value=st.integers(-(2**63), INT64_MAX)),
        st.builds(AnyValue, double_value=doubles),
        st.builds(AnyValue, bytes_value=st.binary(max_size=8)),
    )


@cache
def any_values() -> st.SearchStrategy[AnyValue]:
    """AnyValue of every kind, arrays and kvlists nested a few levels deep."""

    def nest(children: st.SearchStrategy[AnyValue]) -> st.SearchStrategy[AnyValue]:
        items = st.lists(children, max_size=3)
        pairs = st.lists(st.builds(KeyValue, key=keys(), value=children), max_size=3)
        return st.one_of(
            st.builds(lambda v: AnyValue(array_value=ArrayValue(values=v)), items),
            st.builds(lambda v: AnyValue(kvlist_value=KeyValueList(values=v)), pairs),
        )

    return st.recursive(scalar_values(), nest, max_leaves=5)


@cache
def attributes(max_size: int = 4) -> st.SearchStrategy[list[KeyValue]]:
    return st.lists(st.builds(KeyValue, key=keys(), value=any_values()), max_size=max_size)


@cache
def resources() -> st.SearchStrategy[Resource]:
    named = st.builds(
        lambda name, rest: [KeyValue(key="service.name", value=AnyValue(string_value=name)), *rest],
        texts,
        attributes(3),
    )
    return st.builds(Resource, attributes=named | attributes(3))


@cache
def scopes() -> st.SearchStrategy[InstrumentationScope]:
    return st.builds(InstrumentationScope, name=texts, version=texts)


@cache
def enums(declared: int) -> st.SearchStrategy[int]:
    """An open-enum value: mostly a declared one (0..declared), else any int32."""
    return mostly(st.integers(0, declared), INT32)


@cache
def links() -> st.SearchStrategy[Span.Link]:
    return st.builds(Span.Link, trace_id=ids(16), span_id=ids(8), attributes=attributes(2))


@st.composite
def spans(draw: st.DrawFn, now: int) -> Span:
    start = draw(times(now))
    end = draw(mostly(st.integers(start, min(start + 10**9, UINT64_MAX)), times(now)))
    return Span(
        trace_id=draw(ids(16)),
        span_id=draw(ids(8)),
        parent_span_id=draw(st.just(b"") | ids(8)),
        trace_state=draw(texts),
        name=draw(texts),
        kind=draw(enums(5)),
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        attributes=draw(attributes()),
        links=draw(st.lists(links(), max_size=2)),
        status=Status(code=draw(enums(2)), message=draw(texts)),
        flags=draw(UINT32),
        dropped_attributes_count=draw(UINT32),
    )


@cache
def trace_requests(now: int) -> st.SearchStrategy[ExportTraceServiceRequest]:
    scope_spans = st.builds(ScopeSpans, scope=scopes(), spans=st.lists(spans(now), max_size=3))
    resource_spans = st.builds(
        ResourceSpans, resource=resources(), scope_spans=st.lists(scope_spans, max_size=2)
    )
    return st.builds(ExportTraceServiceRequest, resource_spans=st.lists(resource_spans, max_size=2))


@cache
def point_attributes() -> st.SearchStrategy[list[KeyValue]]:
    """Mesh labels with mesh-like values, or any attributes."""
    labels = st.builds(
        KeyValue,
        key=st.sampled_from(MESH_LABELS),
        value=st.builds(AnyValue, string_value=st.sampled_from(MESH_VALUES) | texts),
    )
    return st.lists(labels, max_size=6) | attributes(3)


@st.composite
def _point_base(draw: st.DrawFn, now: int) -> dict[str, Any]:
    time = draw(times(now))
    start = draw(st.one_of(st.just(0), st.integers(0, max(time, 0)), times(now)))
    return {
        "time_unix_nano": time,
        "start_time_unix_nano": start,
        "attributes": draw(point_attributes()),
        "flags": draw(UINT32),
    }


_NUMBER_VALUES = st.one_of(
    st.just({}),
    st.builds(lambda v: {"as_double": v}, doubles),
    st.builds(lambda v: {"as_int": v}, st.integers(-(2**63), INT64_MAX)),
)
_OPTIONAL_DOUBLES = st.fixed_dictionaries(
    {}, optional={"sum": doubles, "min": doubles, "max": doubles}
)
_BUCKETS = st.builds(
    m.ExponentialHistogramDataPoint.Buckets,
    offset=INT32,
    bucket_counts=st.lists(UINT64, max_size=4),
)
_QUANTILE = st.builds(
    m.SummaryDataPoint.ValueAtQuantile, quantile=doubles | st.floats(0, 1), value=doubles
)
_METRIC_NAMES = st.sampled_from([*MESH_METRICS, *DEFAULT_SATURATION_METRICS[:2]]) | texts
_DATA_KINDS = st.sampled_from(
    ["gauge", "sum", "histogram", "exponential_histogram", "summary", None]
)


@st.composite
def number_points(draw: st.DrawFn, now: int) -> m.NumberDataPoint:
    return m.NumberDataPoint(**draw(_point_base(now)), **draw(_NUMBER_VALUES))


@st.composite
def histogram_points(draw: st.DrawFn, now: int) -> m.HistogramDataPoint:
    bounds = draw(st.lists(doubles, max_size=4))
    size = draw(st.sampled_from([len(bounds) + 1, 0, len(bounds), len(bounds) + 2]))
    return m.HistogramDataPoint(
        **draw(_point_base(now)),
        count=draw(UINT64),
        bucket_counts=draw(st.lists(UINT64, min_size=size, max_size=size)),
        explicit_bounds=bounds,
        **draw(_OPTIONAL_DOUBLES),
    )


@st.composite
def exponential_points(draw: st.DrawFn, now: int) -> m.ExponentialHistogramDataPoint:
    return m.ExponentialHistogramDataPoint(
        **draw(_point_base(now)),
        count=draw(UINT64),
        scale=draw(st.integers(-10, 20) | INT32),
        zero_count=draw(UINT64),
        zero_threshold=draw(doubles),
        positive=draw(_BUCKETS),
        negative=draw(_BUCKETS),
        **draw(_OPTIONAL_DOUBLES),
    )


@st.composite
def summary_points(draw: st.DrawFn, now: int) -> m.SummaryDataPoint:
    return m.SummaryDataPoint(
        **draw(_point_base(now)),
        count=draw(UINT64),
        sum=draw(doubles),
        quantile_values=draw(st.lists(_QUANTILE, max_size=3)),
    )


@st.composite
def metrics(draw: st.DrawFn, now: int) -> m.Metric:
    temporality = draw(enums(2))
    many = {"max_size": 3}
    data = draw(_DATA_KINDS)
    metric = m.Metric(name=draw(_METRIC_NAMES), unit=draw(texts), description=draw(texts))
    if data == "gauge":
        metric.gauge.data_points.extend(draw(st.lists(number_points(now), **many)))
    elif data == "sum":
        metric.sum.data_points.extend(draw(st.lists(number_points(now), **many)))
        metric.sum.aggregation_temporality = temporality
        metric.sum.is_monotonic = draw(st.booleans())
    elif data == "histogram":
        metric.histogram.data_points.extend(draw(st.lists(histogram_points(now), **many)))
        metric.histogram.aggregation_temporality = temporality
    elif data == "exponential_histogram":
        points = draw(st.lists(exponential_points(now), **many))
        metric.exponential_histogram.data_points.extend(points)
        metric.exponential_histogram.aggregation_temporality = temporality
    elif data == "summary":
        metric.summary.data_points.extend(draw(st.lists(summary_points(now), **many)))
    return metric


@cache
def metrics_requests(now: int) -> st.SearchStrategy[ExportMetricsServiceRequest]:
    scope_metrics = st.builds(
        m.ScopeMetrics, scope=scopes(), metrics=st.lists(metrics(now), max_size=3)
    )
    resource_metrics = st.builds(
        m.ResourceMetrics, resource=resources(), scope_metrics=st.lists(scope_metrics, max_size=2)
    )
    return st.builds(
        ExportMetricsServiceRequest, resource_metrics=st.lists(resource_metrics, max_size=2)
    )
