"""Decoding OTLP into rows: values, rejections one by one, NUL characters, links, metrics."""

from __future__ import annotations

import json
import os

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from collector.decode import OtlpDecoder, TimeWindow
from collector.errors import MalformedRequest
from collector.rows import SPAN_COLUMNS

NOW = 1_800_000_000_000_000_000
WINDOW = TimeWindow.around(NOW, retention_days=7, future_skew_s=3600)


def _request(**span_fields: object) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name").value.string_value = "cart"
    span = resource_spans.scope_spans.add().spans.add()
    span.trace_id, span.span_id = os.urandom(16), os.urandom(8)
    span.name, span.kind = "op", 2
    span.start_time_unix_nano, span.end_time_unix_nano = NOW, NOW + 5
    for name, value in span_fields.items():
        setattr(span, name, value)
    return request


def _decode(request: ExportTraceServiceRequest) -> tuple[list[dict[str, object]], int, str]:
    batch = OtlpDecoder().traces(request.SerializeToString(), WINDOW)
    rows = [dict(zip(SPAN_COLUMNS, row, strict=True)) for row in batch.spans]
    return rows, batch.rejected, batch.error_message


def test_every_attribute_value_type() -> None:
    request = _request()
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.extend(
        [
            KeyValue(key="s", value=AnyValue(string_value="x")),
            KeyValue(key="b", value=AnyValue(bool_value=True)),
            KeyValue(key="i", value=AnyValue(int_value=-(2**62))),
            KeyValue(key="d", value=AnyValue(double_value=1.5)),
            KeyValue(key="y", value=AnyValue(bytes_value=b"\x01\x02")),
            KeyValue(
                key="a",
                value=AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1)] * 2)),
            ),
            KeyValue(
                key="k",
                value=AnyValue(
                    kvlist_value=KeyValueList(
                        values=[KeyValue(key="in", value=AnyValue(string_value="v"))]
                    )
                ),
            ),
            KeyValue(key="empty", value=AnyValue()),
        ]
    )
    (row,), rejected, _ = _decode(request)
    assert rejected == 0
    assert json.loads(str(row["attributes"])) == {
        "s": "x",
        "b": True,
        "i": -(2**62),
        "d": 1.5,
        "y": "AQI=",
        "a": [1, 1],
        "k": {"in": "v"},
        "empty": None,
    }
    assert row["service"] == "cart"
    assert row["parent_span_id"] is None


def test_attribute_cache_does_not_mix_values() -> None:
    decoder = OtlpDecoder()
    seen = []
    for value in ("a", "b", "a"):
        request = _request()
        span = request.resource_spans[0].scope_spans[0].spans[0]
        span.attributes.add(key="k").value.string_value = value
        batch = decoder.traces(request.SerializeToString(), WINDOW)
        seen.append(json.loads(batch.spans[0][13]))
    assert seen == [{"k": "a"}, {"k": "b"}, {"k": "a"}]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"trace_id": b"\x01" * 15}, "trace_id must be 16 bytes"),
        ({"trace_id": bytes(16)}, "not all zero"),
        ({"span_id": b"\x01" * 9}, "span_id must be 8 bytes"),
        ({"parent_span_id": b"\x01" * 3}, "parent_span_id must be empty or 8 bytes"),
        ({"start_time_unix_nano": 0}, "start_time_unix_nano is missing"),
        ({"start_time_unix_nano": NOW - 8 * 86_400 * 10**9}, "older than the retention"),
        ({"start_time_unix_nano": NOW + 2 * 3600 * 10**9}, "too far in the future"),
        ({"end_time_unix_nano": NOW - 1}, "end_time_unix_nano is before"),
        ({"end_time_unix_nano": 2**64 - 1}, "end_time_unix_nano is too far in the future"),
        ({"kind": 40000}, "kind must be 0 to 5 (SpanKind), not 40000"),
        ({"kind": -1}, "kind must be 0 to 5"),
    ],
)
def test_bad_spans_are_rejected_one_by_one(fields: dict[str, object], reason: str) -> None:
    request = _request(**fields)
    good = request.resource_spans[0].scope_spans[0].spans.add()
    good.CopyFrom(_request().resource_spans[0].scope_spans[0].spans[0])
    rows, rejected, message = _decode(request)
    assert rejected == 1
    assert len(rows) == 1
    assert reason in message


@pytest.mark.parametrize("code", [3, -1, 70000])
def test_spans_with_an_unknown_status_code_are_rejected_one_by_one(code: int) -> None:
    """Protobuf enums are open: a code past a smallint made the database refuse the batch."""
    request = _request()
    request.resource_spans[0].scope_spans[0].spans[0].status.code = code  # type: ignore[assignment]
    good = request.resource_spans[0].scope_spans[0].spans.add()
    good.CopyFrom(_request().resource_spans[0].scope_spans[0].spans[0])
    rows, rejected, message = _decode(request)
    assert (len(rows), rejected) == (1, 1)
    assert f"status.code must be 0 to 2 (StatusCode), not {code}" in message


@pytest.mark.parametrize(
    "key", ["istio.canonical_service", "istio.namespace", "istio.canonical_revision"]
)
@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (AnyValue(array_value=ArrayValue(values=[AnyValue(string_value="v1")])), ["v1"]),
        (AnyValue(kvlist_value=KeyValueList()), {}),
    ],
    ids=["array", "map"],
)
def test_arrays_and_maps_where_classification_caches_by_value(
    key: str, value: AnyValue, stored: object
) -> None:
    """The classifier's caches were keyed by these attributes' values: an array or a map
    (unhashable) raised a TypeError, a 500 for the whole request (found by the decoder fuzz)."""
    request = _request()
    request.resource_spans[0].scope_spans[0].spans[0].attributes.add(key=key, value=value)
    (row,), rejected, _ = _decode(request)
    assert rejected == 0
    assert json.loads(str(row["attributes"])) == {key: stored}


def test_nul_characters_become_replacement_characters() -> None:
    request = _request(name="a\x00b")
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.add(key="k\x00").value.string_value = "v\x00"
    span.status.message = "bad\x00"
    (row,), _, _ = _decode(request)
    assert row["name"] == "a\ufffdb"
    assert row["status_message"] == "bad\ufffd"
    assert json.loads(str(row["attributes"])) == {"k\ufffd": "v\ufffd"}


def test_links_keep_hex_ids_and_attributes() -> None:
    request = _request()
    span = request.resource_spans[0].scope_spans[0].spans[0]
    link = span.links.add(trace_id=b"\xab" * 16, span_id=b"\xcd" * 8)
    link.attributes.add(key="messaging.operation").value.string_value = "receive"
    (row,), _, _ = _decode(request)
    assert json.loads(str(row["links"])) == [
        {
            "trace_id": "ab" * 16,
            "span_id": "cd" * 8,
            "attributes": {"messaging.operation": "receive"},
        }
    ]


def test_missing_service_name_is_unknown_service() -> None:
    request = _request()
    del request.resource_spans[0].resource.attributes[:]
    (row,), _, _ = _decode(request)
    assert row["service"] == "unknown_service"


def test_malformed_bodies() -> None:
    decoder = OtlpDecoder()
    with pytest.raises(MalformedRequest, match="protobuf"):
        decoder.traces(b"\xff\xff\xff", WINDOW)
    with pytest.raises(MalformedRequest, match="JSON"):
        decoder.traces(b"{", WINDOW, as_json=True)
    with pytest.raises(MalformedRequest, match="object"):
        decoder.traces(b"[]", WINDOW, as_json=True)


def test_histogram_with_inconsistent_buckets_is_rejected() -> None:
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add(name="lat")
    good = metric.histogram.data_points.add(time_unix_nano=NOW, count=3)
    good.bucket_counts.extend([1, 2])
    good.explicit_bounds.append(10.0)
    bad = metric.histogram.data_points.add(time_unix_nano=NOW + 1, count=3)
    bad.bucket_counts.extend([1, 2])
    batch = OtlpDecoder().metrics(request.SerializeToString(), WINDOW)
    assert (len(batch.points), batch.rejected) == (1, 1)
    assert "one more entry than explicit_bounds" in batch.error_message


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("histogram", "count"),
        ("histogram", "bucket_counts"),
        ("exponential_histogram", "count"),
        ("exponential_histogram", "zero_count"),
        ("exponential_histogram", "positive"),
        ("exponential_histogram", "negative"),
        ("summary", "count"),
    ],
)
def test_counts_past_int64_are_rejected_one_by_one(kind: str, field: str) -> None:
    """Counts are uint64 on the wire, bigint in PostgreSQL: one past 2**63 - 1 made the
    database refuse the whole batch, losing the request's good points too."""
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add(name="m")
    data = getattr(metric, kind)
    data.data_points.add(time_unix_nano=NOW, count=1)
    bad = data.data_points.add(time_unix_nano=NOW + 1, count=1)
    if field in ("positive", "negative"):
        getattr(bad, field).bucket_counts.append(2**64 - 1)
    elif field == "bucket_counts":
        bad.bucket_counts.append(2**64 - 1)
    else:
        setattr(bad, field, 2**63)
    batch = OtlpDecoder().metrics(request.SerializeToString(), WINDOW)
    assert (len(batch.points), batch.rejected) == (1, 1)
    assert f"m: {kind} counts must be at most {2**63 - 1}" in batch.error_message


@pytest.mark.parametrize("temporality", [3, -1, 40000])
def test_points_of_an_unknown_temporality_are_rejected(temporality: int) -> None:
    """An open enum: a value past a smallint made the database refuse the whole batch."""
    request = ExportMetricsServiceRequest()
    metrics = request.resource_metrics.add().scope_metrics.add().metrics
    metrics.add(name="good").sum.data_points.add(time_unix_nano=NOW, as_int=1)
    bad = metrics.add(name="bad").sum
    bad.aggregation_temporality = temporality  # type: ignore[assignment]
    bad.data_points.add(time_unix_nano=NOW, as_int=1)
    bad.data_points.add(time_unix_nano=NOW + 1, as_int=2)
    batch = OtlpDecoder().metrics(request.SerializeToString(), WINDOW)
    assert (len(batch.points), batch.rejected) == (1, 2)
    assert f"bad: aggregation_temporality must be 0 to 2, not {temporality}" in batch.error_message


def test_series_identity_depends_on_attributes_not_values() -> None:
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add(name="reqs")
    metric.sum.aggregation_temporality = 2
    metric.sum.is_monotonic = True
    for n, route in enumerate(["/a", "/a", "/b"]):
        point = metric.sum.data_points.add(time_unix_nano=NOW + n, as_int=n)
        point.attributes.add(key="route").value.string_value = route
    batch = OtlpDecoder().metrics(request.SerializeToString(), WINDOW)
    series_ids = [point[0] for point in batch.points]
    assert series_ids[0] == series_ids[1] != series_ids[2]
    assert len(batch.series) == 2
    assert {s.is_monotonic for s in batch.series.values()} == {True}
