"""Microsoft Teams workflows: an Adaptive Card 1.4 in a `message` attachment, one container per
alert; fewer alerts are shown until it fits `TEAMS_MAX_BYTES`."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson

from alerting.model import Notification
from alerting.notify.formats import chat
from alerting.notify.formats.message import Payload

TEAMS_MAX_BYTES = 27_000
"""Teams webhooks refuse messages over about 28 KB."""


def teams(notification: Notification, now: dt.datetime) -> Payload:
    views = chat.views(notification, now)
    shown = min(len(views), chat.MAX_SHOWN)
    while True:
        payload = _teams_message(notification, views, shown)
        if shown <= 1 or len(orjson.dumps(payload)) <= TEAMS_MAX_BYTES:
            return payload
        shown -= 1


def _teams_message(notification: Notification, views: list[chat.View], shown: int) -> Payload:
    firing = notification.status == "firing"
    body: list[Payload] = [
        _text_block(
            chat.teams_text(chat.headline(notification)),
            size="Large",
            weight="Bolder",
            color="Attention" if firing else "Good",
        )
    ]
    body += [_teams_alert(view) for view in views[:shown]]
    if more := chat.more(len(views), shown):
        body.append(_text_block(more, isSubtle=True))
    card: Payload = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "msteams": {"width": "Full"},
        "body": body,
    }
    if url := chat.link(notification.external_url):
        card["actions"] = [_open_url("Open meshlens", url)]
    attachment = {
        "contentType": "application/vnd.microsoft.card.adaptive",
        "contentUrl": None,
        "content": card,
    }
    return {"type": "message", "attachments": [attachment]}


def _teams_alert(view: chat.View) -> Payload:
    items = [_text_block(chat.teams_text(f"{view.emoji} {view.title}"), weight="Bolder")]
    if view.description:
        items.append(_text_block(chat.teams_text(view.description), isSubtle=True))
    facts = [{"title": title, "value": chat.teams_text(value)} for title, value in chat.facts(view)]
    items.append({"type": "FactSet", "facts": facts})
    if view.link:
        items.append({"type": "ActionSet", "actions": [_open_url("Open", view.link)]})
    return {"type": "Container", "separator": True, "items": items}


def _text_block(text: str, **style: Any) -> Payload:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _open_url(title: str, url: str) -> Payload:
    return {"type": "Action.OpenUrl", "title": title, "url": url}
