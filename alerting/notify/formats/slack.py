"""Slack incoming webhooks: `{"text", "blocks"}` (a header, one section per alert, a button
to meshlens); `&`, `<` and `>` escaped."""

from __future__ import annotations

import datetime as dt

from alerting.model import Notification
from alerting.notify.formats import chat
from alerting.notify.formats.message import Payload


def slack(notification: Notification, now: dt.datetime) -> Payload:
    views = chat.views(notification, now)
    shown = views[: chat.MAX_SHOWN]
    headline = chat.headline(notification)
    blocks: list[Payload] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": chat.cut(chat.defuse(headline), 150)},
        }
    ]
    blocks += [_slack_section(view) for view in shown]
    if more := chat.more(len(views), len(shown)):
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    if url := chat.link(notification.external_url):
        blocks.append({"type": "actions", "elements": [_slack_button("Open meshlens", url)]})
    fallback = "; ".join(view.title for view in views)
    return {"text": chat.cut(chat.slack_text(f"{headline}: {fallback}"), 3000), "blocks": blocks}


def _slack_section(view: chat.View) -> Payload:
    lines = [f"*{view.emoji} {chat.slack_text(view.title)}*"]
    if view.description:
        lines.append(chat.slack_text(view.description))
    if view.where:
        lines.append("*Where:* " + " · ".join(f"{k} {chat.slack_text(v)}" for k, v in view.where))
    if view.how_bad:
        lines.append(f"*How bad:* {chat.slack_text(view.how_bad)}")
    lines.append(f"*When:* {view.since} · severity {chat.slack_text(view.severity)}")
    section: Payload = {
        "type": "section",
        "text": {"type": "mrkdwn", "text": chat.cut("\n".join(lines), 3000)},
    }
    if view.link:
        section["accessory"] = _slack_button("Open", view.link)
    return section


def _slack_button(text: str, url: str) -> Payload:
    return {"type": "button", "text": {"type": "plain_text", "text": text}, "url": url}
