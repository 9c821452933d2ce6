"""Mutations for the fuzz tests: OTLP requests rendered as OTLP/JSON, arbitrary JSON values,
JSON documents with nodes replaced, and bodies with bytes flipped, overwritten, cut, inserted
or spliced."""

from __future__ import annotations

import base64
import json
from functools import cache
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from hypothesis import strategies as st

from tests.otlp_strategies import mostly, texts

# --- OTLP/JSON ---------------------------------------------------------------------------------

_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId"})


def otlp_json(message: Message) -> Any:
    """`message` in the OTLP/JSON mapping: camelCase, integer enums, hex ids."""
    document = json_format.MessageToDict(message, use_integers_for_enums=True)
    _hex_ids(document)
    return document


def _hex_ids(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _hex_ids(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids(item)


@cache
def json_values() -> st.SearchStrategy[Any]:
    """Any JSON value (big integers, odd floats and strings included)."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers() | st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        texts | st.sampled_from(["NaN", "Infinity", "-1", "1e400", "00ff", "zz"]),
    )

    def containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        keys = st.sampled_from(OTLP_JSON_KEYS) | texts
        return st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=3)

    return st.recursive(scalars, containers, max_leaves=10)


OTLP_JSON_KEYS = (
    "resourceSpans", "resourceMetrics", "resource", "attributes", "key", "value",
    "stringValue", "intValue", "doubleValue", "boolValue", "bytesValue", "arrayValue",
    "kvlistValue", "values", "scopeSpans", "scopeMetrics", "scope", "spans", "metrics",
    "traceId", "spanId", "parentSpanId", "name", "kind", "startTimeUnixNano",
    "endTimeUnixNano", "timeUnixNano", "status", "code", "links", "gauge", "sum", "histogram",
    "exponentialHistogram", "summary", "dataPoints", "asInt", "asDouble", "count",
    "bucketCounts", "explicitBounds", "positive", "negative", "offset", "quantileValues",
    "aggregationTemporality", "isMonotonic", "trace_id", "span_id",
)  # fmt: skip


@st.composite
def mutated_json(draw: st.DrawFn, document: Any) -> bytes:
    """`document` with a few nodes replaced by arbitrary JSON values, as JSON text."""
    for _ in range(draw(st.integers(1, 3))):
        document = _replace_somewhere(draw, document)
    return json.dumps(document).encode()


def _replace_somewhere(draw: st.DrawFn, node: Any) -> Any:
    if not isinstance(node, dict | list) or not node or draw(st.integers(0, 3)) == 0:
        return draw(json_values())
    if isinstance(node, dict):
        key = draw(st.sampled_from(sorted(node)))
        return {**node, key: _replace_somewhere(draw, node[key])}
    index = draw(st.integers(0, len(node) - 1))
    return [*node[:index], _replace_somewhere(draw, node[index]), *node[index + 1 :]]


# --- bytes -------------------------------------------------------------------------------------


_MUTATIONS = ("flip", "flip", "flip", "byte", "byte", "truncate", "insert", "delete", "splice")
"""In-place changes (bit flips, a byte overwritten) weigh more: they keep the lengths of the
enclosing messages, so the decoder goes on into what changed instead of refusing at once."""


@st.composite
def mutated(draw: st.DrawFn, body: bytes) -> bytes:
    """`body` after a few bit flips, overwritten bytes, truncations, insertions, deletions or
    splices (mostly one)."""
    data = bytearray(body)
    spot = draw(st.randoms(use_true_random=True))  # uniform: drawn integers favour the start
    for _ in range(draw(mostly(st.just(1), st.integers(2, 4)))):
        where = spot.randrange(len(data)) if data else 0
        action = draw(st.sampled_from(_MUTATIONS))
        if action == "flip" and data:
            data[where] ^= 1 << draw(st.integers(0, 7))
        elif action == "byte" and data:
            data[where] = draw(st.integers(0, 255))
        elif action == "truncate":
            del data[where:]
        elif action == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=6))
        elif action == "delete":
            del data[where : where + draw(st.integers(1, 8))]
        elif action == "splice" and data:  # a copy of some stretch of the body, elsewhere
            start = spot.randrange(len(data))
            data[where:where] = data[start : start + draw(st.integers(1, 32))]
    return bytes(data)
