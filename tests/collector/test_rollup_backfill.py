"""Migration 0004 builds the 10-minute rollups from the minute rows stored before it."""

from __future__ import annotations

import psycopg
from alembic.config import Config

from alembic import command
from harness.postgres import DatabaseFactory
from meshlens.database import Database
from meshlens.migrations import script_location, upgrade_to_head
from tests import rollup_scenario as scenario

_TABLES = {
    "service_rollups": "resolution, bucket_unix, service, operation, version",
    "edge_rollups": "resolution, bucket_unix, source, target, source_kind",
    "saturation_rollups": "resolution, bucket_unix, service",
}


def _rows(url: str) -> dict[str, list[tuple[object, ...]]]:
    with psycopg.connect(url) as conn:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY {key}").fetchall()
            for table, key in _TABLES.items()
        }


def test_ten_minute_rows_from_the_minute_rows_of_an_older_deriver(
    databases: DatabaseFactory,
) -> None:
    requests, readings = scenario.requests(), scenario.readings()
    before = databases.create()  # rollups written before 0004: minute and hour rows only
    engine = Database(before).sync_engine()
    try:
        config = Config()
        config.set_main_option("script_location", str(script_location()))
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0003")
        scenario.insert(before, requests, readings, resolutions=(60, 3600))
        upgrade_to_head(engine)
    finally:
        engine.dispose()
    now = databases.create()  # written by today's deriver
    engine = Database(now).sync_engine()
    try:
        upgrade_to_head(engine)
    finally:
        engine.dispose()
    scenario.insert(now, requests, readings)
    backfilled, expected = _rows(before), _rows(now)
    for table in _TABLES:
        assert any(row[0] == 600 for row in expected[table]), table
        assert backfilled[table] == expected[table], table
