"""Daily partitions of the raw tables: created ahead and on demand, dropped for retention.

Partitions are named `<table>_dYYYYMMDD` and cover one UTC day of the table's `*_unix_nano`
key. Creation takes a transaction-scoped advisory lock so concurrent writers (and several
meshlens processes) never race on the same DDL.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from psycopg import AsyncConnection, sql

from meshlens.schema import PARTITIONED_TABLES

# NANOS_PER_DAY re-exported: collector.writer and collector.decode.pool still read it here
from meshlens.timeunits import NANOS_PER_DAY as NANOS_PER_DAY

_LOCK_KEY = 0x6D6573686C656E73  # "meshlens"
_SUFFIX = re.compile(r"_d(\d{8})$")


def day_of(unix_nano: int) -> int:
    """The UTC day number (days since the epoch) that `unix_nano` falls in."""
    return unix_nano // NANOS_PER_DAY


def partition_name(table: str, day: int) -> str:
    """`spans_d20261126` for the day number of 2026-11-26."""
    date = dt.date(1970, 1, 1) + dt.timedelta(days=day)
    return f"{table}_d{date:%Y%m%d}"


def day_from_name(name: str) -> int | None:
    """The day number a partition name stands for, or None for names not ours."""
    match = _SUFFIX.search(name)
    if match is None:
        return None
    date = dt.datetime.strptime(match.group(1), "%Y%m%d").date()
    return (date - dt.date(1970, 1, 1)).days


async def existing_days(conn: AsyncConnection, table: str) -> set[int]:
    """The days that already have a partition of `table`."""
    cursor = await conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass",
        (table,),
    )
    names = [row[0] for row in await cursor.fetchall()]
    return {day for day in map(day_from_name, names) if day is not None}


async def create_partitions(conn: AsyncConnection, table: str, days: Iterable[int]) -> None:
    """Create the partitions of `table` for `days` that do not exist yet, in one transaction."""
    if table not in PARTITIONED_TABLES:
        raise ValueError(f"{table} is not a partitioned table")
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        have = await existing_days(conn, table)
        for day in sorted(set(days) - have):
            await conn.execute(
                sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                    sql.Identifier(partition_name(table, day)),
                    sql.Identifier(table),
                    sql.Literal(day * NANOS_PER_DAY),
                    sql.Literal((day + 1) * NANOS_PER_DAY),
                )
            )


async def drop_expired(conn: AsyncConnection, table: str, before_unix_nano: int) -> list[str]:
    """Drop the partitions of `table` that end at or before `before_unix_nano`."""
    dropped = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        for day in sorted(await existing_days(conn, table)):
            if (day + 1) * NANOS_PER_DAY <= before_unix_nano:
                name = partition_name(table, day)
                await conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
                dropped.append(name)
    return dropped
