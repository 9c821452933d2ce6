"""The alerts page (`/alerts`) and the overview's "Alerts firing" card.

Reads through `alerting.listing` and `alerting.store`, the same reads as the alerting API, so
the page and `/api/v1/rules`, `/alerts`, `/silences`, `/notifications` agree; receivers' URLs
are masked there. Times are shown relative to the page's `now` (and in full in a tooltip).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncConnection

from alerting import listing
from alerting.model import Rule
from alerting.rules import rule_to_mapping
from alerting.service import AlertingService
from alerting.store import silences, states
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
    return await states.firing_counts(conn)


async def alerts(
    conn: AsyncConnection, service: AlertingService | None, now: dt.datetime, web_base: str
) -> Context:
    counts = await states.alert_counts(conn)
    rules = await listing.all_rules(service, conn)
    signals = {rule.name: rule.signal.value for rule in rules}
    found = await listing.current_alerts(conn, now)
    receivers = await listing.all_receivers(service, conn)
    notifications = await listing.notifications(conn, SHOWN, receivers.values())
    history = await states.history(conn, SHOWN)
    current = await silences.listed_silences(conn, now, current_only=True)
    return {
        "rules": [_rule_row(rule, counts) for rule in rules],
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
            for silence in current
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
        "receivers": await listing.receiver_entries(service, conn),
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


def _rule_row(rule: Rule, counts: Mapping[str, states.AlertCounts]) -> Context:
    """The rule in the rules file's format (as the API answers it), with its alerts."""
    shown = rule_to_mapping(rule)
    matchers = [str(matcher) for matcher in rule.matchers]
    where = rule.scope.value + (f" ({', '.join(matchers)})" if matchers else "")
    if rule.metric is not None:
        where += f" · {rule.metric.aggregation}({rule.metric.name})"
    alerts = counts.get(rule.name) or states.AlertCounts(pending=0, firing=0)
    return {
        "rule": {**shown, "origin": rule.origin, "alerts": alerts},
        "where": where,
        "for": shown["for"],
    }


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
