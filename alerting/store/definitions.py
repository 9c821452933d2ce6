"""Rules and receivers made through the API (`alert_rules`: each rule's definition in the rules
file's format; `alert_receivers`). Changes take a transaction-level advisory lock, so a rule
cannot start naming a receiver being deleted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

CONFIG_LOCK = 0x6D6C6366  # "mlcf": changes to rules and receivers, one at a time
_SAVE = {
    "rule": (
        "INSERT INTO alert_rules (name, definition) VALUES (:name, CAST(:definition AS jsonb))",
        "definition = EXCLUDED.definition",
    ),
    "receiver": (
        "INSERT INTO alert_receivers (name, type, url, hmac_secret)"
        " VALUES (:name, :type, :url, :secret)",
        "type = EXCLUDED.type, url = EXCLUDED.url, hmac_secret = EXCLUDED.hmac_secret",
    ),
}
_TABLES = {"rule": "alert_rules", "receiver": "alert_receivers"}


async def rule_definitions(conn: AsyncConnection) -> list[tuple[str, Mapping[str, object]]]:
    """Each API rule's name and definition (as `rule_to_mapping` wrote it)."""
    rows = await conn.execute(text("SELECT name, definition FROM alert_rules"))
    return [(name, definition) for name, definition in rows]


async def receiver_definitions(conn: AsyncConnection) -> list[dict[str, str]]:
    """Each API receiver as a JSON object (`name`, `type`, `url`, and `hmac_secret` when set)."""
    rows = await conn.execute(text("SELECT name, type, url, hmac_secret FROM alert_receivers"))
    found = []
    for name, kind, url, secret in rows:
        data = {"name": name, "type": kind, "url": url}
        found.append({**data, "hmac_secret": secret} if secret else data)
    return found


async def lock_changes(conn: AsyncConnection) -> None:
    """One change to rules and receivers at a time: held until the transaction ends."""
    await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CONFIG_LOCK})


async def save(
    conn: AsyncConnection, kind: str, row: Mapping[str, Any], replace: bool
) -> bool | None:
    """Insert a `rule` (`name`, `definition`) or `receiver` (`name`, `type`, `url`, `secret`)
    row, or with `replace` upsert it: True when it is new, False when replaced, None when it
    exists and `replace` is not given."""
    insert, update = _SAVE[kind]
    conflict = f"DO UPDATE SET {update}, updated_at = now()" if replace else "DO NOTHING"
    result = await conn.execute(
        text(f"{insert} ON CONFLICT (name) {conflict} RETURNING xmax = 0"), row
    )
    created = result.scalar_one_or_none()
    return None if created is None else bool(created)


async def delete(conn: AsyncConnection, kind: str, name: str) -> bool:
    """Delete the API `rule` or `receiver` named `name`; False when there is none."""
    query = text(f"DELETE FROM {_TABLES[kind]} WHERE name = :name RETURNING name")
    return (await conn.execute(query, {"name": name})).first() is not None
