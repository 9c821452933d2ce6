"""The delivery loop: notifications due in the outbox are sent, retried with backoff until
delivered (at least once), or given up after a permanent failure or `GIVE_UP_AFTER`.

Rows are claimed with `FOR UPDATE SKIP LOCKED` (`alerting.store.outbox`), so several meshlens
processes share the outbox without sending one notification twice at the same time; every
attempt is recorded.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from alerting.model import Receiver
from alerting.notify.delivery import Attempt, Outcome, backoff, deliver
from alerting.notify.destinations import mask_url
from alerting.notify.formats import render
from alerting.store import outbox as outbox_store
from alerting.store.codec import notification_from_json
from meshlens.allowlist import Allowlist

log = logging.getLogger("meshlens.alerting")
BATCH = 20
GIVE_UP_AFTER = dt.timedelta(hours=24)
"""A notification still undelivered this long after it was made is marked failed."""


@dataclass(frozen=True, slots=True)
class DeliveryContext:
    """What delivering needs: the HTTP client (SSRF-guarded) and the allowlist."""

    client: httpx.AsyncClient
    allowlist: Allowlist
    timeout: float = 10.0


async def deliver_due(
    engine: AsyncEngine,
    receivers: Mapping[str, Receiver],
    context: DeliveryContext,
    now: dt.datetime,
) -> list[str]:
    """Attempt every notification due at `now` (a batch); returns the attempts' outcomes."""
    async with engine.begin() as conn:
        due = await outbox_store.claim_due(conn, now, BATCH)
        # the batch's requests go out together: a slow receiver delays the batch by its own
        # timeout, not by the sum of everyone's; the rows stay locked until their outcome is
        # recorded, and a crash in between leaves them due (at least once)
        attempts = await asyncio.gather(
            *(
                _attempt(receivers.get(one.receiver), one.receiver, one.notification, context, now)
                for one in due
            )
        )
        for one, attempt in zip(due, attempts, strict=True):
            await _record(conn, one.id, one.attempts + 1, attempt, now, one.created_at)
    return [attempt.outcome.value for attempt in attempts]


async def _attempt(
    receiver: Receiver | None,
    name: str,
    data: Mapping[str, object],
    context: DeliveryContext,
    now: dt.datetime,
) -> Attempt:
    if receiver is None:
        return Attempt(Outcome.FAILED, None, f"no receiver named {name!r}", None, 0.0)
    message = render(receiver, notification_from_json(data), now=now)
    attempt = await deliver(
        context.client, receiver, message, allowlist=context.allowlist, timeout=context.timeout
    )
    if attempt.outcome is not Outcome.DELIVERED:
        shown = attempt.error or attempt.status_code
        log.warning("notification to %s (%s): %s", name, mask_url(receiver.url), shown)
    return attempt


async def _record(
    conn: AsyncConnection,
    row_id: int,
    attempts: int,
    attempt: Attempt,
    now: dt.datetime,
    created_at: dt.datetime,
) -> None:
    state, next_at, error = "pending", now, attempt.error
    if attempt.outcome is Outcome.DELIVERED:
        state = "delivered"
    elif attempt.outcome is Outcome.FAILED:
        state = "failed"
    else:
        next_at = now + dt.timedelta(seconds=backoff(attempts, attempt.retry_after))
        if next_at - created_at > GIVE_UP_AFTER:
            state, error = "failed", f"gave up after {attempts} attempts: {attempt.error}"
    outcome, status = attempt.outcome.value, attempt.status_code
    ms = attempt.duration * 1000
    await outbox_store.record_attempt(conn, row_id, now, outcome, status, attempt.error, ms)
    await outbox_store.update_notification(
        conn, row_id, state=state, attempts=attempts, next_at=next_at, error=error, now=now
    )
