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
_Entry = tuple[str, str | None, Any]  # JSON fragment, key when picked, value


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

    def __init__(self, picked_keys: frozenset[str], cache_limit: int = CACHE_LIMIT) -> None:
        self._entries: dict[bytes, _Entry] = {}
        self._picked_keys = picked_keys
        self._limit = cache_limit

    def as_dict(self, attributes: Iterable[Any]) -> dict[str, Any]:
        """The attributes as a dict (later duplicates of a key win, as in jsonb)."""
        return {clean_text(kv.key): any_value(kv.value) for kv in attributes}

    def encode(self, attributes: Iterable[bytes], picked: dict[str, Any]) -> str:
        """Serialized KeyValues (see `collector.decode.lazy`) as a JSON object text.

        The values of the attributes derivation reads (`picked_keys`) are put in `picked`.
        """
        entries = self._entries
        parts = []
        for raw in attributes:
            entry = entries.get(raw)
            if entry is None:
                entry = self._entry(raw)
            parts.append(entry[0])
            if entry[1] is not None:
                picked[entry[1]] = entry[2]
        return "{" + ",".join(parts) + "}"

    def _entry(self, raw: bytes) -> _Entry:
        try:
            kv = PB2KeyValue.FromString(raw)
        except DecodeError as exc:
            raise MalformedRequest(f"malformed protobuf body: bad span attribute: {exc}") from exc
        key, value = clean_text(kv.key), any_value(kv.value)
        text = orjson.dumps({key: value}).decode()[1:-1]
        entry = (text, key if key in self._picked_keys else None, value)
        if len(self._entries) >= self._limit:
            self._entries.clear()
        self._entries[raw] = entry
        return entry
