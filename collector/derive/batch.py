"""What one written batch of spans means, derived before its transaction commits.

After a batch is written, the facts (`span_facts.SpanFacts`) of the spans actually inserted
(resends are not) become:
- service signals (entry spans: SERVER, CONSUMER), aggregated per minute for the service total,
  per operation and per version, ready to fold into rollups;
- edges known at once: a root SERVER span is a request from the virtual client `user`, a
  CLIENT span that names a database is a request to that database node, and a client and
  server half that arrive in the same batch are paired here already (`pairing`);
- halves for pairing in PostgreSQL (`halves`, `pairing`): the remaining CLIENT/PRODUCER spans,
  SERVER/CONSUMER spans with a parent (or with links, for asynchronous messaging) whose client
  half was not in the batch, and for a proxy's spans the halves that make a sidecar and its app
  one hop (a sidecar's entry span under its own id, an Envoy client span under its parent's).
An old Istio gateway's single root CLIENT span is also its own request, from `user`.
This runs on the ingest path, so it is written for speed: facts are tuples, and a client span's
virtual peer is only worked out if it stays unpaired.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from collector.derive import classify
from collector.derive.halves import (
    CLIENT_SIDE,
    PROXY_CLIENT_SIDE,
    PROXY_ENTRY_SIDE,
    PROXY_LEG,
    SERVER_SIDE,
    HalfRow,
    half,
    paired_mtls,
)
from collector.derive.span_facts import ENVOY, SpanFacts
from meshlens.schema import SIGNAL_COLUMNS
from meshlens.signals.histogram import LatencyHistogram
from meshlens.timeunits import MINUTE, NANOS_PER_MINUTE

SPAN_KIND_SERVER = 2
USER = "user"
ROLLUP_INBOX_COLUMNS = (
    "kind",
    "minute_unix",
    "a",
    "b",
    "c",
    "d",
    "source_kind",
    *SIGNAL_COLUMNS,
)
"""rollup_inbox's columns. `a`-`d` hold the rollup key, whose meaning depends on `kind`: for
'service' the service, operation ('' for all), version ('' for all) and ''; for 'edge' the
source, its node type, the target and its node type."""


@dataclass(slots=True)
class RollupSignals:
    """Requests, errors, latency and mTLS states of one rollup key."""

    requests: int = 0
    errors: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    mtls: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # unknown, plain, tls, mutual
    unknown_rate: int = 0  # of the requests, those from spans sampled at an unknown rate

    def add(
        self, latency_key: int, error: bool, mtls: int, count: int = 1, unknown: bool = False
    ) -> None:
        """Count `count` requests (a sampled span's adjusted count) in bucket `latency_key`; a
        negative count takes back requests counted before (they moved to another row): counts
        may go below zero here, and are whole again once merged with the row that counted
        them."""
        self.requests += count
        if error:
            self.errors += count
        counts = self.latency.counts
        counts[latency_key] = counts.get(latency_key, 0) + count
        self.mtls[mtls] += count
        if unknown:
            self.unknown_rate += count

    def merge(self, other: RollupSignals) -> None:
        """Add `other` into this one."""
        self.requests += other.requests
        self.errors += other.errors
        self.latency.merge(other.latency)
        for state, count in enumerate(other.mtls):
            self.mtls[state] += count
        self.unknown_rate += other.unknown_rate

    def is_empty(self) -> bool:
        """Whether nothing is left counted (all taken back)."""
        return (
            self.requests <= 0
            and self.errors <= 0
            and self.unknown_rate <= 0
            and all(count <= 0 for count in self.mtls)
            and all(count <= 0 for count in self.latency.counts.values())
        )

    def columns(self) -> tuple[int, int, list[int], list[int], int, int, int, int, int]:
        """The signal columns of the rollup tables, in their order (`SIGNAL_COLUMNS`)."""
        keys, counts = self.latency.to_arrays()
        if any(count <= 0 for count in counts):  # a take-back whose count was never stored
            kept = [(key, count) for key, count in zip(keys, counts, strict=True) if count > 0]
            keys, counts = [key for key, _ in kept], [count for _, count in kept]
        unknown, plaintext, tls, mutual = (max(count, 0) for count in self.mtls)
        requests, errors = max(self.requests, 0), max(self.errors, 0)
        unknown_rate = max(self.unknown_rate, 0)
        return (requests, errors, keys, counts, mutual, tls, plaintext, unknown, unknown_rate)


# rollup_inbox key: kind, minute (unix s), a, b, c, d, source_kind
RollupKey = tuple[str, int, str, str, str, str, str]


@dataclass(slots=True)
class BatchDerivation:
    """The halves and pre-aggregated signals of the spans one batch inserted."""

    rollups: dict[RollupKey, RollupSignals] = field(default_factory=dict)
    halves: list[HalfRow] = field(default_factory=list)
    _calls: dict[tuple[int, str, str, str], RollupSignals] = field(default_factory=dict)

    def add_all(self, facts: Iterable[SpanFacts]) -> BatchDerivation:
        """Derive from every span in `facts`; returns self."""
        clients: dict[tuple[bytes, bytes], SpanFacts] = {}
        entries = []
        for fact in facts:
            if fact.kind in classify.ENTRY_KINDS:
                entries.append(fact)
            elif fact.is_database:
                self._edge(fact, fact.service, "service", *classify.virtual_peer(fact.attributes))
            else:
                clients[(fact.trace_id, fact.span_id)] = fact
                if fact.gateway and not fact.parent_span_id:  # an old gateway's only span
                    self._count(fact)
                    self._edge(fact, USER, "client", fact.service, "service")
        paired: list[tuple[SpanFacts, str]] = []
        for fact in entries:
            self._entry(fact, clients, paired)
        for client in clients.values():  # not paired in this batch: PostgreSQL pairs it
            if client.proxy_leg:  # a proxy's request to its own app: never a node of its own
                peer, peer_type = "", PROXY_LEG
            else:
                peer, peer_type = classify.virtual_peer(client.attributes)
            via = client.parent_span_id if client.proxy_leg or client.proxy == ENVOY else b""
            trace_id, span_id = client.trace_id, client.span_id
            self.halves.append(
                half(client, trace_id, span_id, CLIENT_SIDE, peer, peer_type, via or None)
            )
            if via and not client.proxy_leg and not _is_gateway_egress(client):
                self.halves.append(half(client, trace_id, via, PROXY_CLIENT_SIDE, via=span_id))
        for client, target in paired:  # where a sidecar's call counted, for its app's span
            if client.proxy == ENVOY and client.parent_span_id and not _is_gateway_egress(client):
                self.halves.append(
                    half(
                        client,
                        client.trace_id,
                        client.parent_span_id,
                        PROXY_CLIENT_SIDE,
                        target,
                        "service",
                        client.span_id,
                        counted=True,
                    )
                )
        self._spread_service_signals()
        return self

    def _spread_service_signals(self) -> None:
        """Each (service, operation, version) counts for the service, its operation, its version."""
        for (minute, service, operation, version), signals in self._calls.items():
            for op, ver in (("", ""), (operation, ""), ("", version)):
                self._signals(("service", minute, service, op, ver, "", "traces")).merge(signals)
        self._calls.clear()

    def merge(self, other: BatchDerivation) -> BatchDerivation:
        """Add another batch's derivation into this one; returns self."""
        self.halves.extend(other.halves)
        for key, signals in other.rollups.items():
            self._signals(key).merge(signals)
        return self

    def rollup_rows(self) -> list[tuple[Any, ...]]:
        """Rows for rollup_inbox, in its column order."""
        return [key + signals.columns() for key, signals in self.rollups.items()]

    def _signals(self, key: RollupKey) -> RollupSignals:
        signals = self.rollups.get(key)
        if signals is None:
            signals = self.rollups[key] = RollupSignals()
        return signals

    def _edge(
        self,
        f: SpanFacts,
        source: str,
        source_type: str,
        target: str,
        target_type: str,
        error: bool | None = None,
        mtls: int | None = None,
    ) -> None:
        minute = f.start_unix_nano // NANOS_PER_MINUTE * MINUTE
        key = ("edge", minute, source, source_type, target, target_type, "traces")
        self._signals(key).add(
            f.latency_key,
            f.error if error is None else error,
            f.mtls if mtls is None else mtls,
            f.weight,
            f.unknown_rate,
        )

    def _count(self, f: SpanFacts) -> None:
        """Count `f` as a request into its service (`_spread_service_signals` spreads it)."""
        minute = f.start_unix_nano // NANOS_PER_MINUTE * MINUTE
        call = (minute, f.service, f.operation, f.version)
        signals = self._calls.get(call)
        if signals is None:
            signals = self._calls[call] = RollupSignals()
        signals.add(f.latency_key, f.error, f.mtls, f.weight, f.unknown_rate)

    def _entry(
        self,
        f: SpanFacts,
        clients: dict[tuple[bytes, bytes], SpanFacts],
        paired: list[tuple[SpanFacts, str]],
    ) -> None:
        service = f.service
        if not f.proxy_leg:  # an app's request to its own proxy is no request into the app
            self._count(f)
            if f.proxy and not f.gateway:  # its app's own span of this request may follow
                self.halves.append(half(f, f.trace_id, f.span_id, PROXY_ENTRY_SIDE))
        callers = [(f.trace_id, f.parent_span_id)] if f.parent_span_id else []
        callers.extend(link for link in f.links if link not in callers)
        if not callers and f.kind == SPAN_KIND_SERVER and not f.proxy_leg:
            self._edge(f, USER, "client", service, "service")
        for trace_id, span_id in callers:
            client = clients.pop((trace_id, span_id), None)
            if client is None:
                leg = PROXY_LEG if f.proxy_leg else ""
                self.halves.append(half(f, trace_id, span_id, SERVER_SIDE, "", leg))
            elif client.service != service:  # a request on the edge client -> server
                state = paired_mtls(f.mtls, client.mtls)
                self._edge(client, client.service, "service", service, "service", f.error, state)
                paired.append((client, service))
            elif client.proxy_leg and client.parent_span_id and not f.proxy_leg:  # the app's
                self.halves.append(half(f, trace_id, client.parent_span_id, SERVER_SIDE))


def _is_gateway_egress(f: SpanFacts) -> bool:
    """A gateway's upstream span (Istio >= 1.28), `router <cluster> egress`, the child of the
    gateway's own SERVER span (Envoy source/common/router/upstream_request.cc): no app span of
    the same call can come, so it leaves no proxy-client half."""
    return f.gateway and f.operation.startswith("router ") and f.operation.endswith(" egress")
