"""OTLP attributes (repeated KeyValue) as JSON objects, and content fingerprints.

Attribute lists are the hot spot of decoding: a span carries about ten, and most key/value
pairs repeat from span to span (methods, routes, hosts). `AttributeEncoder` caches the JSON
fragment of each serialized KeyValue (spans arrive with attributes unparsed, see
`collector.decode.lazy`), so a repeated pair costs one dict lookup; the cache is bounded.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from typing import Any

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.common.v1.common_pb2 import KeyValue as PB2KeyValue

from collector.errors import MalformedRequest

CACHE_LIMIT = 200_000


def fingerprint(canonical: bytes) -> int:
    """A stable signed 64-bit id for `canonical` bytes (blake2b), fit for a bigint column."""
    digest = hashlib.blake2b(canonical, digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def clean_text(text: str) -> str:
    """PostgreSQL text and jsonb cannot hold NUL: it becomes U+FFFD, the rest is kept."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def any_value(value: Any) -> Any:
    """An OTLP AnyValue as a JSON-able Python value (bytes become base64, as in OTLP/JSON)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {clean_text(kv.key): any_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if kind == "string_value":
        return clean_text(value.string_value)
    return getattr(value, kind)


class AttributeEncoder:
    """Encodes repeated KeyValue fields; keeps a bounded cache of per-pair JSON fragments."""

    def __init__(self, cache_limit: int = CACHE_LIMIT) -> None:
        self._fragments: dict[bytes, str] = {}
        self._limit = cache_limit

    def as_dict(self, attributes: Iterable[Any]) -> dict[str, Any]:
        """The attributes as a dict (later duplicates of a key win, as in jsonb)."""
        return {clean_text(kv.key): any_value(kv.value) for kv in attributes}

    def encode(self, attributes: Iterable[bytes]) -> str:
        """Serialized KeyValues (see `collector.decode.lazy`) as a JSON object text."""
        fragments = self._fragments
        parts = []
        for raw in attributes:
            fragment = fragments.get(raw)
            if fragment is None:
                fragment = self._fragment(raw)
            parts.append(fragment)
        return "{" + ",".join(parts) + "}"

    def _fragment(self, raw: bytes) -> str:
        try:
            kv = PB2KeyValue.FromString(raw)
        except DecodeError as exc:
            raise MalformedRequest(f"malformed protobuf body: bad span attribute: {exc}") from exc
        text = orjson.dumps({clean_text(kv.key): any_value(kv.value)}).decode()[1:-1]
        if len(self._fragments) >= self._limit:
            self._fragments.clear()
        self._fragments[raw] = text
        return text
