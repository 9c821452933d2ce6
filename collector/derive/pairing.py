"""Pairing: a request on an edge is a client half and a server half with the same span id.

The vocabulary is that of Tempo's service-graph store: a half (`halves`) is *upserted* until its
other half arrives; the two are then *paired* (one request client -> server); a half that
waits longer than the pairing window *expires*. Around that, the shapes real proxies give:
- a sidecar in front of an instrumented app makes every request two entry spans and every
  call two client spans of the same service: the pass makes each pair of them one hop
  (*nests* for the entry spans, *hops* for the client spans), counted once;
- a call without a server half (a database, a broker, an API outside the mesh, a call that
  failed before reaching its server) counts on the edge to its virtual node once it has waited
  `unpaired_count_after_seconds`, not only when the window ends; a server half that arrives
  later, even minutes later and written by another process, *moves* it to the right edge.
At ingest, `BatchDerivation` pairs the halves that arrive together and queues the others; in
the deriver's transaction `PairingStore.run` matches them with each other and with those still
waiting (`pairing_sql`), across collector processes and restarts, each match counted once.
What a pass found is a `PairingPass`: what to add to the rollups, and what to take back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from psycopg import AsyncConnection

from collector.derive import pairing_sql as sql


class EdgeRequests(NamedTuple):
    """Requests on one edge in one minute, with one error flag and mTLS state."""

    minute_unix: int
    source: str
    target: str
    target_type: str
    error: bool
    mtls: int
    unknown_rate: bool  # sampled at a rate nobody declared
    durations: list[int]
    weights: list[int]  # the adjusted count of each duration's span


class GatewayHop(NamedTuple):
    """A caller's client span (`service`, ...) and an old gateway's one CLIENT span under it."""

    minute_unix: int
    service: str
    duration_ns: int
    mtls: int
    proxy_minute_unix: int
    proxy_service: str
    proxy_duration_ns: int
    proxy_error: bool
    proxy_mtls: int
    proxy_operation: str
    proxy_version: str
    weight: int
    unknown_rate: bool
    proxy_weight: int
    proxy_unknown: bool


class ServiceRequests(NamedTuple):
    """Requests into one service, operation and version in one minute."""

    minute_unix: int
    service: str
    operation: str
    version: str
    error: bool
    mtls: int
    unknown_rate: bool
    durations: list[int]
    weights: list[int]


class NestMove(NamedTuple):
    """Apps' requests that take their sidecar's version, mTLS state or unknown sampling rate."""

    minute_unix: int
    service: str
    operation: str
    version: str
    merged_version: str
    mtls: int
    merged_mtls: int
    error: bool
    unknown_rate: bool
    merged_unknown: bool
    durations: list[int]
    weights: list[int]


class LatencyMove(NamedTuple):
    """Calls on one edge counted with their sidecar's durations: the apps' replace them."""

    minute_unix: int
    source: str
    target: str
    target_type: str
    counted_durations: list[int]
    app_durations: list[int]
    weights: list[int]


class ExpiredHalves(NamedTuple):
    """Halves of one side, service and peer that ended unpaired, per minute."""

    side: int
    counted: bool
    minute_unix: int
    service: str
    peer: str
    peer_type: str
    error: bool
    mtls: int
    unknown_rate: bool
    durations: list[int]
    weights: list[int]


@dataclass(slots=True)
class PairingPass:
    """What one pass found."""

    paired: list[EdgeRequests] = field(default_factory=list)
    moved: list[EdgeRequests] = field(default_factory=list)  # counted early: take back
    hops: int = 0
    gateway_hops: list[GatewayHop] = field(default_factory=list)
    latency_moves: list[LatencyMove] = field(default_factory=list)
    nests: int = 0
    nests_taken_back: list[ServiceRequests] = field(default_factory=list)
    nest_moves: list[NestMove] = field(default_factory=list)
    counted: list[EdgeRequests] = field(default_factory=list)  # waited long enough alone
    expired: list[ExpiredHalves] = field(default_factory=list)


class PairingStore:
    """The halves waiting in PostgreSQL; used inside the deriver's transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def run(self, count_after_seconds: float, window_seconds: float) -> PairingPass:
        """Take the queued halves, match them, count the calls that waited long enough
        alone, and end the halves older than the pairing window."""
        found = PairingPass()
        await self._execute(*sql.SETUP, *sql.TAKE_INBOX)
        found.hops = await self._execute(*sql.HOPS)
        if found.hops:
            found.moved = [EdgeRequests(*row) for row in await self._rows(sql.HOPS_TAKEN_BACK)]
            gateways = await self._rows(sql.HOPS_OF_GATEWAYS)
            found.gateway_hops = [GatewayHop(*row) for row in gateways]
            latency = await self._rows(sql.HOPS_LATENCY)
            found.latency_moves = [LatencyMove(*row) for row in latency]
        await self._execute(*sql.PAIRS)
        found.paired = [
            EdgeRequests(minute, source, target, "service", *signals)
            for minute, source, target, *signals in await self._rows(sql.PAIRED_EDGES)
        ]
        found.moved += [EdgeRequests(*row) for row in await self._rows(sql.MOVED)]
        found.nests = await self._execute(*sql.NESTS)
        if found.nests:
            taken = await self._rows(sql.NESTS_TAKEN_BACK)
            found.nests_taken_back = [ServiceRequests(*row) for row in taken]
            found.nest_moves = [NestMove(*row) for row in await self._rows(sql.NESTS_MOVED)]
        await self._execute(*sql.SETTLE)
        await self._conn.execute(sql.KNOWN_SERVICES, (count_after_seconds,))
        due = await self._rows(sql.COUNT_DUE, (count_after_seconds,))
        found.counted = [EdgeRequests(*row) for row in due]
        expired = await self._rows(sql.EXPIRED, (window_seconds,))
        found.expired = [ExpiredHalves(*row) for row in expired]
        return found

    async def _execute(self, *statements: str) -> int:
        """Run `statements`; the rows the first one touched."""
        counts = [(await self._conn.execute(statement)).rowcount for statement in statements]
        return counts[0]

    async def _rows(self, query: str, params: tuple[float, ...] | None = None) -> list[Any]:
        cursor = await self._conn.execute(query, params)
        return list(await cursor.fetchall())
