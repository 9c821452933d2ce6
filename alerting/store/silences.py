"""Silences (`alert_silences`): the active ones an evaluation round honours, and the listing,
making and expiring of them for the API and the alerts page."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from alerting.model import Matcher, Silence, SilenceState
from alerting.store.rows import to_json

_COLUMNS = "id, matchers, starts_at, ends_at, created_by, comment, created_at"


@dataclass(frozen=True, slots=True)
class SilenceEntry:
    """A silence as listed: its fields, when it was made, and its state at the listing's time."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: dt.datetime
    ends_at: dt.datetime
    created_by: str
    comment: str
    created_at: dt.datetime | None
    state: SilenceState


async def active_silences(conn: AsyncConnection, at: dt.datetime) -> list[Silence]:
    result = await conn.execute(
        text(
            "SELECT id, matchers, starts_at, ends_at, created_by, comment FROM alert_silences"
            " WHERE starts_at <= :at AND ends_at > :at"
        ),
        {"at": at},
    )
    return [silence_from_row(row) for row in result]


def silence_from_row(row: Sequence[Any]) -> Silence:
    matchers = tuple(Matcher(m["name"], m["op"], m["value"]) for m in row[1])
    return Silence(str(row[0]), matchers, row[2], row[3], row[4], row[5])


async def insert_silence(conn: AsyncConnection, silence: Silence) -> None:
    await conn.execute(
        text(
            "INSERT INTO alert_silences (id, matchers, starts_at, ends_at, created_by, comment)"
            " VALUES (:id, CAST(:matchers AS jsonb), :starts_at, :ends_at, :by, :comment)"
        ),
        {
            "id": uuid.UUID(silence.id),
            "matchers": to_json(
                [{"name": m.name, "op": m.op, "value": m.value} for m in silence.matchers]
            ),
            "starts_at": silence.starts_at,
            "ends_at": silence.ends_at,
            "by": silence.created_by,
            "comment": silence.comment,
        },
    )


async def expire_silence(conn: AsyncConnection, silence_id: str, now: dt.datetime) -> None:
    """End the silence at `now` (a silence not started yet starts and ends at `now`)."""
    await conn.execute(
        text(
            "UPDATE alert_silences SET ends_at = least(ends_at, :now),"
            " starts_at = least(starts_at, :now) WHERE id = CAST(:id AS uuid)"
        ),
        {"now": now, "id": silence_id},
    )


async def listed_silences(
    conn: AsyncConnection, now: dt.datetime, *, current_only: bool = False, limit: int = 1000
) -> list[SilenceEntry]:
    """Newest first; `current_only`: the active and pending ones."""
    where = "WHERE ends_at > :now" if current_only else ""
    rows = await conn.execute(
        text(
            f"SELECT {_COLUMNS} FROM alert_silences {where}"
            " ORDER BY created_at DESC, starts_at DESC, id LIMIT :limit"
        ),
        {"now": now, "limit": limit},
    )
    return [_entry(row, now) for row in rows]


async def one_silence(
    conn: AsyncConnection, silence_id: str, now: dt.datetime
) -> SilenceEntry | None:
    query = text(f"SELECT {_COLUMNS} FROM alert_silences WHERE id = CAST(:id AS uuid)")
    row = (await conn.execute(query, {"id": silence_id})).first()
    return None if row is None else _entry(row, now)


def _entry(row: Sequence[Any], now: dt.datetime) -> SilenceEntry:
    silence = silence_from_row(row)
    return SilenceEntry(
        silence.id,
        silence.matchers,
        silence.starts_at,
        silence.ends_at,
        silence.created_by,
        silence.comment,
        row[6],
        silence.state_at(now),
    )
