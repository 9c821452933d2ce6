"""Pairing: a request on an edge is a client half and a server half with the same span id.

The vocabulary is that of Tempo's service-graph store: a half is *upserted* until its other
half arrives; the two are then *paired* (one request client -> server); a half that waits
longer than the pairing window *expires*. Everything about pairing lives here:
- at ingest, `half` makes the row of a half that its batch could not pair (`BatchDerivation`
  pairs the halves that arrive together), and `paired_mtls` is the rule for a pair's mTLS state;
- in the deriver's transaction, `PairingStore.pair` upserts the halves ingest queued
  (`edge_halves_inbox`) into the waiting ones (`edge_halves`) and pairs them, in either order
  and across collector processes, each pair counted once; `PairingStore.expire` ends the halves
  that waited too long: a client half becomes a request to its virtual node (database,
  messaging, external), a server half is dropped (its service signals were counted at ingest).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from psycopg import AsyncConnection

from collector.derive.span_facts import SpanFacts

CLIENT_SIDE, SERVER_SIDE = 1, 2
PROXY_LEG = "proxy"
"""The peer type of a proxy's request to its own app (a Linkerd inbound CLIENT span): it pairs
with the app's SERVER span when there is one, and expires without a node when there is not."""

# edge_halves_inbox row: trace_id, span_id, side, service, start, duration, error, mtls,
# peer, peer_type
HalfRow = tuple[bytes, bytes, int, str, int, int, bool, int, str, str]
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
)

_HALF = ", ".join(HALF_COLUMNS)
_PAIR = """
    SELECT c.trace_id, c.span_id, c.service AS source, s.service AS target, c.start_unix_nano,
           c.duration_ns, s.error, CASE WHEN s.mtls <> 0 THEN s.mtls ELSE c.mtls END AS mtls
"""
"""A pair: the client's start and duration (what the caller experienced), the server's error,
and the mTLS state by `paired_mtls` (the server's when it knows, else the client's)."""
_SETUP = (
    "CREATE TEMP TABLE IF NOT EXISTS derive_new (LIKE edge_halves_inbox) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS derive_pairs (trace_id bytea, span_id bytea, source text,"
    " target text, start_unix_nano bigint, duration_ns bigint, error boolean, mtls smallint)"
    " ON COMMIT DELETE ROWS",
)
_UPSERT_AND_PAIR = (
    "WITH moved AS (DELETE FROM edge_halves_inbox RETURNING *) INSERT INTO derive_new"
    " SELECT * FROM moved",
    "ANALYZE derive_new",
    f"""INSERT INTO derive_pairs SELECT DISTINCT ON (trace_id, span_id) * FROM (
        {_PAIR} FROM derive_new c JOIN derive_new s
            ON s.trace_id = c.trace_id AND s.span_id = c.span_id AND s.side = 2 WHERE c.side = 1
        UNION ALL
        {_PAIR} FROM derive_new c JOIN edge_halves s
            ON s.trace_id = c.trace_id AND s.span_id = c.span_id AND s.side = 2 WHERE c.side = 1
        UNION ALL
        {_PAIR} FROM edge_halves c JOIN derive_new s
            ON c.trace_id = s.trace_id AND c.span_id = s.span_id AND c.side = 1 WHERE s.side = 2
    ) AS pairs""",
    "DELETE FROM edge_halves h USING derive_pairs p"
    " WHERE h.trace_id = p.trace_id AND h.span_id = p.span_id",
    f"INSERT INTO edge_halves ({_HALF}) SELECT {_HALF} FROM derive_new n WHERE NOT EXISTS"
    " (SELECT 1 FROM derive_pairs p WHERE p.trace_id = n.trace_id AND p.span_id = n.span_id)"
    " ON CONFLICT DO NOTHING",
)
_PAIRED_EDGES = """
    SELECT start_unix_nano / 60000000000 * 60, source, target, error, mtls, array_agg(duration_ns)
    FROM derive_pairs WHERE source <> target GROUP BY 1, 2, 3, 4, 5
"""
_EXPIRED = """
    WITH gone AS (
        DELETE FROM edge_halves WHERE arrived_at < now() - make_interval(secs => %s)
        RETURNING side, start_unix_nano, service, peer, peer_type, error, mtls, duration_ns
    )
    SELECT side, start_unix_nano / 60000000000 * 60, service, peer, peer_type, error, mtls,
           array_agg(duration_ns)
    FROM gone GROUP BY 1, 2, 3, 4, 5, 6, 7
"""


def paired_mtls(server: int, client: int) -> int:
    """The mTLS state of a paired request: the server side's when it knows one, else the
    client side's (the same rule as `_PAIR`'s CASE)."""
    return server if server else client


def half(
    f: SpanFacts, trace_id: bytes, span_id: bytes, side: int, peer: str, peer_type: str
) -> HalfRow:
    """The row of a half waiting for its other half under (`trace_id`, `span_id`)."""
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
    )


class PairedEdges(NamedTuple):
    """Requests on one service edge in one minute, paired in this pass."""

    minute_unix: int
    source: str
    target: str
    error: bool
    mtls: int
    durations: list[int]


class ExpiredHalves(NamedTuple):
    """Halves of one side, service and peer that expired unpaired, per minute."""

    side: int
    minute_unix: int
    service: str
    peer: str
    peer_type: str
    error: bool
    mtls: int
    durations: list[int]


class PairingStore:
    """The halves waiting in PostgreSQL; used inside the deriver's transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def pair(self) -> Iterable[PairedEdges]:
        """Upsert the queued halves and pair them; the pairs grouped per minute and edge
        (a pair within one service is not an edge and is left out)."""
        for statement in (*_SETUP, *_UPSERT_AND_PAIR):
            await self._conn.execute(statement)
        cursor = await self._conn.execute(_PAIRED_EDGES)
        return [PairedEdges(*row) for row in await cursor.fetchall()]

    async def expire(self, window_seconds: float) -> Iterable[ExpiredHalves]:
        """Remove the halves older than the pairing window; what they were, grouped."""
        cursor = await self._conn.execute(_EXPIRED, (window_seconds,))
        return [ExpiredHalves(*row) for row in await cursor.fetchall()]
