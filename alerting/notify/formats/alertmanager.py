"""The `webhook` receiver: exactly Alertmanager's webhook payload version "4", so existing
receivers consume it. Firing alerts without an end carry `endsAt: "0001-01-01T00:00:00Z"`, as
Alertmanager sends.

Signature: when `receiver.hmac_secret` is set, the request also carries
`X-Meshlens-Timestamp: <unix seconds>` and `X-Meshlens-Signature: sha256=<hex>` where `<hex>` is
HMAC-SHA256 keyed with the secret (UTF-8) over `f"{timestamp}.".encode() + body` (the raw bytes
received). A receiver recomputes it, compares with `hmac.compare_digest`, and rejects timestamps
older than a few minutes (replays); `verify_signature` does exactly that. Render again for each
attempt so the timestamp is fresh.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re

from alerting.model import Alert, Notification
from alerting.notify.formats.message import Payload

ZERO_TIME = "0001-01-01T00:00:00Z"
"""Go's zero time, which Alertmanager sends as `endsAt` of alerts still firing."""
TIMESTAMP_HEADER = "X-Meshlens-Timestamp"
SIGNATURE_HEADER = "X-Meshlens-Signature"


def webhook(notification: Notification, now: dt.datetime) -> Payload:
    return {
        "version": "4",
        "groupKey": notification.group_key,
        "truncatedAlerts": 0,
        "status": notification.status,
        "receiver": notification.receiver,
        "groupLabels": dict(notification.group_labels),
        "commonLabels": notification.common_labels,
        "commonAnnotations": notification.common_annotations,
        "externalURL": notification.external_url,
        "alerts": [_webhook_alert(alert) for alert in notification.alerts],
    }


def _webhook_alert(alert: Alert) -> Payload:
    return {
        "status": alert.status,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": rfc3339(alert.starts_at),
        "endsAt": rfc3339(alert.ends_at) if alert.ends_at else ZERO_TIME,
        "generatorURL": alert.generator_url,
        "fingerprint": alert.fingerprint,
    }


def rfc3339(moment: dt.datetime) -> str:
    """UTC with a `Z`, fractions only when present (naive times are taken as UTC)."""
    utc = moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
    fraction = f".{utc.microsecond:06d}".rstrip("0") if utc.microsecond else ""
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-Meshlens-Signature` value: `sha256=` and the hex HMAC of `timestamp.body`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def verify_signature(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    now: dt.datetime,
    tolerance: int = 300,
) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent."""
    if not re.fullmatch(r"[0-9]{1,15}", timestamp):
        return False
    fresh = abs(now.timestamp() - int(timestamp)) <= tolerance
    return fresh and hmac.compare_digest(sign(secret, int(timestamp), body), signature)
