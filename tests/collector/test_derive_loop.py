"""The derivation loop of `meshlens serve` survives a pass that raises: logged, counted, retried."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import CollectorRegistry
from psycopg import AsyncConnection

from collector.cardinality_budget import CardinalityBudget
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
