"""OTLP/JSON over HTTP, end to end: the specification's example payloads, stored field by field.

The examples (tests/testdata/otlp, from open-telemetry/opentelemetry-proto) are posted to a real
`meshlens serve` with their 2018 timestamps moved to the present, and every field is read back
from PostgreSQL. Variants derived from them in code cover what the examples lack (every
attribute type, status, links, exponential histograms, summaries, int points) and what OTLP/JSON
receivers must accept: snake_case keys, int64 fields as strings or numbers, unknown fields, enums
as integers or names, gzip; bad trace ids are rejected one by one through partial success.
"""

from __future__ import annotations

import copy
import gzip
import json
import os
import random
import re
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from tests.support import RunningServer

DATA = Path(__file__).parents[1] / "testdata" / "otlp"
EXAMPLE_START = 1544712660000000000  # the earliest time in both examples
EXAMPLE_TRACE_ID = bytes.fromhex("5b8efff798038103d269b633813fc60c")
EXAMPLE_SPAN_ID = bytes.fromhex("eee19b7ec3c1b174")
EXAMPLE_PARENT_ID = bytes.fromhex("eee19b7ec3c1b173")
EXAMPLE_RESOURCE = {"service.name": "my.service"}
JSON = {"content-type": "application/json"}
# OTLP int64/uint64 fields that the examples (and the variants below) carry
INT64_KEYS = {
    "startTimeUnixNano",
    "endTimeUnixNano",
    "timeUnixNano",
    "count",
    "zeroCount",
    "intValue",
    "asInt",
}


# -- helpers ----------------------------------------------------------------------------------


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((DATA / name).read_text())
    return document


def recent_offset() -> int:
    """An offset moving EXAMPLE_START to about ten seconds ago, with nanosecond noise."""
    return time.time_ns() - 10_000_000_000 - EXAMPLE_START + random.randrange(1, 999_999)


def shift_times(node: Any, offset: int) -> None:
    """Add `offset` to every non-zero `*TimeUnixNano` (or snake_case) field; JSON types kept."""
    if isinstance(node, dict):
        for key, value in node.items():
            is_time = key.replace("_", "").lower().endswith("timeunixnano")
            if is_time and isinstance(value, int) and value:
                node[key] = value + offset
            elif is_time and isinstance(value, str) and int(value):
                node[key] = str(int(value) + offset)
            else:
                shift_times(value, offset)
    elif isinstance(node, list):
        for item in node:
            shift_times(item, offset)


def to_snake_case(node: Any) -> Any:
    """The document with every object key in snake_case (`traceId` -> `trace_id`)."""
    if isinstance(node, dict):
        return {
            re.sub(r"(?<!^)([A-Z])", r"_\1", k).lower(): to_snake_case(v) for k, v in node.items()
        }
    if isinstance(node, list):
        return [to_snake_case(item) for item in node]
    return node


def int64_as(node: Any, kind: type) -> None:
    """Write every int64 field (scalars and lists such as bucketCounts) as `kind` (str or int)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in INT64_KEYS and isinstance(value, int | str):
                node[key] = kind(int(value))
            elif key == "bucketCounts":
                node[key] = [kind(int(v)) for v in value]
            else:
                int64_as(value, kind)
    elif isinstance(node, list):
        for item in node:
            int64_as(item, kind)


def only_span(document: dict[str, Any]) -> dict[str, Any]:
    span: dict[str, Any] = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    return span


def example_metrics(document: dict[str, Any]) -> list[dict[str, Any]]:
    metrics: list[dict[str, Any]] = document["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]
    return metrics


def new_ids(span: dict[str, Any]) -> tuple[bytes, bytes]:
    """Give `span` fresh random hex ids (keeping its parent); return them as bytes."""
    trace_id, span_id = os.urandom(16), os.urandom(8)
    span["traceId"], span["spanId"] = trace_id.hex(), span_id.hex()
    return trace_id, span_id


def post(server: RunningServer, path: str, document: Any) -> httpx.Response:
    return httpx.post(
        server.otlp_http + path, content=json.dumps(document), headers=JSON, timeout=30
    )


def assert_accepted(response: httpx.Response) -> None:
    """200, OTLP/JSON, and no partial success (nothing rejected)."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}


def rows(server: RunningServer, sql: str, params: Any = None) -> list[dict[str, Any]]:
    with psycopg.connect(server.database_url, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()


def stored_spans(server: RunningServer, trace_id: bytes) -> list[dict[str, Any]]:
    """The spans of `trace_id` with their resource, in span_id order."""
    return rows(
        server,
        "SELECT s.*, r.service AS resource_service, r.attributes AS resource_attributes "
        "FROM spans s JOIN resources r ON r.id = s.resource_id "
        "WHERE s.trace_id = %s ORDER BY s.span_id",
        (trace_id,),
    )


def stored_point(server: RunningServer, name: str, time_unix_nano: int) -> dict[str, Any]:
    """The one point of metric `name` at `time_unix_nano`, with its series and resource."""
    found = rows(
        server,
        "SELECT p.*, s.name, s.description, s.unit, s.type, s.temporality, s.is_monotonic, "
        "s.service, s.scope_name, s.attributes AS series_attributes, s.resource_id, "
        "r.service AS resource_service, r.attributes AS resource_attributes "
        "FROM metric_points p JOIN metric_series s ON s.id = p.series_id "
        "JOIN resources r ON r.id = s.resource_id "
        "WHERE s.name = %s AND p.time_unix_nano = %s",
        (name, time_unix_nano),
    )
    assert len(found) == 1, found
    return found[0]


VALUE_COLUMNS = (
    "as_double",
    "as_int",
    "count",
    "sum",
    "min",
    "max",
    "bucket_counts",
    "explicit_bounds",
    "scale",
    "zero_count",
    "positive_offset",
    "positive_bucket_counts",
    "negative_offset",
    "negative_bucket_counts",
    "quantiles",
    "flags",
)


def values(**given: Any) -> dict[str, Any]:
    """Every value column of a point: None (flags 0) except `given`, so a stray value shows."""
    return {**dict.fromkeys(VALUE_COLUMNS), "flags": 0, **given}


def example_trace() -> tuple[dict[str, Any], int]:
    """The trace example moved to the present, and the offset its times moved by."""
    document, offset = load("trace.json"), recent_offset()
    shift_times(document, offset)
    return document, offset


def example_metric_points(offset: int) -> dict[str, dict[str, Any]]:
    """What the metrics example stores once moved by `offset`: metric name -> row fields."""
    at = EXAMPLE_START + 300_000_000 + offset
    series = {
        "unit": "1",
        "service": "my.service",
        "scope_name": "my.library",
        "resource_service": "my.service",
        "resource_attributes": EXAMPLE_RESOURCE,
        "time_unix_nano": at,
    }
    return {
        "my.counter": {
            **series,
            "description": "I am a Counter",
            "type": "sum",
            "temporality": 1,
            "is_monotonic": True,
            "series_attributes": {"my.counter.attr": "some value"},
            "start_unix_nano": at,
            **values(as_double=5.0),
        },
        "my.gauge": {
            **series,
            "description": "I am a Gauge",
            "type": "gauge",
            "temporality": 0,
            "is_monotonic": None,
            "series_attributes": {"my.gauge.attr": "some value"},
            "start_unix_nano": 0,
            **values(as_double=10.0),
        },
        "my.histogram": {
            **series,
            "description": "I am a Histogram",
            "type": "histogram",
            "temporality": 1,
            "is_monotonic": None,
            "series_attributes": {"my.histogram.attr": "some value"},
            "start_unix_nano": at,
            **values(
                count=2,
                sum=2.0,
                min=0.0,
                max=2.0,
                bucket_counts=[1, 1],
                explicit_bounds=[1.0],
            ),
        },
    }


def assert_points_stored(server: RunningServer, expected: dict[str, dict[str, Any]]) -> None:
    """Every expected point is stored once, with exactly the expected fields."""
    for name, fields in expected.items():
        point = stored_point(server, name, fields["time_unix_nano"])
        assert {key: point[key] for key in fields} == fields, name


def typed(value: Any) -> Any:
    """`value` with the type of every leaf spelled out, so 3 != 3.0 and 1 != True."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    return (type(value).__name__, value)


def span_fields(span: dict[str, Any]) -> dict[str, Any]:
    """The stored columns that describe one span (the row minus resource_id)."""
    return {key: value for key, value in span.items() if key != "resource_id"}


# -- the specification's examples --------------------------------------------------------------


def test_trace_example_is_stored_field_by_field(server: RunningServer) -> None:
    document, offset = example_trace()

    assert_accepted(post(server, "/v1/traces", document))

    [span] = stored_spans(server, EXAMPLE_TRACE_ID)
    assert span_fields(span) == {
        "trace_id": EXAMPLE_TRACE_ID,
        "span_id": EXAMPLE_SPAN_ID,
        "parent_span_id": EXAMPLE_PARENT_ID,
        "service": "my.service",
        "scope_name": "my.library",
        "scope_version": "1.0.0",
        "name": "I'm a server span",
        "kind": 2,
        "start_unix_nano": 1544712660000000000 + offset,
        "end_unix_nano": 1544712661000000000 + offset,
        "status_code": 0,
        "status_message": "",
        "attributes": {"my.span.attr": "some value"},
        "links": None,
        "resource_service": "my.service",
        "resource_attributes": EXAMPLE_RESOURCE,
        "sender_id": None,  # no client certificate: plain HTTP
        "trace_state": None,  # the example has no tracestate
    }


def test_metrics_example_is_stored_field_by_field(server: RunningServer) -> None:
    document, offset = load("metrics.json"), recent_offset()
    shift_times(document, offset)

    assert_accepted(post(server, "/v1/metrics", document))

    assert_points_stored(server, example_metric_points(offset))
    at = EXAMPLE_START + 300_000_000 + offset
    [(points,)] = server.query(
        "SELECT count(*) FROM metric_points WHERE time_unix_nano = %s", (at,)
    )
    assert points == 3


def test_every_metric_point_type_is_stored(server: RunningServer) -> None:
    """Exponential histogram, summary, int gauge, non-monotonic cumulative sum, flags."""
    document, offset = load("metrics.json"), recent_offset()
    when = str(EXAMPLE_START + 300_000_000)

    def attrs(key: str) -> list[dict[str, Any]]:
        return [{"key": key, "value": {"stringValue": "some value"}}]

    example_metrics(document)[:] = [
        {
            "name": "my.exponential.histogram",
            "unit": "1",
            "description": "I am an Exponential Histogram",
            "exponentialHistogram": {
                "aggregationTemporality": 1,
                "dataPoints": [
                    {
                        "startTimeUnixNano": when,
                        "timeUnixNano": when,
                        "count": "8",
                        "sum": 10,
                        "scale": -2,
                        "zeroCount": "1",
                        "positive": {"offset": 1, "bucketCounts": ["0", "2"]},
                        "negative": {"offset": -3, "bucketCounts": ["4", "0", "1"]},
                        "min": -20,
                        "max": 5,
                        "zeroThreshold": 0,
                        "attributes": attrs("my.exponential.histogram.attr"),
                    }
                ],
            },
        },
        {
            "name": "my.summary",
            "unit": "ms",
            "description": "I am a Summary",
            "summary": {
                "dataPoints": [
                    {
                        "startTimeUnixNano": when,
                        "timeUnixNano": when,
                        "count": "4",
                        "sum": 17.5,
                        "quantileValues": [
                            {"quantile": 0, "value": 1.5},
                            {"quantile": 0.5, "value": 4},
                            {"quantile": 1, "value": 8.25},
                        ],
                        "attributes": attrs("my.summary.attr"),
                    }
                ]
            },
        },
        {
            "name": "my.int.gauge",
            "unit": "By",
            "gauge": {
                "dataPoints": [
                    {
                        "asInt": "-9007199254740993",
                        "timeUnixNano": when,
                        "attributes": attrs("my.int.gauge.attr"),
                    }
                ]
            },
        },
        {
            "name": "my.updown",
            "sum": {
                "aggregationTemporality": 2,
                "isMonotonic": False,
                "dataPoints": [{"asInt": "7", "startTimeUnixNano": when, "timeUnixNano": when}],
            },
        },
        {
            "name": "my.histogram.empty",
            "unit": "s",
            "histogram": {
                "aggregationTemporality": 2,
                "dataPoints": [
                    {
                        "startTimeUnixNano": when,
                        "timeUnixNano": when,
                        "count": "0",
                        "flags": 1,
                    }
                ],
            },
        },
    ]
    shift_times(document, offset)

    assert_accepted(post(server, "/v1/metrics", document))

    at = int(when) + offset
    common = {
        "service": "my.service",
        "scope_name": "my.library",
        "resource_attributes": EXAMPLE_RESOURCE,
        "time_unix_nano": at,
    }
    assert_points_stored(
        server,
        {
            "my.exponential.histogram": {
                **common,
                "description": "I am an Exponential Histogram",
                "unit": "1",
                "type": "exponential_histogram",
                "temporality": 1,
                "is_monotonic": None,
                "series_attributes": {"my.exponential.histogram.attr": "some value"},
                "start_unix_nano": at,
                **values(
                    count=8,
                    sum=10.0,
                    min=-20.0,
                    max=5.0,
                    scale=-2,
                    zero_count=1,
                    positive_offset=1,
                    positive_bucket_counts=[0, 2],
                    negative_offset=-3,
                    negative_bucket_counts=[4, 0, 1],
                ),
            },
            "my.summary": {
                **common,
                "description": "I am a Summary",
                "unit": "ms",
                "type": "summary",
                "temporality": 0,
                "is_monotonic": None,
                "series_attributes": {"my.summary.attr": "some value"},
                "start_unix_nano": at,
                **values(
                    count=4,
                    sum=17.5,
                    quantiles=[
                        {"quantile": 0.0, "value": 1.5},
                        {"quantile": 0.5, "value": 4.0},
                        {"quantile": 1.0, "value": 8.25},
                    ],
                ),
            },
            "my.int.gauge": {
                **common,
                "description": "",
                "unit": "By",
                "type": "gauge",
                "temporality": 0,
                "is_monotonic": None,
                "series_attributes": {"my.int.gauge.attr": "some value"},
                "start_unix_nano": 0,
                **values(as_int=-9007199254740993),
            },
            "my.updown": {
                **common,
                "description": "",
                "unit": "",
                "type": "sum",
                "temporality": 2,
                "is_monotonic": False,
                "series_attributes": {},
                "start_unix_nano": at,
                **values(as_int=7),
            },
            "my.histogram.empty": {
                **common,
                "description": "",
                "unit": "s",
                "type": "histogram",
                "temporality": 2,
                "is_monotonic": None,
                "series_attributes": {},
                "start_unix_nano": at,
                **values(count=0, bucket_counts=[], explicit_bounds=[], flags=1),
            },
        },
    )


EVERY_ATTRIBUTE_TYPE = [
    {"key": "string", "value": {"stringValue": "some value"}},
    {"key": "string.empty", "value": {"stringValue": ""}},
    {"key": "bool.true", "value": {"boolValue": True}},
    {"key": "bool.false", "value": {"boolValue": False}},
    {"key": "int", "value": {"intValue": "42"}},
    {"key": "int.negative", "value": {"intValue": "-7"}},
    {"key": "int.beyond.double", "value": {"intValue": "9007199254740993"}},
    {"key": "double", "value": {"doubleValue": 1.5}},
    {"key": "double.whole", "value": {"doubleValue": 3}},
    {"key": "bytes", "value": {"bytesValue": "AAH+/w=="}},
    {
        "key": "array",
        "value": {
            "arrayValue": {
                "values": [
                    {"stringValue": "a"},
                    {"intValue": "1"},
                    {"doubleValue": 2.5},
                    {"boolValue": True},
                ]
            }
        },
    },
    {
        "key": "kvlist",
        "value": {
            "kvlistValue": {
                "values": [
                    {"key": "inner.string", "value": {"stringValue": "x"}},
                    {
                        "key": "inner.array",
                        "value": {"arrayValue": {"values": [{"intValue": "2"}]}},
                    },
                    {
                        "key": "inner.kvlist",
                        "value": {
                            "kvlistValue": {
                                "values": [{"key": "deep", "value": {"boolValue": False}}]
                            }
                        },
                    },
                ]
            }
        },
    },
    {"key": "no.value", "value": {}},
]
EVERY_ATTRIBUTE_TYPE_STORED = {
    "string": "some value",
    "string.empty": "",
    "bool.true": True,
    "bool.false": False,
    "int": 42,
    "int.negative": -7,
    "int.beyond.double": 9007199254740993,
    "double": 1.5,
    "double.whole": 3.0,
    "bytes": "AAH+/w==",  # base64, as OTLP/JSON writes bytes
    "array": ["a", 1, 2.5, True],
    "kvlist": {"inner.string": "x", "inner.array": [2], "inner.kvlist": {"deep": False}},
    "no.value": None,
}


def test_every_attribute_type_status_and_links_are_stored(server: RunningServer) -> None:
    document, offset = example_trace()
    span = only_span(document)
    trace_id, span_id = new_ids(span)
    linked_trace, linked_span = os.urandom(16), os.urandom(8)
    span["attributes"] = EVERY_ATTRIBUTE_TYPE
    span["parentSpanId"] = ""  # what several SDKs send for a root span
    span["status"] = {"code": 2, "message": "it broke"}
    span["events"] = [
        {
            "timeUnixNano": str(EXAMPLE_START + 500_000_000 + offset),
            "name": "exception",
            "attributes": [{"key": "exception.type", "value": {"stringValue": "Boom"}}],
        }
    ]
    span["links"] = [
        {
            "traceId": linked_trace.hex().upper(),
            "spanId": linked_span.hex().upper(),
            "attributes": [{"key": "link.kind", "value": {"stringValue": "follows"}}],
        }
    ]
    document["resourceSpans"][0]["resource"]["attributes"] += [
        {"key": "host.cpus", "value": {"intValue": "8"}},
        {"key": "deployment.canary", "value": {"boolValue": True}},
        {"key": "load", "value": {"doubleValue": 0.25}},
    ]

    assert_accepted(post(server, "/v1/traces", document))

    [stored] = stored_spans(server, trace_id)
    assert stored["span_id"] == span_id
    assert stored["parent_span_id"] is None
    assert typed(stored["attributes"]) == typed(EVERY_ATTRIBUTE_TYPE_STORED)
    assert (stored["status_code"], stored["status_message"]) == (2, "it broke")
    assert stored["links"] == [
        {
            "trace_id": linked_trace.hex(),
            "span_id": linked_span.hex(),
            "attributes": {"link.kind": "follows"},
        }
    ]
    assert typed(stored["resource_attributes"]) == typed(
        {"service.name": "my.service", "host.cpus": 8, "deployment.canary": True, "load": 0.25}
    )
    assert stored["resource_service"] == stored["service"] == "my.service"
    assert stored["start_unix_nano"] == 1544712660000000000 + offset


# -- what OTLP/JSON receivers must accept ------------------------------------------------------


def test_snake_case_field_names_are_accepted(server: RunningServer) -> None:
    traces, offset = example_trace()
    span = only_span(traces)
    trace_id, span_id = new_ids(span)
    span["status"] = {"code": 1, "message": "fine"}
    snake = to_snake_case(traces)
    assert "scope_spans" in snake["resource_spans"][0]
    assert "start_time_unix_nano" in snake["resource_spans"][0]["scope_spans"][0]["spans"][0]

    assert_accepted(post(server, "/v1/traces", snake))

    [stored] = stored_spans(server, trace_id)
    assert span_fields(stored) == {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": EXAMPLE_PARENT_ID,
        "service": "my.service",
        "scope_name": "my.library",
        "scope_version": "1.0.0",
        "name": "I'm a server span",
        "kind": 2,
        "start_unix_nano": 1544712660000000000 + offset,
        "end_unix_nano": 1544712661000000000 + offset,
        "status_code": 1,
        "status_message": "fine",
        "attributes": {"my.span.attr": "some value"},
        "links": None,
        "resource_service": "my.service",
        "resource_attributes": EXAMPLE_RESOURCE,
        "sender_id": None,  # no client certificate: plain HTTP
        "trace_state": None,  # the example has no tracestate
    }

    metrics, offset = load("metrics.json"), recent_offset()
    shift_times(metrics, offset)
    snake = to_snake_case(metrics)
    assert "data_points" in snake["resource_metrics"][0]["scope_metrics"][0]["metrics"][0]["sum"]

    assert_accepted(post(server, "/v1/metrics", snake))

    assert_points_stored(server, example_metric_points(offset))


def test_gzip_and_media_type_parameters_are_accepted(server: RunningServer) -> None:
    traces, offset = example_trace()
    trace_id, _ = new_ids(only_span(traces))
    headers = {"content-type": "Application/JSON; charset=utf-8", "content-encoding": "gzip"}

    response = httpx.post(
        server.otlp_http + "/v1/traces",
        content=gzip.compress(json.dumps(traces).encode()),
        headers=headers,
        timeout=30,
    )

    assert_accepted(response)
    [stored] = stored_spans(server, trace_id)
    assert stored["start_unix_nano"] == 1544712660000000000 + offset


@pytest.mark.parametrize("kind", [str, int], ids=["int64-as-strings", "int64-as-numbers"])
def test_int64_fields_as_strings_or_numbers(server: RunningServer, kind: type) -> None:
    traces, offset = example_trace()
    span = only_span(traces)
    trace_id, _ = new_ids(span)
    span["attributes"].append({"key": "big", "value": {"intValue": "9007199254740993"}})
    int64_as(traces, kind)
    assert isinstance(span["startTimeUnixNano"], kind)

    assert_accepted(post(server, "/v1/traces", traces))

    [stored] = stored_spans(server, trace_id)
    assert stored["start_unix_nano"] == 1544712660000000000 + offset
    assert stored["end_unix_nano"] == 1544712661000000000 + offset
    assert typed(stored["attributes"]) == typed(
        {"my.span.attr": "some value", "big": 9007199254740993}
    )

    metrics, offset = load("metrics.json"), recent_offset()
    shift_times(metrics, offset)
    int64_as(metrics, kind)
    histogram = example_metrics(metrics)[2]["histogram"]["dataPoints"][0]
    assert isinstance(histogram["count"], kind)
    assert all(isinstance(count, kind) for count in histogram["bucketCounts"])

    assert_accepted(post(server, "/v1/metrics", metrics))

    assert_points_stored(server, example_metric_points(offset))


def test_unknown_fields_are_ignored(server: RunningServer) -> None:
    traces, offset = example_trace()
    span = only_span(traces)
    trace_id, span_id = new_ids(span)
    future = {"someFutureField": {"nested": [1, "two", None]}}
    traces.update(future)
    traces["resourceSpans"][0].update(future)
    traces["resourceSpans"][0]["resource"].update(future)
    traces["resourceSpans"][0]["scopeSpans"][0].update(future)
    traces["resourceSpans"][0]["scopeSpans"][0]["scope"].update(future)
    span.update(future, status={"code": 1, "futureStatusField": "x"})
    span["attributes"][0].update(future)

    assert_accepted(post(server, "/v1/traces", traces))

    [stored] = stored_spans(server, trace_id)
    assert stored["span_id"] == span_id
    assert stored["name"] == "I'm a server span"
    assert stored["attributes"] == {"my.span.attr": "some value"}
    assert stored["status_code"] == 1
    assert stored["resource_attributes"] == EXAMPLE_RESOURCE
    assert stored["start_unix_nano"] == 1544712660000000000 + offset

    metrics, offset = load("metrics.json"), recent_offset()
    shift_times(metrics, offset)
    metrics.update(future)
    for metric in example_metrics(metrics):
        metric.update(future)
        for data in metric.values():
            if isinstance(data, dict) and "dataPoints" in data:
                data.update(future)
                data["dataPoints"][0].update(future)

    assert_accepted(post(server, "/v1/metrics", metrics))

    assert_points_stored(server, example_metric_points(offset))


@pytest.mark.parametrize("spelling", ["integers", "names"])
def test_enum_values_as_integers_or_names(server: RunningServer, spelling: str) -> None:
    kinds = ["UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"]
    codes = ["UNSET", "OK", "ERROR"]
    traces, _ = example_trace()
    template = only_span(traces)
    trace_id = os.urandom(16)
    spans = []
    for number in range(len(kinds)):
        span = copy.deepcopy(template)
        span["traceId"], span["spanId"] = trace_id.hex(), bytes([number + 1] * 8).hex()
        code = number % len(codes)
        if spelling == "integers":
            span["kind"], span["status"] = number, {"code": code}
        else:
            span["kind"] = f"SPAN_KIND_{kinds[number]}"
            span["status"] = {"code": f"STATUS_CODE_{codes[code]}"}
        spans.append(span)
    traces["resourceSpans"][0]["scopeSpans"][0]["spans"] = spans

    assert_accepted(post(server, "/v1/traces", traces))

    stored = [(row["kind"], row["status_code"]) for row in stored_spans(server, trace_id)]
    assert stored == [(0, 0), (1, 1), (2, 2), (3, 0), (4, 1), (5, 2)]

    metrics, offset = load("metrics.json"), recent_offset()
    shift_times(metrics, offset)
    counter, _, histogram = example_metrics(metrics)
    counter["name"] = histogram["name"] = f"enum.{spelling}.{os.urandom(4).hex()}"
    histogram["name"] += ".histogram"
    delta = 1 if spelling == "integers" else "AGGREGATION_TEMPORALITY_DELTA"
    cumulative = 2 if spelling == "integers" else "AGGREGATION_TEMPORALITY_CUMULATIVE"
    counter["sum"]["aggregationTemporality"] = cumulative
    histogram["histogram"]["aggregationTemporality"] = delta

    assert_accepted(post(server, "/v1/metrics", metrics))

    at = EXAMPLE_START + 300_000_000 + offset
    assert stored_point(server, counter["name"], at)["temporality"] == 2
    assert stored_point(server, histogram["name"], at)["temporality"] == 1


# -- bad trace ids are rejected one by one -----------------------------------------------------


@pytest.mark.parametrize(
    "bad_trace_id",
    [
        "5b8efff798038103d269b633813fc6",  # 30 hex characters
        "5b8efff798038103d269b633813fc60c00",  # 34 hex characters
        "zz8efff798038103d269b633813fc60c",  # 32 characters, not hex
        "0" * 32,  # all zero
        "",
    ],
    ids=["short", "long", "not-hex", "all-zero", "empty"],
)
def test_a_bad_trace_id_rejects_only_that_span(server: RunningServer, bad_trace_id: str) -> None:
    traces, _ = example_trace()
    template = only_span(traces)
    good = []
    spans = []
    for _ in range(3):
        span = copy.deepcopy(template)
        good.append(new_ids(span))
        spans.append(span)
    bad_span_id = bytes.fromhex(spans[1]["spanId"])
    spans[1]["traceId"] = bad_trace_id
    traces["resourceSpans"][0]["scopeSpans"][0]["spans"] = spans

    response = post(server, "/v1/traces", traces)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    partial = response.json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 1
    assert "trace_id" in partial["errorMessage"]
    for position in (0, 2):
        trace_id, span_id = good[position]
        assert [row["span_id"] for row in stored_spans(server, trace_id)] == [span_id]
    assert server.query("SELECT count(*) FROM spans WHERE span_id = %s", (bad_span_id,)) == [(0,)]


@pytest.mark.parametrize(
    ("link_trace_id", "link_span_id"),
    [("zz" * 16, "eee19b7ec3c1b174"), ("5b8efff798038103", "eee19b7ec3c1b174"), ("ab" * 16, "01")],
    ids=["trace-id-not-hex", "trace-id-8-bytes", "span-id-1-byte"],
)
def test_a_link_with_a_bad_id_is_never_stored_with_that_id(
    server: RunningServer, link_trace_id: str, link_span_id: str
) -> None:
    """A link's ids are checked like a span's: the link (or its span) is refused, not stored.

    Today a link id that is not hex is stored as the made-up trace id "00", and a link id of
    the wrong length is stored as it came; queries that follow links then join on garbage.
    """
    traces, _ = example_trace()
    span = only_span(traces)
    trace_id, _ = new_ids(span)
    span["links"] = [{"traceId": link_trace_id, "spanId": link_span_id}]

    response = post(server, "/v1/traces", traces)

    assert response.status_code == 200, response.text
    stored = stored_spans(server, trace_id)
    if not stored:  # the span was refused: partial success must say so
        assert int(response.json()["partialSuccess"]["rejectedSpans"]) == 1
    for row in stored:
        for link in row["links"] or []:
            assert len(bytes.fromhex(link["trace_id"])) == 16, link
            assert len(bytes.fromhex(link["span_id"])) == 8, link
