"""Deriver: pairs request halves in PostgreSQL and folds signals into the rollups.

Every few seconds, in one transaction (and in one meshlens process at a time, under an
advisory lock), it:
1. takes the halves ingest wrote since the last run and pairs them with each other and with
   the halves still waiting (`edge_halves`): a pair is one request on the edge client -> server;
2. expires halves that waited longer than the pairing window: a client half becomes a request
   to its virtual node (database, messaging, external), a server half is dropped (its service
   signals were counted at ingest);
3. folds all of it, and the signals writers aggregated (`rollup_inbox`), into the minute and
   hour rollups.
Pairing in the database survives restarts, sees halves written by any collector process, and
tolerates halves minutes apart in either order; each pair is counted once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection

from collector.derive import Signals
from meshlens.signals.histogram import LatencyHistogram, bucket_of

RESOLUTIONS = (60, 3600)
_LOCK_KEY = 0x6D6C64657269766  # "mlderiv"
_HALF = (
    "trace_id, span_id, side, service, start_unix_nano, duration_ns, error, mtls, peer, peer_type"
)
_PAIR = """
    SELECT c.trace_id, c.span_id, c.service AS source, s.service AS target, c.start_unix_nano,
           c.duration_ns, s.error, CASE WHEN s.mtls <> 0 THEN s.mtls ELSE c.mtls END AS mtls
"""
_STATEMENTS_SETUP = (
    "CREATE TEMP TABLE IF NOT EXISTS derive_new (LIKE edge_halves_inbox) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS derive_pairs (trace_id bytea, span_id bytea, source text,"
    " target text, start_unix_nano bigint, duration_ns bigint, error boolean, mtls smallint)"
    " ON COMMIT DELETE ROWS",
)
_STATEMENTS_PAIR = (
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
_INBOX = """
    DELETE FROM rollup_inbox RETURNING kind, minute_unix, a, b, c, d, source_kind, requests,
        errors, latency_keys, latency_counts, mtls_mutual, mtls_tls, mtls_plaintext, mtls_unknown
"""


@dataclass(slots=True)
class DeriveStats:
    """What one run did."""

    ran: bool = False
    pairs: int = 0
    expired_client_halves: int = 0
    expired_server_halves: int = 0
    inbox_rows: int = 0
    rollup_rows: int = 0


# (table, resolution, bucket, key...) -> signals; the key columns depend on the table
FoldKey = tuple[str, int, int, str, str, str, str]


@dataclass(slots=True)
class _Fold:
    signals: dict[FoldKey, Signals] = field(default_factory=dict)
    types: dict[FoldKey, tuple[str, str]] = field(default_factory=dict)

    def add(
        self,
        kind: str,
        minute: int,
        key: tuple[str, str, str, str],
        signals: Signals,
        source_kind: str,
    ) -> None:
        for resolution in RESOLUTIONS:
            bucket = minute // resolution * resolution
            if kind == "service":
                fold_key: FoldKey = ("service", resolution, bucket, key[0], key[1], key[2], "")
            else:
                fold_key = ("edge", resolution, bucket, key[0], key[2], source_kind, "")
                self.types[fold_key] = (key[1], key[3])
            target = self.signals.get(fold_key)
            if target is None:
                target = self.signals[fold_key] = Signals()
            target.merge(signals)


class Deriver:
    """Runs derivation passes on one connection; `run_once` is one transaction."""

    def __init__(self, pairing_window_seconds: float) -> None:
        self._window = pairing_window_seconds

    async def run_once(self, conn: AsyncConnection) -> DeriveStats:
        """One pass. Does nothing (ran=False) while another process holds the deriver lock."""
        stats = DeriveStats()
        async with conn.transaction():
            cursor = await conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (_LOCK_KEY,))
            row = await cursor.fetchone()
            if row is None or not row[0]:
                return stats
            stats.ran = True
            fold = _Fold()
            await self._pair(conn, fold, stats)
            await self._expire(conn, fold, stats)
            await self._take_inbox(conn, fold, stats)
            stats.rollup_rows = await _upsert(conn, fold)
        return stats

    async def _pair(self, conn: AsyncConnection, fold: _Fold, stats: DeriveStats) -> None:
        for statement in (*_STATEMENTS_SETUP, *_STATEMENTS_PAIR):
            await conn.execute(statement)
        cursor = await conn.execute(_PAIRED_EDGES)
        for minute, source, target, error, mtls, durations in await cursor.fetchall():
            signals = _signals(durations, error, mtls)
            stats.pairs += signals.requests
            fold.add("edge", minute, (source, "service", target, "service"), signals, "traces")

    async def _expire(self, conn: AsyncConnection, fold: _Fold, stats: DeriveStats) -> None:
        cursor = await conn.execute(_EXPIRED, (self._window,))
        for (
            side,
            minute,
            service,
            peer,
            peer_type,
            error,
            mtls,
            durations,
        ) in await cursor.fetchall():
            if side != 1:
                stats.expired_server_halves += len(durations)
                continue
            signals = _signals(durations, error, mtls)
            stats.expired_client_halves += signals.requests
            fold.add("edge", minute, (service, "service", peer, peer_type), signals, "traces")

    async def _take_inbox(self, conn: AsyncConnection, fold: _Fold, stats: DeriveStats) -> None:
        cursor = await conn.execute(_INBOX)
        for row in await cursor.fetchall():
            kind, minute, a, b, c, d, source_kind = row[:7]
            fold.add(kind, minute, (a, b, c, d), _signals_from_columns(row[7:]), source_kind)
            stats.inbox_rows += 1


def _signals(durations: Iterable[int], error: bool, mtls: int) -> Signals:
    signals = Signals()
    for duration in durations:
        signals.add(bucket_of(duration), error, mtls)
    return signals


def _signals_from_columns(columns: tuple[Any, ...]) -> Signals:
    requests, errors, keys, counts, mutual, tls, plaintext, unknown = columns
    return Signals(
        requests,
        errors,
        LatencyHistogram.from_arrays(keys, counts),
        [unknown, plaintext, tls, mutual],
    )


async def _upsert(conn: AsyncConnection, fold: _Fold) -> int:
    services = [k for k in fold.signals if k[0] == "service"]
    edges = [k for k in fold.signals if k[0] == "edge"]
    await _merge_existing(conn, fold, services, edges)
    async with conn.cursor() as cursor:
        await cursor.executemany(
            _UPSERT_SERVICE, [k[1:6] + fold.signals[k].columns() for k in services]
        )
        await cursor.executemany(_UPSERT_EDGE, [_edge_row(fold, k) for k in edges])
    return len(services) + len(edges)


def _edge_row(fold: _Fold, k: FoldKey) -> tuple[Any, ...]:
    source_type, target_type = fold.types[k]
    return (k[1], k[2], k[3], source_type, k[4], target_type, k[5], *fold.signals[k].columns())


async def _merge_existing(
    conn: AsyncConnection, fold: _Fold, services: list[FoldKey], edges: list[FoldKey]
) -> None:
    """Add the rows already in the rollups for the keys this run touches (locked till commit)."""
    if services:
        cursor = await conn.execute(_EXISTING_SERVICE, _columns_of(services, 1, 6))
        for row in await cursor.fetchall():
            key: FoldKey = ("service", row[0], row[1], row[2], row[3], row[4], "")
            fold.signals[key].merge(_signals_from_columns(row[5:]))
    if edges:
        cursor = await conn.execute(_EXISTING_EDGE, _columns_of(edges, 1, 6))
        for row in await cursor.fetchall():
            key = ("edge", row[0], row[1], row[2], row[3], row[4], "")
            fold.signals[key].merge(_signals_from_columns(row[5:]))


def _columns_of(keys: list[FoldKey], start: int, stop: int) -> list[list[Any]]:
    return [[key[n] for key in keys] for n in range(start, stop)]


_SIGNAL_NAMES = (
    "requests, errors, latency_keys, latency_counts, mtls_mutual, mtls_tls, mtls_plaintext,"
    " mtls_unknown"
)
_SIGNAL_UPDATES = ", ".join(
    f"{name} = EXCLUDED.{name}" for name in _SIGNAL_NAMES.replace(" ", "").split(",")
)
_EXISTING_SERVICE = f"""
    SELECT resolution, bucket_unix, service, operation, version, {_SIGNAL_NAMES}
    FROM service_rollups
    WHERE (resolution, bucket_unix, service, operation, version) IN (
        SELECT * FROM unnest(%s::int[], %s::bigint[], %s::text[], %s::text[], %s::text[]))
    FOR UPDATE
"""
_EXISTING_EDGE = f"""
    SELECT resolution, bucket_unix, source, target, source_kind, {_SIGNAL_NAMES}
    FROM edge_rollups
    WHERE (resolution, bucket_unix, source, target, source_kind) IN (
        SELECT * FROM unnest(%s::int[], %s::bigint[], %s::text[], %s::text[], %s::text[]))
    FOR UPDATE
"""
_UPSERT_SERVICE = f"""
    INSERT INTO service_rollups (resolution, bucket_unix, service, operation, version,
        {_SIGNAL_NAMES})
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (resolution, bucket_unix, service, operation, version)
    DO UPDATE SET {_SIGNAL_UPDATES}
"""
_UPSERT_EDGE = f"""
    INSERT INTO edge_rollups (resolution, bucket_unix, source, source_type, target, target_type,
        source_kind, {_SIGNAL_NAMES})
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (resolution, bucket_unix, source, target, source_kind)
    DO UPDATE SET {_SIGNAL_UPDATES}, source_type = EXCLUDED.source_type,
        target_type = EXCLUDED.target_type
"""
