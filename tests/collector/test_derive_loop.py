"""The derivation loop of `meshlens serve` survives a pass that raises: logged, counted, retried."""

from __future__ import annotations

import asyncio
import logging
import os
import time

import psycopg
import pytest
from prometheus_client import CollectorRegistry
from psycopg import AsyncConnection

from collector.cardinality_budget import CardinalityBudget
from collector.derive.halves import CLIENT_SIDE, HALF_COLUMNS
from collector.derive.loop import Deriver, DeriveStats, derive_loop
from collector.metrics import IngestMetrics
from meshlens.database import Database
from meshlens.migrations import upgrade_to_head
from meshlens.serve import cardinality_caps
from meshlens.settings import Settings


class FailsOnce(Deriver):
    """A deriver whose first pass hits a bug (a plain exception, not a database error)."""

    def __init__(self) -> None:
        super().__init__(pairing_window_seconds=60)
        self.passes = 0

    async def run_once(self, conn: AsyncConnection) -> DeriveStats:
        self.passes += 1
        if self.passes == 1:
            raise RuntimeError("a bug in a derivation pass")
        return await super().run_once(conn)


def test_a_pass_that_raises_is_logged_counted_and_retried(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    database = Database(database_url)
    engine = database.sync_engine()
    upgrade_to_head(engine)
    engine.dispose()
    settings = Settings(derive_interval_seconds=0.05)
    registry = CollectorRegistry()
    metrics = IngestMetrics(registry)
    deriver = FailsOnce()

    async def run() -> None:
        budget = CardinalityBudget(cardinality_caps(settings), registry)
        loop = asyncio.create_task(derive_loop(database, settings, metrics, budget, deriver))
        for _ in range(200):
            if deriver.passes >= 3 or loop.done():
                break
            await asyncio.sleep(0.05)
        loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop

    with caplog.at_level(logging.ERROR, logger="meshlens"):
        asyncio.run(run())
    assert deriver.passes >= 3  # it went on after the failure
    failures = registry.get_sample_value("meshlens_derive_failures_total", {"reason": "unexpected"})
    assert failures == 1
    assert "derivation failed unexpectedly" in caplog.text
    assert "a bug in a derivation pass" in caplog.text  # the traceback is in the log


def _client_half(service: str, peer: str) -> tuple[object, ...]:
    row = {
        "trace_id": os.urandom(16), "span_id": os.urandom(8), "side": CLIENT_SIDE,
        "service": service, "start_unix_nano": time.time_ns(), "duration_ns": 5_000_000,
        "error": False, "mtls": 0, "peer": peer, "peer_type": "external", "operation": "",
        "version": "", "via_span_id": None, "counted": False, "weight": 1,
        "unknown_rate": False,
    }  # fmt: skip
    return tuple(row[column] for column in HALF_COLUMNS)


def test_a_call_waits_for_its_server_half_from_its_acknowledgement_not_from_a_pass(
    database_url: str,
) -> None:
    """A half keeps the time ingest committed it (`edge_halves_inbox.arrived_at`): a call
    queued 20 s ago, while the deriver was busy, counts in the first pass that takes it; one
    queued now waits."""
    database = Database(database_url)
    engine = database.sync_engine()
    upgrade_to_head(engine)
    engine.dispose()
    columns = ", ".join(HALF_COLUMNS)

    async def stamped() -> DeriveStats:
        async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
            rows = [_client_half("web", "db.example"), _client_half("web", "api.example")]
            statement = f"COPY edge_halves_inbox ({columns}) FROM STDIN"
            async with conn.cursor().copy(statement) as copy:
                for row in rows:
                    await copy.write_row(row)
            await conn.execute(  # ingest committed it 20 s ago
                "UPDATE edge_halves_inbox SET arrived_at = now() - interval '20 seconds'"
                " WHERE peer = 'db.example'"
            )
            return await Deriver(300, count_after_seconds=8).run_once(conn)

    stats = asyncio.run(stamped())
    assert stats.unpaired_counted == 1
    with psycopg.connect(database_url) as conn:
        waiting = conn.execute("SELECT peer, counted FROM edge_halves ORDER BY peer").fetchall()
        edges = conn.execute(
            "SELECT target, requests FROM edge_rollups WHERE resolution = 60 AND source = 'web'"
        ).fetchall()
    assert waiting == [("api.example", False), ("db.example", True)]
    assert edges == [("db.example", 1)]
