"""Halves: what a span leaves waiting in PostgreSQL for the span it belongs with.

A half is a row keyed by (trace id, span id, side) in `edge_halves`; ingest queues it in
`edge_halves_inbox` (`batch.BatchDerivation` makes the rows) and the deriver matches it
(`pairing`). The sides:
1. CLIENT: a CLIENT/PRODUCER span under its own id, with the virtual node it calls (`peer`,
   `peer_type`) should no server half come;
2. SERVER: a SERVER/CONSUMER span under its parent's id (or a link's, for messaging), with its
   service signal key (`operation`, `version`);
3. PROXY ENTRY: a sidecar's SERVER span (Envoy inbound, linkerd2-proxy inbound) under its own
   id: when the app's SERVER span turns up as its child, the two are one request into the
   service, counted once;
4. PROXY CLIENT: an Envoy CLIENT span under its parent's id (`via_span_id`: its own): when the
   parent is its app's CLIENT span, the two are one call, counted once with the app's duration.
A proxy's CLIENT half carries its parent in `via_span_id`.
"""

from __future__ import annotations

from collector.derive.span_facts import SpanFacts

CLIENT_SIDE, SERVER_SIDE, PROXY_ENTRY_SIDE, PROXY_CLIENT_SIDE = 1, 2, 3, 4
PROXY_LEG = "proxy"
"""The peer type of a proxy's request to its own app (a Linkerd inbound CLIENT span): it pairs
with the app's SERVER span when there is one, and expires without a node when there is not."""

# edge_halves_inbox row: trace_id, span_id, side, service, start, duration, error, mtls,
# peer, peer_type, operation, version, via_span_id, counted, weight, unknown_rate
HalfRow = tuple[
    bytes, bytes, int, str, int, int, bool, int, str, str, str, str, bytes | None, bool, int, bool
]
HALF_COLUMNS = (
    "trace_id",
    "span_id",
    "side",
    "service",
    "start_unix_nano",
    "duration_ns",
    "error",
    "mtls",
    "peer",
    "peer_type",
    "operation",
    "version",
    "via_span_id",
    "counted",
    "weight",
    "unknown_rate",
)


def paired_mtls(server: int, client: int) -> int:
    """The mTLS state of a paired request: the server side's when it knows one, else the
    client side's (the same rule as the pairing SQL's CASE)."""
    return server if server else client


def half(
    f: SpanFacts,
    trace_id: bytes,
    span_id: bytes,
    side: int,
    peer: str = "",
    peer_type: str = "",
    via: bytes | None = None,
    counted: bool = False,
) -> HalfRow:
    """The row of a half of `f` waiting under (`trace_id`, `span_id`) on `side`."""
    keyed = side != CLIENT_SIDE  # entry halves, and a proxy client's (a gateway's request)
    return (
        trace_id,
        span_id,
        side,
        f.service,
        f.start_unix_nano,
        f.duration_ns,
        f.error,
        f.mtls,
        peer,
        peer_type,
        f.operation if keyed else "",
        f.version if keyed else "",
        via,
        counted,
        f.weight,
        f.unknown_rate,
    )
