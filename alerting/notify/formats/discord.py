"""Discord webhooks: `{"content", "embeds", "allowed_mentions"}`, one embed per alert, markdown
escaped, cut to fit Discord's limits (`DISCORD_TOTAL` over all embeds)."""

from __future__ import annotations

import datetime as dt

from alerting.model import Notification
from alerting.notify.formats import chat
from alerting.notify.formats.message import Payload

DISCORD_TOTAL = 6000
"""Discord: the sum of all embed titles, descriptions, field names and values."""


def discord(notification: Notification, now: dt.datetime) -> Payload:
    views = chat.views(notification, now)
    shown = views[: chat.MAX_SHOWN]
    content = f"**{chat.markdown(chat.headline(notification))}**"
    if more := chat.more(len(views), len(shown)):
        content += f"\n{more}"
    embeds = [_discord_embed(view) for view in shown]
    _fit_embeds(embeds, DISCORD_TOTAL)
    return {
        "content": chat.cut(content, 2000),
        "embeds": embeds,
        "allowed_mentions": {"parse": []},
    }


def _discord_embed(view: chat.View) -> Payload:
    embed: Payload = {
        "title": chat.cut(chat.markdown(f"{view.emoji} {view.title}"), 256),
        "color": int((chat.RED if view.firing else chat.GREEN)[1:], 16),
        "fields": [
            {"name": name, "value": chat.cut(chat.markdown(value), 1024) or "—", "inline": True}
            for name, value in chat.facts(view)
        ],
    }
    if view.description:
        embed["description"] = chat.cut(chat.markdown(view.description), 4096)
    if view.link:
        embed["url"] = view.link
    return embed


def _fit_embeds(embeds: list[Payload], budget: int) -> None:
    """Cut the longest texts first until all embeds together fit Discord's total."""
    slots: list[tuple[Payload, str]] = []
    for embed in embeds:
        slots += [(embed, key) for key in ("title", "description") if key in embed]
        slots += [(f, key) for f in embed["fields"] for key in ("name", "value")]
    widths = [chat.width(owner[key]) for owner, key in slots]
    if sum(widths) <= budget:
        return
    cap = _water_level(widths, budget)
    for owner, key in slots:
        owner[key] = chat.cut(owner[key], cap)


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
