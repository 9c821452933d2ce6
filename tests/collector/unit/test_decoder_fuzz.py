"""Property-based fuzzing of the OTLP decoders (protobuf and OTLP/JSON) with Hypothesis.

The decoders' promise (`collector.decode`): a body becomes a `DecodedBatch`, or the request is
refused with an `IngestError` (a 400 saying what is wrong); nothing else escapes, whatever the
bytes. For a valid request every item is accounted for, kept or rejected one by one, and what
is kept can be written: each value fits its PostgreSQL column. The official protobuf parser is
the oracle of what a request holds; the OTLP/JSON rendering of a request decodes to the same
rows as its protobuf.

Runs are reproducible: a fixed number of examples from a derandomized search (about 20 s in
all). To fuzz longer, with fresh random inputs each run and Hypothesis' example database
replaying failures, set MESHLENS_FUZZ_EXAMPLES:
`MESHLENS_FUZZ_EXAMPLES=20000 pytest tests/collector/unit/test_decoder_fuzz.py`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.decode import OtlpDecoder, TimeWindow
from collector.decode.pool import prepare_spans
from collector.derive.at_ingest import metric_inbox_rows, saturation_inbox_rows
from collector.errors import IngestError
from collector.rows import POINT_COLUMNS, SPAN_COLUMNS, DecodedBatch
from meshlens.settings import DEFAULT_SATURATION_METRICS
from tests.otlp_mutations import json_values, mutated, mutated_json, otlp_json
from tests.otlp_strategies import fuzz, metrics_requests, trace_requests

NOW = 1_800_000_000_000_000_000
WINDOW = TimeWindow.around(NOW, retention_days=7, future_skew_s=86_400)


DECODER = OtlpDecoder(frozenset(DEFAULT_SATURATION_METRICS))
"""One decoder for every example, as in the server: its caches must not change any result."""


def decode(signal: str, body: bytes, *, as_json: bool = False) -> DecodedBatch | None:
    """The batch, after everything the server process does with it before the COPY, or None
    when the body is refused with an IngestError (any other exception fails the test)."""
    try:
        if signal == "traces":
            batch = DECODER.traces(body, WINDOW, as_json=as_json)
        else:
            batch = DECODER.metrics(body, WINDOW, as_json=as_json)
    except IngestError:
        return None
    assert_writable(batch)
    metric_inbox_rows(batch.points, batch.series, batch.edge_series, None)
    saturation_inbox_rows(batch.saturation)
    if batch.spans:
        spans = list(batch.spans)
        prepare_spans(batch)  # COPY text and derivation, as a decode worker does
        assert batch.prepared is not None
        batch.prepared.derivation.rollup_rows()
        batch.spans = spans
    return batch


# --- what is kept fits its column ---------------------------------------------------------------

SMALLINT, INTEGER, BIGINT = 2**15, 2**31, 2**63
_SPAN_INTS = {"kind": SMALLINT, "status_code": SMALLINT, "start_unix_nano": BIGINT,
              "end_unix_nano": BIGINT, "resource_id": BIGINT}  # fmt: skip
_POINT_INTS = {"series_id": BIGINT, "start_unix_nano": BIGINT, "time_unix_nano": BIGINT,
               "as_int": BIGINT, "count": BIGINT, "scale": INTEGER, "zero_count": BIGINT,
               "positive_offset": INTEGER, "negative_offset": INTEGER, "flags": BIGINT}  # fmt: skip
_POINT_ARRAYS = ("bucket_counts", "positive_bucket_counts", "negative_bucket_counts")
_JSON_COLUMNS = ("attributes", "links", "quantiles")


def assert_writable(batch: DecodedBatch) -> None:
    """Every kept value fits its PostgreSQL column: one that does not would make the database
    refuse the whole request instead of the one item."""
    for span in batch.spans:
        _check_row(dict(zip(SPAN_COLUMNS, span, strict=True)), _SPAN_INTS)
    for point in batch.points:
        row = dict(zip(POINT_COLUMNS, point, strict=True))
        _check_row(row, _POINT_INTS)
        for column in _POINT_ARRAYS:
            for value in row[column] or ():
                assert -BIGINT <= value < BIGINT, f"{column} holds {value}, not a bigint"
    for series in batch.series.values():
        assert -SMALLINT <= series.temporality < SMALLINT, f"temporality {series.temporality}"
        _check_text(series.name, series.unit, series.description, series.scope_name)
        _check_json(series.attributes)
    for resource in batch.resources.values():
        _check_text(resource.service)
        _check_json(resource.attributes)


def _check_row(row: dict[str, Any], ints: dict[str, int]) -> None:
    for column, bound in ints.items():
        value = row[column]
        assert value is None or -bound <= value < bound, f"{column} = {value} does not fit"
    for column, value in row.items():
        if column in _JSON_COLUMNS and value is not None:
            _check_json(value)
        elif isinstance(value, str):
            _check_text(value)


def _check_text(*values: str) -> None:
    for value in values:
        assert "\x00" not in value, "PostgreSQL text cannot hold NUL"
        value.encode("utf-8")  # no lone surrogates


def _check_json(text: str) -> None:
    assert "\\u0000" not in text, "jsonb cannot hold NUL"
    json.loads(text)


# --- arbitrary and mutated bytes -----------------------------------------------------------------


@pytest.mark.parametrize("signal", ["traces", "metrics"])
@fuzz(2000)
@given(body=st.binary(max_size=300))
def test_arbitrary_bytes_are_decoded_or_refused(signal: str, body: bytes) -> None:
    decode(signal, body)


@fuzz(150)
@given(data=st.data())
def test_mutated_trace_requests_are_decoded_or_refused(data: st.DataObject) -> None:
    body = data.draw(trace_requests(NOW)).SerializeToString()
    body = data.draw(mutated(body))
    batch = decode("traces", body)
    try:  # when the official parser reads it, nothing may be refused and nothing lost
        official = ExportTraceServiceRequest.FromString(body)
    except DecodeError:  # the official parser refuses it too: no oracle
        return
    assert batch is not None, "the official parser reads this body, meshlens refused it"
    assert len(batch.spans) + batch.rejected == _span_count(official)


@fuzz(150)
@given(data=st.data())
def test_mutated_metrics_requests_are_decoded_or_refused(data: st.DataObject) -> None:
    body = data.draw(metrics_requests(NOW)).SerializeToString()
    body = data.draw(mutated(body))
    batch = decode("metrics", body)
    try:
        official = ExportMetricsServiceRequest.FromString(body)
    except DecodeError:
        return
    assert batch is not None, "the official parser reads this body, meshlens refused it"
    assert len(batch.points) + batch.rejected == _point_count(official)


# --- valid requests: every item kept or rejected, as the rules say ----------------------------


def _span_count(request: ExportTraceServiceRequest) -> int:
    return sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)


def _point_count(request: ExportMetricsServiceRequest) -> int:
    count = 0
    for metric in (m for r in request.resource_metrics for s in r.scope_metrics for m in s.metrics):
        kind = metric.WhichOneof("data")
        count += len(getattr(metric, kind).data_points) if kind else 0
    return count


def _storable_ids(request: ExportTraceServiceRequest) -> list[tuple[bytes, bytes]]:
    """(trace_id, span_id) of the spans the README says are stored, in request order."""

    def good_ids(trace_id: bytes, span_id: bytes) -> bool:
        return len(trace_id) == 16 and any(trace_id) and len(span_id) == 8 and any(span_id)

    kept = []
    for span in (s for r in request.resource_spans for ss in r.scope_spans for s in ss.spans):
        start, end = span.start_time_unix_nano, span.end_time_unix_nano
        if (
            good_ids(span.trace_id, span.span_id)
            and len(span.parent_span_id) in (0, 8)
            and WINDOW.earliest_unix_nano <= start <= end <= WINDOW.latest_unix_nano
            and all(good_ids(link.trace_id, link.span_id) for link in span.links)
            and 0 <= span.kind <= 5
            and 0 <= span.status.code <= 2
        ):
            kept.append((span.trace_id, span.span_id))
    return kept


@fuzz(200)
@given(request=trace_requests(NOW))
def test_valid_trace_requests_keep_exactly_the_storable_spans(
    request: ExportTraceServiceRequest,
) -> None:
    batch = decode("traces", request.SerializeToString())

    assert batch is not None
    assert [(row[0], row[1]) for row in batch.spans] == _storable_ids(request)
    assert len(batch.spans) + batch.rejected == _span_count(request)
    assert (batch.rejected > 0) == bool(batch.error_message)


@fuzz(200)
@given(request=metrics_requests(NOW))
def test_valid_metrics_requests_keep_or_reject_every_point(
    request: ExportMetricsServiceRequest,
) -> None:
    batch = decode("metrics", request.SerializeToString())

    assert batch is not None
    assert len(batch.points) + batch.rejected == _point_count(request)
    kept_times = sorted(row[2] for row in batch.points)
    assert all(WINDOW.earliest_unix_nano <= t <= WINDOW.latest_unix_nano for t in kept_times)


# --- OTLP/JSON ---------------------------------------------------------------------------------


@fuzz(100)
@given(request=trace_requests(NOW))
def test_otlp_json_of_a_trace_request_decodes_as_its_protobuf(
    request: ExportTraceServiceRequest,
) -> None:
    from_json = decode("traces", json.dumps(otlp_json(request)).encode(), as_json=True)
    from_protobuf = decode("traces", request.SerializeToString())

    assert from_json is not None
    assert from_protobuf is not None
    assert repr(from_json.spans) == repr(from_protobuf.spans)
    assert from_json.rejected == from_protobuf.rejected


@fuzz(100)
@given(request=metrics_requests(NOW))
def test_otlp_json_of_a_metrics_request_decodes_as_its_protobuf(
    request: ExportMetricsServiceRequest,
) -> None:
    from_json = decode("metrics", json.dumps(otlp_json(request)).encode(), as_json=True)
    from_protobuf = decode("metrics", request.SerializeToString())

    assert from_json is not None
    assert from_protobuf is not None
    assert repr(from_json.points) == repr(from_protobuf.points)
    assert from_json.series == from_protobuf.series
    assert from_json.rejected == from_protobuf.rejected


@pytest.mark.parametrize("signal", ["traces", "metrics"])
@fuzz(150)
@given(data=st.data())
def test_mutated_otlp_json_is_decoded_or_refused(signal: str, data: st.DataObject) -> None:
    request = data.draw(trace_requests(NOW) if signal == "traces" else metrics_requests(NOW))
    decode(signal, data.draw(mutated_json(otlp_json(request))), as_json=True)


@pytest.mark.parametrize("signal", ["traces", "metrics"])
@fuzz(1000)
@given(document=json_values())
def test_arbitrary_json_is_decoded_or_refused(signal: str, document: Any) -> None:
    decode(signal, json.dumps(document).encode(), as_json=True)
    wrapped = {"resourceSpans": [document], "resourceMetrics": document}
    decode(signal, json.dumps(wrapped).encode(), as_json=True)


@fuzz(1000)
@given(body=st.binary(max_size=200) | st.text(max_size=100).map(str.encode))
def test_arbitrary_bytes_as_json_are_decoded_or_refused(body: bytes) -> None:
    decode("traces", body, as_json=True)
    decode("metrics", body, as_json=True)
