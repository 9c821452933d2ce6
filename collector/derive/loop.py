"""The derive loop: every few seconds, one pass that turns what ingest queued into rollups.

One pass is one transaction, run by one meshlens process at a time (an advisory lock):
1. pairs the request halves ingest queued with each other and with those still waiting, and
   expires those that waited longer than the pairing window (`pairing`);
2. takes the signals writers aggregated at ingest (`rollup_inbox`, see `batch`);
3. takes the points of Istio / Linkerd series writers queued, as deltas per series
   (`metric_fold`: edges with source_kind 'mesh-metrics');
4. folds all of it into the minute, 10-minute and hour rollups (`rollup_fold`), and the
   utilization maxima into `saturation_rollups`, every name within the cardinality budget
   (`cardinality`: what is over a cap counts under `meshlens.overflow`; what it admits is saved
   with the pass).
Pairing in the database survives restarts, sees halves written by any collector process, and
tolerates halves minutes apart in either order; each pair is counted once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import psycopg
from psycopg import AsyncConnection

from collector.derive.batch import ROLLUP_INBOX_COLUMNS
from collector.derive.cardinality import DimensionBudget, Kind
from collector.derive.cardinality_store import KnownDimensions
from collector.derive.halves import CLIENT_SIDE, PROXY_LEG, SERVER_SIDE
from collector.derive.metric_fold import fold_mesh_points, fold_saturation
from collector.derive.pairing import EdgeRequests, PairingStore
from collector.derive.pairing_fold import (
    add_edge,
    fold_gateway_hop,
    fold_latency_move,
    fold_nest_move,
    fold_nest_taken_back,
)
from collector.derive.rollup_fold import RollupFold, signals_from_columns

if TYPE_CHECKING:
    from collector.cardinality_budget import CardinalityBudget
    from collector.metrics import IngestMetrics
    from meshlens.database import Database
    from meshlens.settings import Settings

log = logging.getLogger("meshlens")
_LOCK_KEY = 0x6D6C64657269766  # "mlderiv"
_INBOX = f"DELETE FROM rollup_inbox RETURNING {', '.join(ROLLUP_INBOX_COLUMNS)}"


@dataclass(slots=True)
class DeriveStats:
    """What one run did."""

    ran: bool = False
    pairs: int = 0
    moved: int = 0  # counted on a virtual node, then moved by a late server half
    hops: int = 0  # an app's client span and its sidecar's: one call
    nests: int = 0  # a sidecar's entry span and its app's: one request
    unpaired_counted: int = 0  # calls without a server half, counted on their virtual node
    expired_server_halves: int = 0
    expired_proxy_legs: int = 0
    inbox_rows: int = 0
    rollup_rows: int = 0
    metric_points: Counter[str] = field(default_factory=Counter)  # by cumulative.Outcome
    saturation_rows: int = 0
    folded: Counter[Kind] = field(default_factory=Counter)  # requests under the overflow


class Deriver:
    """Runs derivation passes on one connection; `run_once` is one transaction."""

    def __init__(
        self,
        pairing_window_seconds: float,
        budget: DimensionBudget | None = None,
        count_after_seconds: float = 8.0,
    ) -> None:
        self._window = pairing_window_seconds
        self._count_after = count_after_seconds
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
            await self._pair(PairingStore(conn), fold, stats)
            await self._take_inbox(conn, fold, stats)
            stats.metric_points = await fold_mesh_points(conn, fold)
            stats.rollup_rows = await fold.write(conn)
            stats.saturation_rows = await fold_saturation(conn, budget)
            if self._known is not None:
                await self._known.save_pending(conn)
        return stats

    async def _pair(self, store: PairingStore, fold: RollupFold, stats: DeriveStats) -> None:
        found = await store.run(self._count_after, self._window)
        for pair in found.paired:
            stats.pairs += add_edge(fold, pair)
        for early in found.moved:  # counted on a virtual node, then its server half came
            stats.moved += add_edge(fold, early, sign=-1)
        for hop in found.gateway_hops:
            fold_gateway_hop(fold, hop)
        for move in found.latency_moves:
            fold_latency_move(fold, move)
        stats.hops += found.hops
        for taken in found.nests_taken_back:
            fold_nest_taken_back(fold, taken)
        for nest_move in found.nest_moves:
            fold_nest_move(fold, nest_move)
        stats.nests += found.nests
        for alone in found.counted:
            stats.unpaired_counted += add_edge(fold, alone)
        for gone in found.expired:
            if gone.side == SERVER_SIDE:
                stats.expired_server_halves += len(gone.durations)
            elif gone.side != CLIENT_SIDE or gone.counted:
                continue  # a proxy's own half, or a call counted already
            elif gone.peer_type == PROXY_LEG:  # a proxy's request to its own, uninstrumented app
                stats.expired_proxy_legs += len(gone.durations)
            else:  # the window is shorter than the wait before counting: count it now
                edge = EdgeRequests(gone.minute_unix, gone.service, gone.peer, gone.peer_type,
                                    gone.error, gone.mtls, gone.unknown_rate, gone.durations,
                                    gone.weights)  # fmt: skip
                stats.unpaired_counted += add_edge(fold, edge)

    async def _take_inbox(
        self, conn: AsyncConnection, fold: RollupFold, stats: DeriveStats
    ) -> None:
        cursor = await conn.execute(_INBOX)
        for row in await cursor.fetchall():
            kind, minute, a, b, c, d, source_kind = row[:7]
            fold.add(kind, minute, (a, b, c, d), signals_from_columns(row[7:]), source_kind)
            stats.inbox_rows += 1


async def derive_loop(
    database: Database,
    settings: Settings,
    metrics: IngestMetrics,
    budget: CardinalityBudget,
    deriver: Deriver | None = None,
) -> None:
    """Start a pass every `derive_interval_seconds` (at once when the last one took longer:
    under load, the time a pass takes is not added to the wait of what the next one derives),
    reconnecting after database errors.

    Whatever a pass raises is logged and counted, and the pass retried: derivation never stops
    silently (what a failed pass took is rolled back with its transaction).
    """
    deriver = deriver or Deriver(
        settings.pairing_window_seconds,
        budget.dimensions,
        settings.unpaired_count_after_seconds,
    )
    interval_seconds = settings.derive_interval_seconds
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(database.url) as conn:
                while True:
                    started = time.perf_counter()
                    stats = await deriver.run_once(conn)
                    took = time.perf_counter() - started
                    metrics.observe_derivation(stats, took)
                    budget.observe_derivation(stats.folded)
                    await asyncio.sleep(max(0.0, interval_seconds - took))
        except (psycopg.Error, OSError) as exc:
            metrics.derive_failures.labels("database").inc()
            log.warning("derivation failed (%s); retrying", exc)
        except Exception:
            metrics.derive_failures.labels("unexpected").inc()
            log.exception("derivation failed unexpectedly; retrying")
        await asyncio.sleep(interval_seconds)
