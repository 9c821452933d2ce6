"""Notification groups (`alert_groups`): per receiver and group key, when it was last notified,
with what, and the resolved alerts still to tell."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from alerting.grouping import GroupState
from alerting.store.codec import alert_from_json, alert_json
from alerting.store.rows import delete_keys, to_json


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
    await delete_keys(conn, "alert_groups", ("receiver", "group_key"), dropped)
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
                    "group_labels": to_json(group.group_labels),
                    "rule": group.rule,
                    "created_at": group.created_at,
                    "notified_at": group.notified_at,
                    "notified_hash": group.notified_hash,
                    "resolved": to_json([alert_json(alert) for alert in group.resolved]),
                    "sequence": group.sequence,
                }
                for group in kept
            ],
        )
