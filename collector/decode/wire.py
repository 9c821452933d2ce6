"""Parsing request bodies and encoding answers, in protobuf or OTLP/JSON."""

from __future__ import annotations

import binascii
from typing import Any, TypeVar

import orjson
from google.protobuf import json_format
from google.protobuf.any_pb2 import Any as PB2Any
from google.protobuf.duration_pb2 import Duration as PB2Duration
from google.protobuf.message import DecodeError, Message
from google.rpc.error_details_pb2 import RetryInfo as PB2RetryInfo
from google.rpc.status_pb2 import Status as PB2Status

from collector.errors import MalformedRequest

Trailer = tuple[str, bytes]

M = TypeVar("M", bound=Message)
MAX_JSON_DEPTH = 64  # OTLP nests about 12 deep; kvlist values add a few levels each
_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})


def parse_protobuf(message: M, body: bytes) -> M:
    """Fill `message` from a binary protobuf body."""
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        raise MalformedRequest(f"malformed protobuf body: {exc}") from exc
    return message


def parse_json(message: M, body: bytes) -> M:
    """Fill `message` from an OTLP/JSON body (hex ids; camelCase or snake_case; unknown ignored)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest(f"malformed JSON body: {exc}") from exc
    if not isinstance(document, dict):
        raise MalformedRequest("malformed JSON body: the top level must be an object")
    hex_ids_to_base64(document)
    try:
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise MalformedRequest(f"malformed OTLP/JSON body: {exc}") from exc
    return message


def hex_ids_to_base64(document: dict[str, Any]) -> None:
    """OTLP/JSON carries ids as hex, protobuf JSON as base64: rewrite them in place.

    Walks with an explicit stack (a body nested 1,000 deep must be a 400, not a crash). An id
    that is not valid hex becomes a 1-byte id, which the span checks then reject with a
    specific message instead of failing the whole request.
    """
    stack: list[tuple[Any, int]] = [(document, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise MalformedRequest(f"malformed OTLP/JSON body: nested deeper than {MAX_JSON_DEPTH}")
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if isinstance(value, str):
                if key in _ID_KEYS:
                    node[key] = _hex_to_base64(value)
            elif isinstance(value, dict | list):
                stack.append((value, depth + 1))


def _hex_to_base64(value: str) -> str:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raw = b"\x00"
    return binascii.b2a_base64(raw, newline=False).decode()


def encode(message: Message, *, as_json: bool) -> bytes:
    """`message` in binary protobuf, or in OTLP/JSON."""
    if as_json:
        return orjson.dumps(json_format.MessageToDict(message))
    return message.SerializeToString()


def status_body(code: int, message: str, *, as_json: bool) -> bytes:
    """A `google.rpc.Status` body for HTTP error answers (`code` is a gRPC status code)."""
    return encode(PB2Status(code=code, message=message), as_json=as_json)


def retry_trailers(code: int, message: str, retry_after_seconds: int) -> tuple[Trailer, ...]:
    """gRPC trailers asking the client to retry after `retry_after_seconds`.

    The OTLP specification puts `RetryInfo` in the `google.rpc.Status` of the
    `grpc-status-details-bin` trailer; the OpenTelemetry Python SDK's exporter (1.45) reads
    only a `google.rpc.retryinfo-bin` trailer holding the `RetryInfo` itself, and without it
    backs off 1, 2, 4, 8, 16 s whatever the server asked. Both are sent.
    """
    retry_info = PB2RetryInfo(retry_delay=PB2Duration(seconds=retry_after_seconds))
    status = PB2Status(code=code, message=message)
    detail = PB2Any()
    detail.Pack(retry_info)
    status.details.append(detail)
    return (
        ("grpc-status-details-bin", status.SerializeToString()),
        ("google.rpc.retryinfo-bin", retry_info.SerializeToString()),
    )
