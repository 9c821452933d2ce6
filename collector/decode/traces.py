"""OTLP spans as span rows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from collector.decode.attributes import AttributeEncoder, clean_text
from collector.decode.window import TimeWindow
from collector.derive.span_facts import SpanClassifier
from collector.rows import DecodedBatch, ResourceRow

ZERO_TRACE_ID = bytes(16)
ZERO_SPAN_ID = bytes(8)
MAX_SPAN_KIND, MAX_STATUS_CODE = 5, 2  # SpanKind CONSUMER, StatusCode ERROR


def span_problem(
    trace_id: bytes, span_id: bytes, parent: bytes, start: int, end: int, window: TimeWindow
) -> str | None:
    """Why a span's ids and times cannot be stored, or None."""
    if len(trace_id) != 16 or trace_id == ZERO_TRACE_ID:
        return "trace_id must be 16 bytes (32 hex characters), not all zero"
    if len(span_id) != 8 or span_id == ZERO_SPAN_ID:
        return "span_id must be 8 bytes (16 hex characters), not all zero"
    if parent and len(parent) != 8:
        return "parent_span_id must be empty or 8 bytes (16 hex characters)"
    problem = window.problem(start, "start_time_unix_nano")
    if problem is not None:
        return problem
    if end < start:
        return "end_time_unix_nano is before start_time_unix_nano"
    if end > window.latest_unix_nano:
        return "end_time_unix_nano is too far in the future"
    return None


def _enum_problem(kind: int, code: int) -> str | None:
    """Why a span's kind or status code is not one OTLP defines, or None.

    Protobuf enums are open: any int32 arrives. Values past the defined ones mean nothing to
    derivation, and those past a smallint would make the database refuse the whole batch.
    """
    if not 0 <= kind <= MAX_SPAN_KIND:
        return f"kind must be 0 to {MAX_SPAN_KIND} (SpanKind), not {kind}"
    if not 0 <= code <= MAX_STATUS_CODE:
        return f"status.code must be 0 to {MAX_STATUS_CODE} (StatusCode), not {code}"
    return None


def _link_problem(links: Iterable[Any]) -> str | None:
    """Why a span's links cannot be stored, or None."""
    for n, link in enumerate(links):
        if len(link.trace_id) != 16 or link.trace_id == ZERO_TRACE_ID:
            return f"links[{n}].trace_id must be 16 bytes (32 hex characters), not all zero"
        if len(link.span_id) != 8 or link.span_id == ZERO_SPAN_ID:
            return f"links[{n}].span_id must be 8 bytes (16 hex characters), not all zero"
    return None


MAX_TRACE_STATE = 512
"""W3C Trace Context: vendors propagate at least 512 characters of `tracestate`; a longer one
is not kept (cut, it would be malformed)."""


def _trace_state(value: str) -> str | None:
    """The span's `tracestate` as stored, None when too long to keep whole."""
    return clean_text(value) if len(value) <= MAX_TRACE_STATE else None


class SpanDecoder:
    """Appends the spans of one scope to a batch; the hot loop of trace ingest."""

    def __init__(self, attributes: AttributeEncoder, sampling_percent: float | None = None) -> None:
        self._attributes = attributes
        self._classifier = SpanClassifier(sampling_percent)

    def decode(
        self,
        batch: DecodedBatch,
        spans: Iterable[Any],
        resource: ResourceRow,
        resource_attributes: Mapping[str, Any],
        scope: Any,
        window: TimeWindow,
        sender_id: int | None = None,
    ) -> None:
        """Append every storable span to `batch.spans` (and its facts to `batch.facts`),
        rejecting the others one by one."""
        encode = self._attributes.encode
        append = batch.spans.append
        append_facts = batch.facts.append
        classify = self._classifier.facts
        resource_id, service = resource.id, resource.service
        scope_name, scope_version = clean_text(scope.name), clean_text(scope.version)
        earliest, latest = window.earliest_unix_nano, window.latest_unix_nano
        for span in spans:
            trace_id, span_id, parent = span.trace_id, span.span_id, span.parent_span_id
            start, end = span.start_time_unix_nano, span.end_time_unix_nano
            status = span.status
            kind, code = span.kind, status.code
            fine = (
                len(trace_id) == 16
                and len(span_id) == 8
                and (not parent or len(parent) == 8)
                and earliest <= start <= end <= latest
                and trace_id != ZERO_TRACE_ID
                and span_id != ZERO_SPAN_ID
                and 0 <= kind <= MAX_SPAN_KIND
                and 0 <= code <= MAX_STATUS_CODE
            )
            if not fine:  # the slow path says exactly what is wrong
                problem = span_problem(
                    trace_id, span_id, parent, start, end, window
                ) or _enum_problem(kind, code)
                if problem is not None:
                    batch.reject(problem)
                    continue
            links = span.links
            if links:
                problem = _link_problem(links)
                if problem is not None:
                    batch.reject(problem)
                    continue
            picked: dict[str, Any] = {}
            attributes = encode(span.attributes, picked)
            link_keys = tuple((link.trace_id, link.span_id) for link in links) if links else ()
            facts = classify(span, resource_id, service, picked, resource_attributes, link_keys)
            if facts is not None:
                append_facts(facts)
            append(
                (
                    trace_id,
                    span_id,
                    parent or None,
                    resource_id,
                    service,
                    scope_name,
                    scope_version,
                    clean_text(span.name),
                    kind,
                    start,
                    end,
                    code,
                    clean_text(status.message) if status.message else "",
                    attributes,
                    self._links(links) if links else None,
                    sender_id,
                    _trace_state(span.trace_state) if span.trace_state else None,
                )
            )

    def _links(self, links: Iterable[Any]) -> str:
        """Span links (async messaging pairs them) as a JSON array with hex ids."""
        out = [
            {
                "trace_id": link.trace_id.hex(),
                "span_id": link.span_id.hex(),
                "attributes": self._attributes.as_dict(link.attributes),
            }
            for link in links
        ]
        return orjson.dumps(out).decode()
