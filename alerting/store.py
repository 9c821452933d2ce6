"""Alert states, history, groups, silences and the outbox in PostgreSQL (one round's reads and
writes, on the round's transaction)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from alerting.codec import alert_from_json, alert_json, notification_json
from alerting.grouping import GroupState
from alerting.lifecycle import AlertState
from alerting.model import Matcher, Notification, Silence

_STATE_COLUMNS = (
    "rule, fingerprint, labels, annotations, state, value, active_at, fired_at, last_true_at,"
    " evaluated_at, generator_url"
)


async def load_states(conn: AsyncConnection) -> dict[tuple[str, str], AlertState]:
    result = await conn.execute(text(f"SELECT {_STATE_COLUMNS} FROM alert_states"))
    return {(row[0], row[1]): AlertState(*row) for row in result}


async def save_states(
    conn: AsyncConnection, kept: Sequence[AlertState], dropped: Iterable[tuple[str, str]]
) -> None:
    """Upsert `kept` and delete `dropped` (rule, fingerprint) states."""
    await _delete_keys(conn, "alert_states", ("rule", "fingerprint"), dropped)
    if kept:
        await conn.execute(
            text(
                f"INSERT INTO alert_states ({_STATE_COLUMNS}) VALUES (:rule, :fingerprint,"
                " CAST(:labels AS jsonb), CAST(:annotations AS jsonb), :state, :value, :active_at,"
                " :fired_at, :last_true_at, :evaluated_at, :generator_url)"
                " ON CONFLICT (rule, fingerprint) DO UPDATE SET labels = EXCLUDED.labels,"
                " annotations = EXCLUDED.annotations, state = EXCLUDED.state,"
                " value = EXCLUDED.value, fired_at = EXCLUDED.fired_at,"
                " last_true_at = EXCLUDED.last_true_at, evaluated_at = EXCLUDED.evaluated_at,"
                " generator_url = EXCLUDED.generator_url"
            ),
            [_state_row(state) for state in kept],
        )


def _state_row(state: AlertState) -> dict[str, Any]:
    return {
        "rule": state.rule,
        "fingerprint": state.fingerprint,
        "labels": _json(state.labels),
        "annotations": _json(state.annotations),
        "state": state.state,
        "value": state.value,
        "active_at": state.active_at,
        "fired_at": state.fired_at,
        "last_true_at": state.last_true_at,
        "evaluated_at": state.evaluated_at,
        "generator_url": state.generator_url,
    }


async def add_history(
    conn: AsyncConnection, events: Sequence[tuple[AlertState, str]], at: dt.datetime
) -> None:
    """One history row per transition: the alert as it was, and its new state."""
    if not events:
        return
    await conn.execute(
        text(
            "INSERT INTO alert_history (rule, fingerprint, labels, state, value, at)"
            " VALUES (:rule, :fingerprint, CAST(:labels AS jsonb), :state, :value, :at)"
        ),
        [
            {
                "rule": state.rule,
                "fingerprint": state.fingerprint,
                "labels": _json(state.labels),
                "state": event,
                "value": state.value,
                "at": at,
            }
            for state, event in events
        ],
    )


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
            "matchers": _json(
                [{"name": m.name, "op": m.op, "value": m.value} for m in silence.matchers]
            ),
            "starts_at": silence.starts_at,
            "ends_at": silence.ends_at,
            "by": silence.created_by,
            "comment": silence.comment,
        },
    )


async def load_groups(conn: AsyncConnection) -> dict[tuple[str, str], GroupState]:
    result = await conn.execute(
        text(
            "SELECT receiver, group_key, group_labels, rule, created_at, notified_at,"
            " notified_hash, resolved, sequence FROM alert_groups"
        )
    )
    groups = {}
    for row in result:
        resolved = tuple(alert_from_json(alert) for alert in row[7])
        receiver, key, labels, rule, created_at, notified_at, notified_hash = row[:7]
        groups[(receiver, key)] = GroupState(
            receiver, key, labels, rule, created_at, notified_at, notified_hash, resolved, row[8]
        )
    return groups


async def save_groups(
    conn: AsyncConnection, kept: Sequence[GroupState], dropped: Iterable[tuple[str, str]]
) -> None:
    await _delete_keys(conn, "alert_groups", ("receiver", "group_key"), dropped)
    if kept:
        await conn.execute(
            text(
                "INSERT INTO alert_groups (receiver, group_key, group_labels, rule, created_at,"
                " notified_at, notified_hash, resolved, sequence) VALUES (:receiver, :group_key,"
                " CAST(:group_labels AS jsonb), :rule, :created_at, :notified_at,"
                " :notified_hash, CAST(:resolved AS jsonb), :sequence)"
                " ON CONFLICT (receiver, group_key) DO UPDATE SET"
                " notified_at = EXCLUDED.notified_at, notified_hash = EXCLUDED.notified_hash,"
                " resolved = EXCLUDED.resolved, sequence = EXCLUDED.sequence"
            ),
            [
                {
                    "receiver": group.receiver,
                    "group_key": group.group_key,
                    "group_labels": _json(group.group_labels),
                    "rule": group.rule,
                    "created_at": group.created_at,
                    "notified_at": group.notified_at,
                    "notified_hash": group.notified_hash,
                    "resolved": _json([alert_json(alert) for alert in group.resolved]),
                    "sequence": group.sequence,
                }
                for group in kept
            ],
        )


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
            "notification": _json(notification_json(notification)),
            "at": at,
        },
    )


async def _delete_keys(
    conn: AsyncConnection, table: str, columns: tuple[str, str], keys: Iterable[tuple[str, str]]
) -> None:
    """Delete the rows of `table` whose two text `columns` hold one of `keys` (one statement).
    `table` and `columns` are this module's constants, never input."""
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


def _json(value: object) -> str:
    return orjson.dumps(value).decode()
