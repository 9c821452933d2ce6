"""The alerts page (`/alerts`) and the overview's "Alerts firing" card.

Reads through `api.alerting_answers`, the same reads as the alerting API, so the page and
`/api/v1/rules`, `/alerts`, `/silences`, `/notifications` agree; receivers' URLs are masked
there. Times are shown relative to the page's `now` (and in full in a tooltip).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from alerting.service import AlertingService
from api import alerting_answers as answers
from dashboards import formatting
from meshlens.durations import format_duration

Context = dict[str, Any]
SHOWN = 50
"""History transitions and notifications listed."""
STATE_HEALTH = {
    "firing": "bad",
    "pending": "warn",
    "resolved": "ok",
    "inactive": "idle",
    "delivered": "ok",
    "failed": "bad",
    "active": "warn",
    "expired": "idle",
}
RULES_FILE_EXAMPLE = """\
receivers:
  - name: oncall-slack
    type: slack          # slack | mattermost | discord | teams | webhook
    url: https://hooks.slack.com/services/T000/B000/XXXX
rules:
  - name: HighErrorRate
    signal: error_rate   # request_rate, latency_p95, saturation, mtls_coverage...
    scope: service       # mesh | service | edge | version
    condition: "> 5%"
    for: 2m
    severity: critical
    annotations:
      summary: "{{ $labels.service }} fails {{ $value | humanizePercentage }}"
    receivers: [oncall-slack]
"""
_EXAMPLE_RULE = {
    "name": "HighErrorRate",
    "signal": "error_rate",
    "scope": "service",
    "condition": "> 5%",
    "for": "2m",
    "severity": "critical",
}


async def firing_counts(conn: AsyncConnection) -> dict[str, int]:
    """Alerts firing and pending now, for the overview's card."""
    row = (
        await conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE state = 'firing'),"
                " count(*) FILTER (WHERE state = 'pending') FROM alert_states"
            )
        )
    ).one()
    return {"firing": int(row[0]), "pending": int(row[1])}


async def alerts(
    conn: AsyncConnection, service: AlertingService | None, now: dt.datetime, web_base: str
) -> Context:
    rules = await answers.rule_models(service, conn)
    signals = {rule.name: rule.signal for rule in rules}
    found = await answers.alert_models(conn, now)
    receivers = await answers.all_receivers(service, conn)
    notifications = await answers.notification_models(conn, SHOWN, receivers.values())
    history = await answers.history_models(conn, SHOWN)
    silences = await answers.silence_models(conn, now, current_only=True)
    return {
        "rules": [_rule_row(rule) for rule in rules],
        "alerts": [
            {
                "alert": alert,
                "value": value_text(signals.get(alert.rule), alert.value),
                "since": _when(alert.fired_at or alert.active_at, now),
                "labels": _labels(alert.labels),
                "summary": alert.annotations.get("summary", ""),
                "link": local_path(alert.generator_url),
                "health": STATE_HEALTH.get(alert.state, "idle"),
            }
            for alert in found
        ],
        "firing": sum(1 for alert in found if alert.state == "firing"),
        "pending": sum(1 for alert in found if alert.state == "pending"),
        "history": [
            {
                "event": event,
                "value": value_text(signals.get(event.rule), event.value),
                "at": _when(event.at, now),
                "labels": _labels(event.labels),
                "health": STATE_HEALTH.get(event.state, "idle"),
            }
            for event in history
        ],
        "silences": [
            {
                "silence": silence,
                "matchers": [f"{m.name}{m.op}{json.dumps(m.value)}" for m in silence.matchers],
                "starts": _when(silence.starts_at, now),
                "ends": _when(silence.ends_at, now),
                "health": STATE_HEALTH[silence.state],
            }
            for silence in silences
        ],
        "notifications": [
            {
                "notification": sent,
                "created": _when(sent.created_at, now),
                "next": _when(sent.next_attempt_at, now) if sent.next_attempt_at else None,
                "health": STATE_HEALTH.get(sent.state, "warn"),
            }
            for sent in notifications
        ],
        "receivers": await answers.receiver_models(service, conn),
        "status": _status(service, now),
        "rules_file_example": RULES_FILE_EXAMPLE,
        "curl_example": curl_example(web_base),
    }


def curl_example(web_base: str) -> str:
    body = json.dumps(_EXAMPLE_RULE)
    return (
        f"curl -X POST {web_base}/api/v1/rules \\\n"
        "  -H 'Content-Type: application/json' \\\n"
        f"  -d '{body}'"
    )


def value_text(signal: str | None, value: float | None) -> str:
    """An alert's value in its signal's unit."""
    if value is None:
        return formatting.DASH
    if signal in ("error_rate", "saturation", "mtls_coverage"):
        return formatting.percent(value)
    if signal is not None and signal.startswith("latency_"):
        return formatting.ms(value)
    if signal == "request_rate":
        return formatting.rate(value)
    if signal == "plaintext_edges":
        return formatting.count(round(value))
    return f"{value:.4g}"


def local_path(url: str) -> str | None:
    """The path and query of a generator URL, to link within this meshlens (None: not a
    meshlens page)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if not parts.path.startswith("/") or parts.path.startswith("//"):
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


def ago(moment: dt.datetime, now: dt.datetime) -> str:
    """`45s`, `12m`, `3h 5m`, `2d 4h` before (or `in ...` after) `now`."""
    seconds = int((now - moment).total_seconds())
    later, seconds = seconds < 0, abs(seconds)
    if seconds < 60:
        shown = f"{seconds}s"
    elif seconds < 3600:
        shown = f"{seconds // 60}m"
    elif seconds < 86400:
        shown = f"{seconds // 3600}h {seconds % 3600 // 60}m"
    else:
        shown = f"{seconds // 86400}d {seconds % 86400 // 3600}h"
    return f"in {shown}" if later else f"{shown} ago"


def _when(moment: dt.datetime, now: dt.datetime) -> dict[str, str]:
    utc = moment.astimezone(dt.UTC)
    return {"ago": ago(utc, now), "at": utc.isoformat(timespec="seconds").replace("+00:00", "Z")}


def _duration(seconds: float) -> str:
    whole = int(seconds)
    return format_duration(whole) if whole == seconds and whole > 0 else f"{seconds:g}s"


def _labels(labels: Mapping[str, str]) -> list[str]:
    return [f"{name}={value}" for name, value in sorted(labels.items()) if name != "alertname"]


def _rule_row(rule: answers.RuleModel) -> Context:
    where = rule.scope + (f" ({', '.join(rule.matchers)})" if rule.matchers else "")
    if rule.metric is not None:
        where += f" · {rule.metric.aggregation}({rule.metric.name})"
    return {"rule": rule, "where": where, "for": rule.for_}


def _status(service: AlertingService | None, now: dt.datetime) -> Context:
    if service is None:
        return {"running": False, "file_error": None, "interval": None, "last_round": None}
    last = service.status.last_round_at
    return {
        "running": True,
        "file_error": service.status.file_error,
        "interval": _duration(service.config.eval_interval),
        "last_round": _when(last, now) if last is not None else None,
    }
