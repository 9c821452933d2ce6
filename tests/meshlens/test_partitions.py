"""Daily partitions in a real database: created on demand, dropped for retention."""

from __future__ import annotations

import asyncio

import psycopg

from meshlens import partitions
from meshlens.database import Database
from meshlens.migrations import upgrade_to_head
from meshlens.timeunits import NANOS_PER_DAY

DAY = NANOS_PER_DAY


def _migrate(url: str) -> None:
    engine = Database(url).sync_engine()
    upgrade_to_head(engine)
    engine.dispose()


def test_create_and_drop_expired(database_url: str) -> None:
    _migrate(database_url)

    async def scenario() -> tuple[set[int], list[str], set[int]]:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            await partitions.create_partitions(conn, "spans", [20_000, 20_001, 20_002])
            await partitions.create_partitions(conn, "spans", [20_001, 20_003])  # idempotent
            created = await partitions.existing_days(conn, "spans")
            dropped = await partitions.drop_expired(conn, "spans", 20_002 * DAY)
            return created, dropped, await partitions.existing_days(conn, "spans")

    created, dropped, left = asyncio.run(scenario())
    assert created == {20_000, 20_001, 20_002, 20_003}
    assert dropped == ["spans_d20241004", "spans_d20241005"]
    assert left == {20_002, 20_003}


def test_rows_land_in_their_day(database_url: str) -> None:
    _migrate(database_url)

    async def scenario() -> None:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            await partitions.create_partitions(conn, "metric_points", [20_000])
            await conn.execute(
                "INSERT INTO metric_points (series_id, start_unix_nano, time_unix_nano, flags)"
                " VALUES (1, 0, %s, 0)",
                (20_000 * DAY + 5,),
            )
            await conn.commit()

    asyncio.run(scenario())
    with psycopg.connect(database_url) as conn:
        (row,) = conn.execute("SELECT tableoid::regclass::text FROM metric_points").fetchall()
    assert row == ("metric_points_d20241004",)


def test_writer_recreates_a_partition_dropped_under_it(database_url: str) -> None:
    from collector.decode import OtlpDecoder, TimeWindow
    from collector.writer import KnownRows, PostgresWriter, WriteBatch
    from tests.otlp_payloads import trace_request

    _migrate(database_url)
    batch = OtlpDecoder().traces(
        trace_request("p", spans=2).SerializeToString(), TimeWindow(1, 2**62)
    )
    day = partitions.day_of(batch.spans[0][9])

    async def scenario() -> None:
        writer = await PostgresWriter.connect(database_url, KnownRows())
        try:
            await writer.write(WriteBatch(batch.resources, {}, batch.spans[:1], []))
            async with await psycopg.AsyncConnection.connect(database_url) as conn:
                await partitions.drop_expired(conn, "spans", (day + 1) * DAY)
            await writer.write(WriteBatch(batch.resources, {}, batch.spans[1:], []))
        finally:
            await writer.close()

    asyncio.run(scenario())
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM spans").fetchone() == (1,)
