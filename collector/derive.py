"""From stored spans to what the deriver needs: request halves and pre-aggregated signals.

At ingest, each span is classified once (`span_facts`). After its batch is written, the facts
of the spans actually inserted (resends are not) become:
- service signals (entry spans: SERVER, CONSUMER), aggregated per minute for the service total,
  per operation and per version, ready to fold into rollups;
- edges known at once: a root SERVER span is a request from the virtual client `user`, a
  CLIENT span that names a database is a request to that database node;
- halves for pairing in PostgreSQL: every other CLIENT/PRODUCER span, and every SERVER/CONSUMER
  span with a parent (or with links, for asynchronous messaging).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from meshlens.signals import classify
from meshlens.signals.histogram import LatencyHistogram

NANOS_PER_MINUTE = 60 * 1_000_000_000
CLIENT_SIDE, SERVER_SIDE = 1, 2
SPAN_KIND_SERVER = 2
UNKNOWN_VERSION = "unknown"
USER = "user"

# edge_halves_inbox row: trace_id, span_id, side, service, start, duration, error, mtls,
# peer, peer_type
HalfRow = tuple[bytes, bytes, int, str, int, int, bool, int, str, str]


@dataclass(frozen=True, slots=True)
class SpanFacts:
    """What derivation needs of one span, classified once at ingest."""

    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes
    links: tuple[tuple[bytes, bytes], ...]
    kind: int
    service: str
    start_unix_nano: int
    duration_ns: int
    error: bool
    mtls: int
    operation: str
    version: str
    peer: str
    peer_type: str
    is_database: bool


def span_facts(
    span: Any,
    service: str,
    attributes: Mapping[str, Any],
    resource: Mapping[str, Any],
    links: tuple[tuple[bytes, bytes], ...],
) -> SpanFacts | None:
    """Classify one decoded span; None for spans derivation ignores (INTERNAL, unset kind)."""
    kind = span.kind
    entry, exit_ = classify.is_entry(kind), classify.is_exit(kind)
    if not entry and not exit_:
        return None
    peer, peer_type = classify.virtual_peer(attributes) if exit_ else ("", "")
    return SpanFacts(
        trace_id=span.trace_id,
        span_id=span.span_id,
        parent_span_id=span.parent_span_id,
        links=links,
        kind=kind,
        service=classify.workload_service(service, attributes, resource),
        start_unix_nano=span.start_time_unix_nano,
        duration_ns=span.end_time_unix_nano - span.start_time_unix_nano,
        error=classify.is_error(kind, span.status.code, attributes),
        mtls=classify.mtls_state(attributes),
        operation=classify.operation(span.name, attributes) or span.name or "unknown",
        version=classify.version(attributes, resource) or UNKNOWN_VERSION,
        peer=peer,
        peer_type=peer_type,
        is_database=exit_ and classify.is_database_call(attributes),
    )


@dataclass(slots=True)
class Signals:
    """Requests, errors, latency and mTLS states of one rollup key."""

    requests: int = 0
    errors: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    mtls: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # unknown, plain, tls, mutual

    def add(self, duration_ns: int, error: bool, mtls: int, count: int = 1) -> None:
        """Count `count` requests of one duration."""
        self.requests += count
        self.errors += count if error else 0
        self.latency.add(duration_ns, count)
        self.mtls[mtls] += count

    def merge(self, other: Signals) -> None:
        """Add `other` into this one."""
        self.requests += other.requests
        self.errors += other.errors
        self.latency.merge(other.latency)
        for state, count in enumerate(other.mtls):
            self.mtls[state] += count

    def columns(self) -> tuple[int, int, list[int], list[int], int, int, int, int]:
        """The signal columns of the rollup tables, in their order."""
        keys, counts = self.latency.to_arrays()
        unknown, plaintext, tls, mutual = self.mtls
        return (self.requests, self.errors, keys, counts, mutual, tls, plaintext, unknown)


# rollup_inbox key: kind, minute, a, b, c, d, source_kind
RollupKey = tuple[str, int, str, str, str, str, str]


@dataclass(slots=True)
class BatchDerivation:
    """The halves and pre-aggregated signals of the spans one batch inserted."""

    rollups: dict[RollupKey, Signals] = field(default_factory=dict)
    halves: list[HalfRow] = field(default_factory=list)

    def add_all(self, facts: Iterable[SpanFacts]) -> BatchDerivation:
        """Derive from every span in `facts`; returns self."""
        for fact in facts:
            if classify.is_entry(fact.kind):
                self._entry(fact)
            else:
                self._exit(fact)
        return self

    def rollup_rows(self) -> list[tuple[Any, ...]]:
        """Rows for rollup_inbox, in its column order."""
        return [key + signals.columns() for key, signals in self.rollups.items()]

    def _signals(self, key: RollupKey) -> Signals:
        signals = self.rollups.get(key)
        if signals is None:
            signals = self.rollups[key] = Signals()
        return signals

    def _entry(self, f: SpanFacts) -> None:
        minute = f.start_unix_nano // NANOS_PER_MINUTE * 60  # the minute's start, unix s
        for operation, version in (("", ""), (f.operation, ""), ("", f.version)):
            key = ("service", minute, f.service, operation, version, "", "traces")
            self._signals(key).add(f.duration_ns, f.error, f.mtls)
        if f.parent_span_id:
            self.halves.append(self._half(f, f.trace_id, f.parent_span_id, SERVER_SIDE))
        elif f.kind == SPAN_KIND_SERVER and not f.links:
            key = ("edge", minute, USER, "client", f.service, "service", "traces")
            self._signals(key).add(f.duration_ns, f.error, f.mtls)
        for trace_id, span_id in f.links:  # asynchronous messaging: consumer -> producer
            if (trace_id, span_id) != (f.trace_id, f.parent_span_id):
                self.halves.append(self._half(f, trace_id, span_id, SERVER_SIDE))

    def _exit(self, f: SpanFacts) -> None:
        if f.is_database:
            minute = f.start_unix_nano // NANOS_PER_MINUTE * 60  # the minute's start, unix s
            key = ("edge", minute, f.service, "service", f.peer, f.peer_type, "traces")
            self._signals(key).add(f.duration_ns, f.error, f.mtls)
            return
        self.halves.append(self._half(f, f.trace_id, f.span_id, CLIENT_SIDE))

    @staticmethod
    def _half(f: SpanFacts, trace_id: bytes, span_id: bytes, side: int) -> HalfRow:
        return (
            trace_id,
            span_id,
            side,
            f.service,
            f.start_unix_nano,
            f.duration_ns,
            f.error,
            f.mtls,
            f.peer,
            f.peer_type,
        )
