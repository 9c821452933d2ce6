"""Retention: what is past its time is dropped, and the days ahead are made ready.

Spans and metric points live in daily partitions: partitions past `span_retention_days` /
`point_retention_days` are dropped whole, and today's plus the next days' are created ahead
of the writers. Rollups past `rollup_retention_days` are deleted, and so are the cumulative
cursors of series silent for longer than points are kept (a series that returns starts anew).
Runs at start and every `MAINTENANCE_SECONDS` after.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from meshlens import partitions
from meshlens.timeunits import DAY, NANOS_PER_DAY, NANOS_PER_SECOND

if TYPE_CHECKING:
    from collector.writer import KnownRows
    from meshlens.database import Database
    from meshlens.settings import Settings

log = logging.getLogger("meshlens")
MAINTENANCE_SECONDS = 600
DAYS_AHEAD = 2
ROLLUP_TABLES = ("service_rollups", "edge_rollups", "saturation_rollups")


async def maintenance_loop(database: Database, settings: Settings, known: KnownRows) -> None:
    while True:
        await asyncio.sleep(MAINTENANCE_SECONDS)
        try:
            await maintain_partitions(database, settings, known)
        except (psycopg.Error, OSError) as exc:
            log.warning("partition maintenance failed (%s); will retry", exc)
        except Exception:
            log.exception("partition maintenance failed unexpectedly; will retry")


async def maintain_partitions(database: Database, settings: Settings, known: KnownRows) -> None:
    """Create today's and the next days' partitions; drop those past retention."""
    now = time.time_ns()
    today = partitions.day_of(now)
    retention = {
        "spans": settings.span_retention_days,
        "metric_points": settings.point_retention_days,
    }
    async with await psycopg.AsyncConnection.connect(database.url, autocommit=True) as conn:
        for table, days in retention.items():
            horizon = now - days * NANOS_PER_DAY
            for name in await partitions.drop_expired(conn, table, horizon):
                log.info("retention: dropped partition %s", name)
            wanted = range(today - days, today + DAYS_AHEAD + 1)
            await partitions.create_partitions(conn, table, wanted)
            known.days[table] = await partitions.existing_days(conn, table)
        horizon_unix = now // NANOS_PER_SECOND - settings.rollup_retention_days * DAY
        for rollups in ROLLUP_TABLES:
            await conn.execute(
                sql.SQL("DELETE FROM {} WHERE bucket_unix < %s").format(sql.Identifier(rollups)),
                (horizon_unix,),
            )
        # cursors of series silent for longer than points are kept: a new start if they return
        point_horizon = now - settings.point_retention_days * NANOS_PER_DAY
        await conn.execute("DELETE FROM series_cursors WHERE time_unix_nano < %s", (point_horizon,))
