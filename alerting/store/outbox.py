"""The outbox (`notification_outbox`): notifications enqueued by the evaluation rounds, claimed
when due by the delivery loop (`FOR UPDATE SKIP LOCKED`), with every attempt recorded
(`delivery_attempts`); and the listing of both for the API and the alerts page."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from alerting.model import Notification
from alerting.store.codec import notification_json
from alerting.store.rows import to_json

_DUE = text(
    """
SELECT id, receiver, notification, attempts, created_at FROM notification_outbox
WHERE state = 'pending' AND next_attempt_at <= :now
ORDER BY next_attempt_at, id LIMIT :limit FOR UPDATE SKIP LOCKED
"""
)


@dataclass(frozen=True, slots=True)
class DueNotification:
    """An outbox row due for an attempt (locked until the claiming transaction ends)."""

    id: int
    receiver: str
    notification: Mapping[str, object]
    """As `codec.notification_json` stored it."""
    attempts: int
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class AttemptEntry:
    """One delivery attempt as listed."""

    at: dt.datetime
    outcome: str
    status_code: int | None
    error: str | None
    duration_ms: float


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A notification in the outbox as listed, with every attempt, oldest first."""

    id: int
    receiver: str
    status: str
    state: str
    attempts: int
    next_attempt_at: dt.datetime | None
    """Pending notifications only."""
    last_error: str | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None
    group_key: str
    alert_count: int
    delivery_attempts: tuple[AttemptEntry, ...] = ()


async def enqueue(conn: AsyncConnection, notification: Notification, at: dt.datetime) -> None:
    """Put a notification in the outbox, due now (a repeated key is already there)."""
    await conn.execute(
        text(
            "INSERT INTO notification_outbox (idempotency_key, receiver, group_key, status,"
            " notification, next_attempt_at, created_at) VALUES (:key, :receiver, :group_key,"
            " :status, CAST(:notification AS jsonb), :at, :at)"
            " ON CONFLICT (idempotency_key) DO NOTHING"
        ),
        {
            "key": notification.idempotency_key,
            "receiver": notification.receiver,
            "group_key": notification.group_key,
            "status": notification.status,
            "notification": to_json(notification_json(notification)),
            "at": at,
        },
    )


async def claim_due(conn: AsyncConnection, now: dt.datetime, limit: int) -> list[DueNotification]:
    """Up to `limit` notifications due at `now`, locked for this transaction (rows another
    process holds are skipped)."""
    rows = (await conn.execute(_DUE, {"now": now, "limit": limit})).all()
    return [DueNotification(*row) for row in rows]


async def record_attempt(
    conn: AsyncConnection,
    outbox_id: int,
    at: dt.datetime,
    outcome: str,
    status_code: int | None,
    error: str | None,
    duration_ms: float,
) -> None:
    await conn.execute(
        text(
            "INSERT INTO delivery_attempts (outbox_id, at, outcome, status_code, error,"
            " duration_ms) VALUES (:id, :at, :outcome, :status, :error, :ms)"
        ),
        {
            "id": outbox_id,
            "at": at,
            "outcome": outcome,
            "status": status_code,
            "error": error,
            "ms": duration_ms,
        },
    )


async def update_notification(
    conn: AsyncConnection,
    outbox_id: int,
    *,
    state: str,
    attempts: int,
    next_at: dt.datetime,
    error: str | None,
    now: dt.datetime,
) -> None:
    """Its new `state` (pending, delivered or failed) after `attempts` attempts; a delivered
    one is stamped `delivered_at = now`."""
    await conn.execute(
        text(
            "UPDATE notification_outbox SET state = :state, attempts = :attempts,"
            " next_attempt_at = :next_at, last_error = :error,"
            " delivered_at = CASE WHEN :state = 'delivered' THEN CAST(:now AS timestamptz) END"
            " WHERE id = :id"
        ),
        {
            "state": state,
            "attempts": attempts,
            "next_at": next_at,
            "error": error,
            "now": now,
            "id": outbox_id,
        },
    )


async def listed_notifications(conn: AsyncConnection, limit: int) -> list[OutboxEntry]:
    """The last `limit` notifications, newest first, each with its attempts (errors as they
    were recorded: `alerting.listing` scrubs them of receiver URLs)."""
    rows = await conn.execute(
        text(
            "SELECT id, receiver, status, state, attempts, CASE WHEN state = 'pending'"
            " THEN next_attempt_at END AS next_attempt_at, last_error, created_at,"
            " delivered_at, group_key,"
            " coalesce(jsonb_array_length(notification -> 'alerts'), 0) AS alert_count"
            " FROM notification_outbox ORDER BY created_at DESC, id DESC LIMIT :limit"
        ),
        {"limit": limit},
    )
    found = [OutboxEntry(*row) for row in rows]
    attempts = await conn.execute(
        text(
            "SELECT outbox_id, at, outcome, status_code, error, duration_ms"
            " FROM delivery_attempts WHERE outbox_id = ANY(:ids) ORDER BY at, id"
        ),
        {"ids": [entry.id for entry in found]},
    )
    by_id: dict[int, list[AttemptEntry]] = defaultdict(list)
    for outbox_id, *fields in attempts:
        by_id[outbox_id].append(AttemptEntry(*fields))
    return [replace(entry, delivery_attempts=tuple(by_id[entry.id])) for entry in found]
