"""What the store's modules share: JSON parameters, and deleting rows by pairs of keys."""

from __future__ import annotations

from collections.abc import Iterable

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


async def delete_keys(
    conn: AsyncConnection, table: str, columns: tuple[str, str], keys: Iterable[tuple[str, str]]
) -> None:
    """Delete the rows of `table` whose two text `columns` hold one of `keys` (one statement).
    `table` and `columns` are the store's constants, never input."""
    gone = list(keys)
    if not gone:
        return
    first, second = columns
    await conn.execute(
        text(
            f"DELETE FROM {table} WHERE ({first}, {second}) IN (SELECT * FROM unnest("
            "CAST(:firsts AS text[]), CAST(:seconds AS text[])))"
        ),
        {"firsts": [a for a, _ in gone], "seconds": [b for _, b in gone]},
    )


def to_json(value: object) -> str:
    """`value` as a JSON text parameter (for `CAST(:x AS jsonb)`)."""
    return orjson.dumps(value).decode()
