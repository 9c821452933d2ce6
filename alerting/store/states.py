"""Alert states (`alert_states`: one row per pending or firing alert, kept by the evaluation
rounds) and their transitions (`alert_history`), and what the API and the alerts page read of
them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from alerting.lifecycle import AlertState
from alerting.store.rows import delete_keys, to_json

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
    await delete_keys(conn, "alert_states", ("rule", "fingerprint"), dropped)
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
        "labels": to_json(state.labels),
        "annotations": to_json(state.annotations),
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
                "labels": to_json(state.labels),
                "state": event,
                "value": state.value,
                "at": at,
            }
            for state, event in events
        ],
    )


# --- what is read of them ----------------------------------------------------------------------


@dataclass
class AlertCounts:
    """A rule's alerts pending (condition true, `for` running) and firing."""

    pending: int = 0
    firing: int = 0


@dataclass(frozen=True, slots=True)
class CurrentAlert:
    """A pending or firing alert as it is stored; `silenced_by` (ids of the active silences
    matching it) is filled by `alerting.listing`, which matches the silences."""

    rule: str
    fingerprint: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    state: str
    value: float | None
    active_at: dt.datetime
    fired_at: dt.datetime | None
    generator_url: str
    silenced_by: tuple[str, ...] = ()

    @property
    def silenced(self) -> bool:
        return bool(self.silenced_by)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One transition of an alert."""

    id: int
    rule: str
    fingerprint: str
    labels: Mapping[str, str]
    state: str
    value: float | None
    at: dt.datetime


async def alert_counts(conn: AsyncConnection) -> dict[str, AlertCounts]:
    """Each rule's alerts pending and firing (rules without alerts are absent)."""
    rows = await conn.execute(
        text("SELECT rule, state, count(*) FROM alert_states GROUP BY rule, state")
    )
    counts: dict[str, AlertCounts] = {}
    for rule, state, count in rows:
        found = counts.setdefault(rule, AlertCounts(pending=0, firing=0))
        if state in ("pending", "firing"):
            setattr(found, state, int(count))
    return counts


async def firing_counts(conn: AsyncConnection) -> dict[str, int]:
    """Alerts firing and pending now."""
    row = (
        await conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE state = 'firing'),"
                " count(*) FILTER (WHERE state = 'pending') FROM alert_states"
            )
        )
    ).one()
    return {"firing": int(row[0]), "pending": int(row[1])}


async def current_alerts(conn: AsyncConnection) -> list[CurrentAlert]:
    """Firing first, then pending; newest first."""
    rows = await conn.execute(
        text(
            "SELECT rule, fingerprint, labels, annotations, state, value, active_at, fired_at,"
            " generator_url FROM alert_states ORDER BY state = 'firing' DESC,"
            " coalesce(fired_at, active_at) DESC, rule, fingerprint"
        )
    )
    return [CurrentAlert(*row) for row in rows]


async def history(conn: AsyncConnection, limit: int) -> list[HistoryEntry]:
    """The last `limit` transitions, newest first."""
    rows = await conn.execute(
        text(
            "SELECT id, rule, fingerprint, labels, state, value, at FROM alert_history"
            " ORDER BY at DESC, id DESC LIMIT :limit"
        ),
        {"limit": limit},
    )
    return [HistoryEntry(*row) for row in rows]
