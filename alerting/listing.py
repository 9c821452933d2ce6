"""What the alerting API and the alerts page show, read the same way so that they agree: the
rules and receivers in force (the rules file's, then the API's), receivers with the rules that
use them, alerts with the silences that match them, and the outbox with its attempts.

Webhook URLs are secrets: a receiver's `url` is only ever shown through `mask_url`, its
`hmac_secret` never (`signed` says whether it has one), and delivery errors are scrubbed of
every receiver URL before they are shown (delivery masks them already; this is the backstop).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncConnection

from alerting.model import Receiver, Rule
from alerting.notify.destinations import mask_url
from alerting.rules import RulesFileError, receiver_from_mapping, rule_from_mapping
from alerting.service import AlertingService
from alerting.store import definitions, outbox, silences, states

FILE = "file"
FROM_FILE = "defined in MESHLENS_RULES_FILE; edit the file"
_SECRET_PATH = 6
"""URL paths this long are scrubbed on their own too (shorter ones would mangle messages)."""


@dataclass(frozen=True, slots=True)
class ReceiverEntry:
    """A receiver as shown: its URL masked, whether it signs, and the rules that use it."""

    name: str
    type: str
    url: str
    signed: bool
    origin: str
    read_only: bool
    used_by: list[str]


async def all_rules(service: AlertingService | None, conn: AsyncConnection) -> list[Rule]:
    """File rules in file order, then API rules by name (a name in the file wins)."""
    if service is not None:
        rules = await service.rules(conn)
    else:  # an app without the alerting service (tests of the API alone): API rules only
        rules = []
        for _, definition in await definitions.rule_definitions(conn):
            try:
                rules.append(rule_from_mapping(definition))
            except RulesFileError:
                continue
    from_file = [rule for rule in rules if rule.origin == FILE]
    return from_file + sorted((r for r in rules if r.origin != FILE), key=lambda r: r.name)


async def all_receivers(
    service: AlertingService | None, conn: AsyncConnection
) -> dict[str, Receiver]:
    if service is not None:
        return await service.receivers(conn)
    found = {}
    for data in await definitions.receiver_definitions(conn):
        found[data["name"]] = receiver_from_mapping(data)
    return found


def receiver_entry(receiver: Receiver, rules: Iterable[Rule]) -> ReceiverEntry:
    return ReceiverEntry(
        name=receiver.name,
        type=receiver.type.value,
        url=mask_url(receiver.url),
        signed=bool(receiver.hmac_secret),
        origin="file" if receiver.origin == FILE else "api",
        read_only=receiver.origin == FILE,
        used_by=[rule.name for rule in rules if receiver.name in rule.receivers],
    )


async def receiver_entries(
    service: AlertingService | None, conn: AsyncConnection
) -> list[ReceiverEntry]:
    """File receivers first, then by name."""
    rules = await all_rules(service, conn)
    receivers = (await all_receivers(service, conn)).values()
    ordered = [r for r in receivers if r.origin == FILE]
    ordered += sorted((r for r in receivers if r.origin != FILE), key=lambda r: r.name)
    return [receiver_entry(receiver, rules) for receiver in ordered]


async def current_alerts(conn: AsyncConnection, now: dt.datetime) -> list[states.CurrentAlert]:
    """Firing first, then pending; newest first; each with the active silences matching it."""
    active = await silences.active_silences(conn, now)
    return [
        replace(alert, silenced_by=tuple(s.id for s in active if s.silences(alert.labels, now)))
        for alert in await states.current_alerts(conn)
    ]


async def notifications(
    conn: AsyncConnection, limit: int, receivers: Iterable[Receiver]
) -> list[outbox.OutboxEntry]:
    """The outbox, newest first, each with its attempts; errors scrubbed of receiver URLs."""
    secrets = [receiver.url for receiver in receivers]
    return [
        replace(
            entry,
            last_error=scrub(entry.last_error, secrets),
            delivery_attempts=tuple(
                replace(attempt, error=scrub(attempt.error, secrets))
                for attempt in entry.delivery_attempts
            ),
        )
        for entry in await outbox.listed_notifications(conn, limit)
    ]


def scrub(message: str | None, urls: Iterable[str]) -> str | None:
    """`message` with every receiver URL (and URL path) replaced by its masked form."""
    if not message:
        return message
    for url in urls:
        try:
            path = urlsplit(url).path
        except ValueError:
            path = ""
        secrets = {url, path} if len(path) >= _SECRET_PATH else {url}
        for secret in sorted(secrets, key=len, reverse=True):
            message = message.replace(secret, mask_url(url))
    return message
