"""Mattermost incoming webhooks: `{"text", "attachments"}` (no blocks), one attachment per
alert, markdown escaped."""

from __future__ import annotations

import datetime as dt

from alerting.model import Notification
from alerting.notify.formats import chat
from alerting.notify.formats.message import Payload


def mattermost(notification: Notification, now: dt.datetime) -> Payload:
    views = chat.views(notification, now)
    shown = views[: chat.MAX_SHOWN]
    text = f"**{chat.markdown(chat.headline(notification))}**"
    if more := chat.more(len(views), len(shown)):
        text += f"\n{more}"
    return {"text": text, "attachments": [_mattermost_attachment(view) for view in shown]}


def _mattermost_attachment(view: chat.View) -> Payload:
    attachment: Payload = {
        "fallback": chat.cut(chat.defuse(f"{view.emoji} {view.title} — {view.since}"), 500),
        "color": chat.RED if view.firing else chat.GREEN,
        "title": chat.markdown(f"{view.emoji} {view.title}"),
        "text": chat.markdown(view.description),
        "fields": [
            {"short": True, "title": title, "value": chat.markdown(value)}
            for title, value in chat.facts(view)
        ],
    }
    if view.link:
        attachment["title_link"] = view.link
    return attachment
