"""Each receiver type's native message, built by pure functions (time is an argument).

`render(receiver, notification, now=...)` returns a `Message` (JSON body, content type, headers).
Every message carries `Idempotency-Key: <notification.idempotency_key>`, the same on every retry.

- `webhook`: exactly Alertmanager's webhook payload version "4", so existing receivers consume it.
  Firing alerts without an end carry `endsAt: "0001-01-01T00:00:00Z"`, as Alertmanager sends.
- `slack`: `{"text", "blocks"}`; `mattermost`: `{"text", "attachments"}` (no blocks);
  `discord`: `{"content", "embeds", "allowed_mentions"}`; `teams`: an Adaptive Card 1.4 in a
  `message` attachment. Each shows at most `MAX_SHOWN` alerts, firing first, then "…and N more":
  what is wrong (`summary`, `description`), where (`service`, `source` → `target`, `version`),
  how bad (the alert's value and a `threshold` annotation or label when the rule sets one),
  since when (relative to `now`), and a link to the alert's page (`generator_url`).

Labels and annotations come from telemetry, so chat text built from them is defused: mentions
(`@everyone`, `<!channel>`, `<@id>`) get a zero-width space and cannot ping, Slack's `& < >` are
escaped, markdown is backslash-escaped for Mattermost and Discord, and Teams markdown links are
broken. Every text is cut to the platform's limits (`…` marks a cut, never inside an escape).

Webhook signature: when `receiver.hmac_secret` is set, the request also carries
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from alerting.model import Alert, Notification, Receiver, ReceiverType

JSON = "application/json"
ZERO_TIME = "0001-01-01T00:00:00Z"
"""Go's zero time, which Alertmanager sends as `endsAt` of alerts still firing."""
MAX_SHOWN = 10
"""Alerts shown one by one in a chat message; the rest are counted."""
TIMESTAMP_HEADER = "X-Meshlens-Timestamp"
SIGNATURE_HEADER = "X-Meshlens-Signature"
TEAMS_MAX_BYTES = 27_000
"""Teams webhooks refuse messages over about 28 KB."""
DISCORD_TOTAL = 6000
"""Discord: the sum of all embed titles, descriptions, field names and values."""

_ZWSP = "\u200b"
_RED, _GREEN = "#d63232", "#2eb67d"
_SEVERITY_EMOJI = {"critical": "🔴", "warning": "🟠", "info": "🔵"}

Payload = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Message:
    """What to POST: `body` (JSON bytes) with `Content-Type: content_type` plus `headers`."""

    body: bytes
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


def render(receiver: Receiver, notification: Notification, *, now: dt.datetime) -> Message:
    body = orjson.dumps(_BUILDERS[receiver.type](notification, now))
    headers = {"Idempotency-Key": notification.idempotency_key}
    if receiver.type is ReceiverType.WEBHOOK and receiver.hmac_secret:
        timestamp = int(now.timestamp())
        headers[TIMESTAMP_HEADER] = str(timestamp)
        headers[SIGNATURE_HEADER] = sign(receiver.hmac_secret, timestamp, body)
    return Message(body, JSON, headers)


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


# --- Alertmanager webhook v4 -------------------------------------------------------------------


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


# --- What each chat message says about one alert ---------------------------------------------


@dataclass(frozen=True, slots=True)
class _View:
    firing: bool
    emoji: str
    title: str
    description: str
    severity: str
    where: tuple[tuple[str, str], ...]
    how_bad: str
    since: str
    link: str | None


def _view(alert: Alert, now: dt.datetime) -> _View:
    labels, notes = alert.labels, alert.annotations
    firing = alert.status == "firing"
    severity = labels.get("severity", "")
    return _View(
        firing=firing,
        emoji=_SEVERITY_EMOJI.get(severity, "⚪") if firing else "✅",
        title=_cut(notes.get("summary") or labels.get("alertname") or "alert", 250),
        description=_cut(notes.get("description", ""), 1000),
        severity=_cut(severity or "none", 50),
        where=tuple((name, _cut(value, 200)) for name, value in _where(labels)),
        how_bad=_cut(_how_bad(alert), 300),
        since=_since(alert, now),
        link=_link(alert.generator_url),
    )


def _where(labels: Mapping[str, str]) -> list[tuple[str, str]]:
    found = []
    if labels.get("service"):
        found.append(("service", labels["service"]))
    if labels.get("source") or labels.get("target"):
        found.append(("edge", f"{labels.get('source', '?')} → {labels.get('target', '?')}"))
    if labels.get("version"):
        found.append(("version", labels["version"]))
    return found


def _how_bad(alert: Alert) -> str:
    parts = [] if alert.value is None else [f"value {alert.value:.4g}"]
    threshold = alert.annotations.get("threshold") or alert.labels.get("threshold")
    if threshold:
        parts.append(f"threshold {threshold}")
    return " vs ".join(parts)


def _since(alert: Alert, now: dt.datetime) -> str:
    if alert.status == "firing":
        return f"since {_clock(alert.starts_at)} (for {_duration(now - alert.starts_at)})"
    if alert.ends_at is None:
        return f"resolved (started {_clock(alert.starts_at)})"
    lasted = _duration(alert.ends_at - alert.starts_at)
    return f"resolved at {_clock(alert.ends_at)} after {lasted}"


def _clock(moment: dt.datetime) -> str:
    return rfc3339(moment)[:16].replace("T", " ") + " UTC"


def _duration(span: dt.timedelta) -> str:
    seconds = max(0, int(span.total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{minutes}m"
    if seconds < 86400:
        return f"{hours}h" + (f" {minutes % 60}m" if minutes % 60 else "")
    return f"{days}d" + (f" {hours % 24}h" if hours % 24 else "")


def _headline(notification: Notification) -> str:
    firing = sum(alert.status == "firing" for alert in notification.alerts)
    tag = f"🔥 [FIRING:{firing}]" if notification.status == "firing" else "✅ [RESOLVED]"
    groups = notification.group_labels
    name = groups.get("alertname") or notification.common_labels.get("alertname")
    return f"{tag} {name or ' '.join(groups.values()) or 'alerts'}"


def _views(notification: Notification, now: dt.datetime) -> list[_View]:
    ordered = sorted(notification.alerts, key=lambda alert: alert.status != "firing")
    return [_view(alert, now) for alert in ordered]


def _more(total: int, shown: int) -> str:
    hidden = total - shown
    return f"…and {hidden} more alert{'s' if hidden > 1 else ''}" if hidden > 0 else ""


def _link(url: str) -> str | None:
    """`url` when it is a plain absolute http(s) URL that platforms accept in buttons."""
    if not url or len(url) > 2000 or any(c.isspace() or c in '<>"|' for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme in ("http", "https") and parts.hostname else None


# --- Escaping and cutting -----------------------------------------------------------------------

_MENTION = re.compile(r"(?<![\w.+-])@(?=\w)|<")
_MARKDOWN = re.compile(r"([\\`*_~|\[\]<>#])")


def _defuse(text: str) -> str:
    """Break mentions (`@everyone`, `<!channel>`, `<@123>`) with a zero-width space."""
    return _MENTION.sub(lambda m: m.group(0) + _ZWSP, text)


def _slack(text: str) -> str:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _defuse(escaped)


def _markdown(text: str) -> str:
    return _MARKDOWN.sub(r"\\\1", _defuse(text))


def _teams(text: str) -> str:
    return _defuse(text).replace("](", "]" + _ZWSP + "(")


def _width(text: str) -> int:
    """Length in UTF-16 code units (what the strictest platform counts)."""
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


_PARTIAL_ENTITY = re.compile(r"&[#\w]*$")


def _cut(text: str, limit: int) -> str:
    """`text` in at most `limit` units, ending with `…` when cut, never inside an escape."""
    if _width(text) <= limit:
        return text
    kept, used = [], 1
    for char in text:
        used += _width(char)
        if used > limit:
            break
        kept.append(char)
    head = _PARTIAL_ENTITY.sub("", "".join(kept))
    if (len(head) - len(head.rstrip("\\"))) % 2:
        head = head[:-1]
    return head + "…"


# --- Slack --------------------------------------------------------------------------------------


def slack(notification: Notification, now: dt.datetime) -> Payload:
    views = _views(notification, now)
    shown = views[:MAX_SHOWN]
    headline = _headline(notification)
    blocks: list[Payload] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(_defuse(headline), 150)}}
    ]
    blocks += [_slack_section(view) for view in shown]
    if more := _more(len(views), len(shown)):
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    if url := _link(notification.external_url):
        blocks.append({"type": "actions", "elements": [_slack_button("Open meshlens", url)]})
    fallback = "; ".join(view.title for view in views)
    return {"text": _cut(_slack(f"{headline}: {fallback}"), 3000), "blocks": blocks}


def _slack_section(view: _View) -> Payload:
    lines = [f"*{view.emoji} {_slack(view.title)}*"]
    if view.description:
        lines.append(_slack(view.description))
    if view.where:
        lines.append("*Where:* " + " · ".join(f"{k} {_slack(v)}" for k, v in view.where))
    if view.how_bad:
        lines.append(f"*How bad:* {_slack(view.how_bad)}")
    lines.append(f"*When:* {view.since} · severity {_slack(view.severity)}")
    section: Payload = {
        "type": "section",
        "text": {"type": "mrkdwn", "text": _cut("\n".join(lines), 3000)},
    }
    if view.link:
        section["accessory"] = _slack_button("Open", view.link)
    return section


def _slack_button(text: str, url: str) -> Payload:
    return {"type": "button", "text": {"type": "plain_text", "text": text}, "url": url}


# --- Mattermost ---------------------------------------------------------------------------------


def mattermost(notification: Notification, now: dt.datetime) -> Payload:
    views = _views(notification, now)
    shown = views[:MAX_SHOWN]
    text = f"**{_markdown(_headline(notification))}**"
    if more := _more(len(views), len(shown)):
        text += f"\n{more}"
    return {"text": text, "attachments": [_mattermost_attachment(view) for view in shown]}


def _mattermost_attachment(view: _View) -> Payload:
    attachment: Payload = {
        "fallback": _cut(_defuse(f"{view.emoji} {view.title} — {view.since}"), 500),
        "color": _RED if view.firing else _GREEN,
        "title": _markdown(f"{view.emoji} {view.title}"),
        "text": _markdown(view.description),
        "fields": [
            {"short": True, "title": title, "value": _markdown(value)}
            for title, value in _facts(view)
        ],
    }
    if view.link:
        attachment["title_link"] = view.link
    return attachment


def _facts(view: _View) -> list[tuple[str, str]]:
    facts = [("Severity", view.severity)]
    facts += [(name.capitalize(), value) for name, value in view.where]
    if view.how_bad:
        facts.append(("How bad", view.how_bad))
    facts.append(("When", view.since))
    return facts


# --- Discord ------------------------------------------------------------------------------------


def discord(notification: Notification, now: dt.datetime) -> Payload:
    views = _views(notification, now)
    shown = views[:MAX_SHOWN]
    content = f"**{_markdown(_headline(notification))}**"
    if more := _more(len(views), len(shown)):
        content += f"\n{more}"
    embeds = [_discord_embed(view) for view in shown]
    _fit_embeds(embeds, DISCORD_TOTAL)
    return {
        "content": _cut(content, 2000),
        "embeds": embeds,
        "allowed_mentions": {"parse": []},
    }


def _discord_embed(view: _View) -> Payload:
    embed: Payload = {
        "title": _cut(_markdown(f"{view.emoji} {view.title}"), 256),
        "color": int((_RED if view.firing else _GREEN)[1:], 16),
        "fields": [
            {"name": name, "value": _cut(_markdown(value), 1024) or "—", "inline": True}
            for name, value in _facts(view)
        ],
    }
    if view.description:
        embed["description"] = _cut(_markdown(view.description), 4096)
    if view.link:
        embed["url"] = view.link
    return embed


def _fit_embeds(embeds: list[Payload], budget: int) -> None:
    """Cut the longest texts first until all embeds together fit Discord's total."""
    slots: list[tuple[Payload, str]] = []
    for embed in embeds:
        slots += [(embed, key) for key in ("title", "description") if key in embed]
        slots += [(f, key) for f in embed["fields"] for key in ("name", "value")]
    widths = [_width(owner[key]) for owner, key in slots]
    if sum(widths) <= budget:
        return
    cap = _water_level(widths, budget)
    for owner, key in slots:
        owner[key] = _cut(owner[key], cap)


def _water_level(widths: list[int], budget: int) -> int:
    """The largest cap with `sum(min(w, cap)) <= budget`."""
    low, high = 1, max(widths)
    while low < high:
        middle = (low + high + 1) // 2
        if sum(min(width, middle) for width in widths) <= budget:
            low = middle
        else:
            high = middle - 1
    return low


# --- Microsoft Teams ----------------------------------------------------------------------------


def teams(notification: Notification, now: dt.datetime) -> Payload:
    views = _views(notification, now)
    shown = min(len(views), MAX_SHOWN)
    while True:
        payload = _teams_message(notification, views, shown)
        if shown <= 1 or len(orjson.dumps(payload)) <= TEAMS_MAX_BYTES:
            return payload
        shown -= 1


def _teams_message(notification: Notification, views: list[_View], shown: int) -> Payload:
    firing = notification.status == "firing"
    body: list[Payload] = [
        _text_block(
            _teams(_headline(notification)),
            size="Large",
            weight="Bolder",
            color="Attention" if firing else "Good",
        )
    ]
    body += [_teams_alert(view) for view in views[:shown]]
    if more := _more(len(views), shown):
        body.append(_text_block(more, isSubtle=True))
    card: Payload = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "msteams": {"width": "Full"},
        "body": body,
    }
    if url := _link(notification.external_url):
        card["actions"] = [_open_url("Open meshlens", url)]
    attachment = {
        "contentType": "application/vnd.microsoft.card.adaptive",
        "contentUrl": None,
        "content": card,
    }
    return {"type": "message", "attachments": [attachment]}


def _teams_alert(view: _View) -> Payload:
    items = [_text_block(_teams(f"{view.emoji} {view.title}"), weight="Bolder")]
    if view.description:
        items.append(_text_block(_teams(view.description), isSubtle=True))
    facts = [{"title": title, "value": _teams(value)} for title, value in _facts(view)]
    items.append({"type": "FactSet", "facts": facts})
    if view.link:
        items.append({"type": "ActionSet", "actions": [_open_url("Open", view.link)]})
    return {"type": "Container", "separator": True, "items": items}


def _text_block(text: str, **style: Any) -> Payload:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _open_url(title: str, url: str) -> Payload:
    return {"type": "Action.OpenUrl", "title": title, "url": url}


_BUILDERS: Mapping[ReceiverType, Callable[[Notification, dt.datetime], Payload]] = {
    ReceiverType.WEBHOOK: webhook,
    ReceiverType.SLACK: slack,
    ReceiverType.MATTERMOST: mattermost,
    ReceiverType.DISCORD: discord,
    ReceiverType.TEAMS: teams,
}
