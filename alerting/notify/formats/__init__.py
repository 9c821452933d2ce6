"""Each receiver type's native message, built by pure functions (time is an argument): one
module per format, as Alertmanager has one package per integration.

`render(receiver, notification, now=...)` returns a `Message` (JSON body, content type, headers).
Every message carries `Idempotency-Key: <notification.idempotency_key>`, the same on every retry.

- `alertmanager`: the `webhook` type, Alertmanager's webhook payload version "4", signed with
  the receiver's `hmac_secret` when it has one;
- `slack`, `mattermost`, `discord`, `teams`: chat messages, built from what `chat` says about
  each alert and made safe by it (mentions defused, markup escaped, texts cut to the limits);
- `message`: the `Message` they make.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import orjson

from alerting.model import Notification, Receiver, ReceiverType
from alerting.notify.formats.alertmanager import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    ZERO_TIME,
    rfc3339,
    sign,
    verify_signature,
    webhook,
)
from alerting.notify.formats.discord import discord
from alerting.notify.formats.mattermost import mattermost
from alerting.notify.formats.message import JSON, Builder, Message
from alerting.notify.formats.slack import slack
from alerting.notify.formats.teams import teams

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "ZERO_TIME",
    "Message",
    "render",
    "rfc3339",
    "verify_signature",
]

_BUILDERS: Mapping[ReceiverType, Builder] = {
    ReceiverType.WEBHOOK: webhook,
    ReceiverType.SLACK: slack,
    ReceiverType.MATTERMOST: mattermost,
    ReceiverType.DISCORD: discord,
    ReceiverType.TEAMS: teams,
}


def render(receiver: Receiver, notification: Notification, *, now: dt.datetime) -> Message:
    body = orjson.dumps(_BUILDERS[receiver.type](notification, now))
    headers = {"Idempotency-Key": notification.idempotency_key}
    if receiver.type is ReceiverType.WEBHOOK and receiver.hmac_secret:
        timestamp = int(now.timestamp())
        headers[TIMESTAMP_HEADER] = str(timestamp)
        headers[SIGNATURE_HEADER] = sign(receiver.hmac_secret, timestamp, body)
    return Message(body, JSON, headers)
