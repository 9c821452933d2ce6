"""A test notification: what `POST /api/v1/receivers/{name}/test` sends (a firing
`MeshlensTest` alert, alone), in one attempt through the same guard and allowlist as every
notification."""

from __future__ import annotations

import datetime as dt
import uuid

import httpx

from alerting.grouping import group_key
from alerting.model import Alert, Notification, Receiver
from alerting.notify.delivery import Attempt, deliver
from alerting.notify.formats import render
from meshlens.allowlist import Allowlist


def test_notification(receiver: str, external_url: str, now: dt.datetime) -> Notification:
    """What `POST /receivers/{name}/test` sends: a firing `MeshlensTest` alert, alone."""
    labels = {"alertname": "MeshlensTest", "severity": "info"}
    base = external_url.rstrip("/")
    summary = "Test notification from meshlens"
    alert = Alert(
        labels=labels,
        annotations={"summary": summary, "description": f"Receiver {receiver} works."},
        status="firing",
        starts_at=now,
        ends_at=None,
        value=None,
        generator_url=f"{base}/alerts",
    )
    return Notification(
        receiver=receiver,
        group_key=group_key("MeshlensTest", {"alertname": "MeshlensTest"}),
        group_labels={"alertname": "MeshlensTest"},
        status="firing",
        alerts=(alert,),
        external_url=base,
        idempotency_key=f"meshlens-test-{uuid.uuid4().hex}",
    )


async def send_test(
    client: httpx.AsyncClient,
    receiver: Receiver,
    *,
    external_url: str,
    allowlist: Allowlist,
    now: dt.datetime,
) -> Attempt:
    """One attempt to send `receiver` its test notification."""
    notification = test_notification(receiver.name, external_url, now)
    message = render(receiver, notification, now=now)
    return await deliver(client, receiver, message, allowlist=allowlist)
