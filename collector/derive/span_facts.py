"""What derivation needs of one span, classified once while ingest decodes it.

The span decoder hands every SERVER, CLIENT, PRODUCER and CONSUMER span to `SpanClassifier`,
which applies the rules of `collector.derive.classify` (service after proxy attribution,
error per side, mTLS state, operation, version) and keeps the answer as a `SpanFacts` tuple.
Per-resource answers are cached: this runs for every span on the ingest path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from collector.derive import classify
from collector.derive.sampling import adjusted_count, declared_count, whole
from meshlens.signals.histogram import bucket_of

UNKNOWN_VERSION = "unknown"
ENVOY, LINKERD = "envoy", "linkerd"
_CACHE_LIMIT = 10_000


class SpanFacts(NamedTuple):
    """What derivation needs of one span, classified once at ingest."""

    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes
    links: tuple[tuple[bytes, bytes], ...]
    kind: int
    service: str
    start_unix_nano: int
    duration_ns: int
    latency_key: int
    error: bool
    mtls: int
    operation: str
    version: str
    is_database: bool
    attributes: Mapping[str, Any]  # the picked span attributes, for a virtual peer later
    proxy_leg: bool = False  # between a Linkerd proxy and its own app: pairs, never counts
    proxy: str = ""  # written by a proxy: ENVOY or LINKERD; "" for an app's own span
    gateway: bool = False  # written by an Istio gateway (its Envoy's node type is `router`)
    weight: int = 1  # the requests it stands for: its adjusted count (`sampling`)
    unknown_rate: bool = False  # a proxy's span, sampled at a rate nobody declared


class SpanClassifier:
    """Classifies spans for derivation, caching what depends only on the resource."""

    def __init__(self, sampling_percent: float | None = None) -> None:
        self._declared = None if sampling_percent is None else declared_count(sampling_percent)
        self._services: dict[tuple[int, str, Any, Any], str] = {}
        self._versions: dict[tuple[int, Any], str] = {}

    def facts(
        self,
        span: Any,
        resource_id: int,
        service: str,
        attributes: Mapping[str, Any],
        resource: Mapping[str, Any],
        links: tuple[tuple[bytes, bytes], ...],
    ) -> SpanFacts | None:
        """Classify one decoded span; None for spans derivation ignores (INTERNAL, unset)."""
        kind = span.kind
        exit_ = kind in classify.EXIT_KINDS
        if not exit_ and kind not in classify.ENTRY_KINDS:
            return None
        start = span.start_time_unix_nano
        duration = span.end_time_unix_nano - start
        linkerd = classify.is_linkerd_proxy(service)
        proxy = LINKERD if linkerd else ENVOY if classify.is_envoy(attributes) else ""
        gateway = proxy == ENVOY and classify.is_gateway(attributes)
        if gateway and exit_:  # an old gateway's one span is also its own request: server rules
            error = classify.server_side_error(span.status.code, attributes)
        else:
            error = classify.is_error(kind, span.status.code, attributes)
        return SpanFacts(
            span.trace_id,
            span.span_id,
            span.parent_span_id,
            links,
            kind,
            self._service(resource_id, service, attributes, resource),
            start,
            duration,
            bucket_of(duration),
            error,
            classify.mtls_state(attributes),
            classify.operation(span.name, attributes) or span.name or "unknown",
            self._version(resource_id, attributes, resource),
            exit_ and classify.is_database_call(attributes),
            attributes,
            linkerd and classify.is_proxy_leg(kind, service, attributes),
            proxy,
            gateway,
            *self._sampling(span, proxy),
        )

    def _sampling(self, span: Any, proxy: str) -> tuple[int, bool]:
        """(weight, unknown rate): the adjusted count `tracestate` records, else the declared
        one, else 1, and for a proxy's span an unknown rate."""
        count = adjusted_count(span.trace_state) if span.trace_state else None
        if count is None:
            count = self._declared
            if count is None:
                return 1, bool(proxy)
        return whole(count, span.span_id), False

    def _service(
        self, resource_id: int, service: str, attributes: Mapping[str, Any], resource: Any
    ) -> str:
        key = (
            resource_id,
            service,
            _key_part(attributes.get("istio.canonical_service")),
            _key_part(attributes.get("istio.namespace")),
        )
        found = self._services.get(key)
        if found is None:
            found = classify.workload_service(service, attributes, resource)
            _remember(self._services, key, found)
        return found

    def _version(self, resource_id: int, attributes: Mapping[str, Any], resource: Any) -> str:
        key = (resource_id, _key_part(attributes.get("istio.canonical_revision")))
        found = self._versions.get(key)
        if found is None:
            found = classify.version(attributes, resource) or UNKNOWN_VERSION
            _remember(self._versions, key, found)
        return found


def _key_part(value: Any) -> Any:
    """An attribute value as part of a cache key. Arrays and maps (unhashable) count as absent,
    as they do for classification, which reads only texts and integers."""
    return None if isinstance(value, list | dict) else value


def _remember(cache: dict[Any, str], key: Any, value: str) -> None:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = value
