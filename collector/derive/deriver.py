"""Deriver: pairs request halves in PostgreSQL and folds signals into the rollups.

Every few seconds, in one transaction (and in one meshlens process at a time, under an
advisory lock), it:
1. takes the halves ingest wrote since the last run and pairs them with each other and with
   the halves still waiting (`edge_halves`): a pair is one request on the edge client -> server;
2. expires halves that waited longer than the pairing window: a client half becomes a request
   to its virtual node (database, messaging, external), a server half is dropped (its service
   signals were counted at ingest);
3. takes the points of Istio / Linkerd series writers queued, as deltas per series
   (`collector.derive.metric_fold`: edges with source_kind 'mesh-metrics');
4. folds all of it, and the signals writers aggregated (`rollup_inbox`), into the minute,
   10-minute and hour rollups (`collector.derive.rollup_fold`), and the utilization maxima into
   `saturation_rollups`, every name within the cardinality budget (`collector.cardinality`:
   what is over a cap counts under `meshlens.overflow`; what it admits is saved with the pass).
Pairing in the database survives restarts, sees halves written by any collector process, and
tolerates halves minutes apart in either order; each pair is counted once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from psycopg import AsyncConnection

from collector.cardinality import DimensionBudget, Kind
from collector.cardinality_store import KnownDimensions
from collector.derive.metric_fold import fold_mesh_points, fold_saturation
from collector.derive.rollup_fold import RollupFold, signals_from_columns
from collector.derive.spans import Signals
from meshlens.signals.histogram import bucket_of

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
    metric_points: Counter[str] = field(default_factory=Counter)  # by cumulative.Outcome
    saturation_rows: int = 0
    folded: Counter[Kind] = field(default_factory=Counter)  # requests under the overflow


class Deriver:
    """Runs derivation passes on one connection; `run_once` is one transaction."""

    def __init__(
        self, pairing_window_seconds: float, budget: DimensionBudget | None = None
    ) -> None:
        self._window = pairing_window_seconds
        self._known = KnownDimensions(budget) if budget is not None else None

    async def run_once(self, conn: AsyncConnection) -> DeriveStats:
        """One pass. Does nothing (ran=False) while another process holds the deriver lock."""
        if self._known is None:
            return await self._run(conn)
        try:
            stats = await self._run(conn)
        except BaseException:
            self._known.budget.rollback()
            raise
        stats.folded = self._known.budget.commit()[1]
        return stats

    async def _run(self, conn: AsyncConnection) -> DeriveStats:
        stats = DeriveStats()
        budget = self._known.budget if self._known is not None else None
        async with conn.transaction():
            cursor = await conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (_LOCK_KEY,))
            row = await cursor.fetchone()
            if row is None or not row[0]:
                return stats
            stats.ran = True
            if self._known is not None:
                await self._known.catch_up(conn)
            fold = RollupFold(budget=budget)
            await self._pair(conn, fold, stats)
            await self._expire(conn, fold, stats)
            await self._take_inbox(conn, fold, stats)
            stats.metric_points = await fold_mesh_points(conn, fold)
            stats.rollup_rows = await fold.write(conn)
            stats.saturation_rows = await fold_saturation(conn, budget)
            if self._known is not None:
                await self._known.save_pending(conn)
        return stats

    async def _pair(self, conn: AsyncConnection, fold: RollupFold, stats: DeriveStats) -> None:
        for statement in (*_STATEMENTS_SETUP, *_STATEMENTS_PAIR):
            await conn.execute(statement)
        cursor = await conn.execute(_PAIRED_EDGES)
        for minute, source, target, error, mtls, durations in await cursor.fetchall():
            signals = _signals(durations, error, mtls)
            stats.pairs += signals.requests
            fold.add("edge", minute, (source, "service", target, "service"), signals, "traces")

    async def _expire(self, conn: AsyncConnection, fold: RollupFold, stats: DeriveStats) -> None:
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

    async def _take_inbox(
        self, conn: AsyncConnection, fold: RollupFold, stats: DeriveStats
    ) -> None:
        cursor = await conn.execute(_INBOX)
        for row in await cursor.fetchall():
            kind, minute, a, b, c, d, source_kind = row[:7]
            fold.add(kind, minute, (a, b, c, d), signals_from_columns(row[7:]), source_kind)
            stats.inbox_rows += 1


def _signals(durations: Iterable[int], error: bool, mtls: int) -> Signals:
    signals = Signals()
    for duration in durations:
        signals.add(bucket_of(duration), error, mtls)
    return signals
