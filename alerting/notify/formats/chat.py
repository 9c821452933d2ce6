"""What every chat message says about one alert, and how chat text is made safe.

An alert is shown as a `View`: what is wrong (`summary`, `description`), where (`service`,
`source` → `target`, `version`), how bad (the alert's value and a `threshold` annotation or label
when the rule sets one), since when (relative to `now`), and a link to the alert's page
(`generator_url`). Each chat message shows at most `MAX_SHOWN` alerts, firing first, then
"…and N more".

Labels and annotations come from telemetry, so chat text built from them is defused: mentions
(`@everyone`, `<!channel>`, `<@id>`) get a zero-width space and cannot ping, Slack's `& < >` are
escaped, markdown is backslash-escaped for Mattermost and Discord, and Teams markdown links are
broken. Every text is cut to the platform's limits (`…` marks a cut, never inside an escape).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from alerting.model import Alert, Notification
from alerting.notify.formats.alertmanager import rfc3339

MAX_SHOWN = 10
"""Alerts shown one by one in a chat message; the rest are counted."""
_ZWSP = "\u200b"
RED, GREEN = "#d63232", "#2eb67d"
_SEVERITY_EMOJI = {"critical": "🔴", "warning": "🟠", "info": "🔵"}


@dataclass(frozen=True, slots=True)
class View:
    """One alert as a chat message shows it (texts already cut to their limits)."""

    firing: bool
    emoji: str
    title: str
    description: str
    severity: str
    where: tuple[tuple[str, str], ...]
    how_bad: str
    since: str
    link: str | None


def _view(alert: Alert, now: dt.datetime) -> View:
    labels, notes = alert.labels, alert.annotations
    firing = alert.status == "firing"
    severity = labels.get("severity", "")
    return View(
        firing=firing,
        emoji=_SEVERITY_EMOJI.get(severity, "⚪") if firing else "✅",
        title=cut(notes.get("summary") or labels.get("alertname") or "alert", 250),
        description=cut(notes.get("description", ""), 1000),
        severity=cut(severity or "none", 50),
        where=tuple((name, cut(value, 200)) for name, value in _where(labels)),
        how_bad=cut(_how_bad(alert), 300),
        since=_since(alert, now),
        link=link(alert.generator_url),
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


def headline(notification: Notification) -> str:
    """`🔥 [FIRING:n] name` or `✅ [RESOLVED] name`: what the message is about."""
    firing = sum(alert.status == "firing" for alert in notification.alerts)
    tag = f"🔥 [FIRING:{firing}]" if notification.status == "firing" else "✅ [RESOLVED]"
    groups = notification.group_labels
    name = groups.get("alertname") or notification.common_labels.get("alertname")
    return f"{tag} {name or ' '.join(groups.values()) or 'alerts'}"


def views(notification: Notification, now: dt.datetime) -> list[View]:
    """The notification's alerts as shown, firing first."""
    ordered = sorted(notification.alerts, key=lambda alert: alert.status != "firing")
    return [_view(alert, now) for alert in ordered]


def more(total: int, shown: int) -> str:
    """`…and N more alerts` for the alerts not shown; empty when all are."""
    hidden = total - shown
    return f"…and {hidden} more alert{'s' if hidden > 1 else ''}" if hidden > 0 else ""


def link(url: str) -> str | None:
    """`url` when it is a plain absolute http(s) URL that platforms accept in buttons."""
    if not url or len(url) > 2000 or any(c.isspace() or c in '<>"|' for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme in ("http", "https") and parts.hostname else None


_MENTION = re.compile(r"(?<![\w.+-])@(?=\w)|<")
_MARKDOWN = re.compile(r"([\\`*_~|\[\]<>#])")


def defuse(text: str) -> str:
    """Break mentions (`@everyone`, `<!channel>`, `<@123>`) with a zero-width space."""
    return _MENTION.sub(lambda m: m.group(0) + _ZWSP, text)


def slack_text(text: str) -> str:
    """`text` for Slack mrkdwn: `& < >` escaped, mentions defused."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return defuse(escaped)


def markdown(text: str) -> str:
    """`text` for Mattermost and Discord markdown: markup escaped, mentions defused."""
    return _MARKDOWN.sub(r"\\\1", defuse(text))


def teams_text(text: str) -> str:
    """`text` for Teams: mentions defused, markdown links broken."""
    return defuse(text).replace("](", "]" + _ZWSP + "(")


def width(text: str) -> int:
    """Length in UTF-16 code units (what the strictest platform counts)."""
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


_PARTIAL_ENTITY = re.compile(r"&[#\w]*$")


def cut(text: str, limit: int) -> str:
    """`text` in at most `limit` units, ending with `…` when cut, never inside an escape."""
    if width(text) <= limit:
        return text
    kept, used = [], 1
    for char in text:
        used += width(char)
        if used > limit:
            break
        kept.append(char)
    head = _PARTIAL_ENTITY.sub("", "".join(kept))
    if (len(head) - len(head.rstrip("\\"))) % 2:
        head = head[:-1]
    return head + "…"


def facts(view: View) -> list[tuple[str, str]]:
    """Severity, where, how bad and when, as (title, value) pairs."""
    found = [("Severity", view.severity)]
    found += [(name.capitalize(), value) for name, value in view.where]
    if view.how_bad:
        found.append(("How bad", view.how_bad))
    found.append(("When", view.since))
    return found
