"""Alerts and notifications as JSON, as the outbox and the groups store them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from alerting.model import Alert, Notification


def alert_json(alert: Alert) -> dict[str, Any]:
    return {
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "status": alert.status,
        "starts_at": alert.starts_at.isoformat(),
        "ends_at": alert.ends_at.isoformat() if alert.ends_at else None,
        "value": alert.value,
        "generator_url": alert.generator_url,
    }


def alert_from_json(data: Mapping[str, Any]) -> Alert:
    ends = data.get("ends_at")
    return Alert(
        labels=dict(data["labels"]),
        annotations=dict(data["annotations"]),
        status=str(data["status"]),
        starts_at=dt.datetime.fromisoformat(data["starts_at"]),
        ends_at=dt.datetime.fromisoformat(ends) if ends else None,
        value=data.get("value"),
        generator_url=str(data["generator_url"]),
    )


def notification_json(notification: Notification) -> dict[str, Any]:
    return {
        "receiver": notification.receiver,
        "group_key": notification.group_key,
        "group_labels": dict(notification.group_labels),
        "status": notification.status,
        "alerts": [alert_json(alert) for alert in notification.alerts],
        "external_url": notification.external_url,
        "idempotency_key": notification.idempotency_key,
    }


def notification_from_json(data: Mapping[str, Any]) -> Notification:
    return Notification(
        receiver=str(data["receiver"]),
        group_key=str(data["group_key"]),
        group_labels=dict(data["group_labels"]),
        status=str(data["status"]),
        alerts=tuple(alert_from_json(alert) for alert in data["alerts"]),
        external_url=str(data["external_url"]),
        idempotency_key=str(data["idempotency_key"]),
    )
