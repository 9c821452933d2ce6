"""Each receiver type's message: the platform's shape, its limits, escaping, signatures."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.model import Alert, Notification, Receiver, ReceiverType, fingerprint
from alerting.notify.formats import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    ZERO_TIME,
    Message,
    render,
    rfc3339,
    verify_signature,
)

NOW = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)
CHAT_TYPES = [t for t in ReceiverType if t is not ReceiverType.WEBHOOK]
HOSTILE = "<!channel> @everyone <@123456789012345678> <img src=x onerror=alert(1)>"

ALERTMANAGER_V4_KEYS = {
    "version",
    "groupKey",
    "truncatedAlerts",
    "status",
    "receiver",
    "groupLabels",
    "commonLabels",
    "commonAnnotations",
    "externalURL",
    "alerts",
}
ALERTMANAGER_ALERT_KEYS = {
    "status",
    "labels",
    "annotations",
    "startsAt",
    "endsAt",
    "generatorURL",
    "fingerprint",
}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")


def alert(
    status: str = "firing",
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    started_ago: dt.timedelta = dt.timedelta(minutes=12),
    value: float | None = 0.1234,
    generator_url: str = "https://meshlens.example/alerts?rule=HighErrorRate",
) -> Alert:
    starts_at = NOW - started_ago
    return Alert(
        labels=labels
        or {
            "alertname": "HighErrorRate",
            "severity": "critical",
            "service": "checkout",
            "source": "web",
            "target": "checkout",
            "version": "v2",
        },
        annotations=annotations
        or {
            "summary": "Error rate 12% on checkout",
            "description": "5xx answers from checkout",
            "threshold": "> 5%",
        },
        status=status,
        starts_at=starts_at,
        ends_at=None if status == "firing" else NOW - dt.timedelta(minutes=1),
        value=value,
        generator_url=generator_url,
    )


def notification(*alerts: Alert, status: str | None = None) -> Notification:
    chosen = alerts or (alert(),)
    firing = any(a.status == "firing" for a in chosen)
    return Notification(
        receiver="team-checkout",
        group_key='{}:{alertname="HighErrorRate"}',
        group_labels={"alertname": "HighErrorRate"},
        status=status or ("firing" if firing else "resolved"),
        alerts=chosen,
        external_url="https://meshlens.example",
        idempotency_key="a1b2c3",
    )


def receiver(kind: ReceiverType, secret: str | None = None) -> Receiver:
    return Receiver("team-checkout", kind, "https://hooks.example/services/T0/B0/x", secret)


def payload(kind: ReceiverType, note: Notification) -> Any:
    return json.loads(render(receiver(kind), note, now=NOW).body)


def texts(value: Any) -> Iterator[str]:
    """Every string in a JSON document, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from texts(item)


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def many_long_alerts(count: int = 50) -> Notification:
    long = "x" * 3000 + "😀" * 500
    alerts = [
        alert(
            labels={"alertname": "Big", "service": f"svc-{i}-{long}", "version": long},
            annotations={"summary": f"#{i} {long}", "description": "&<>*_" * 3000},
        )
        for i in range(count)
    ]
    return notification(*alerts)


# --- Alertmanager webhook v4 --------------------------------------------------------------------


def test_webhook_payload_has_exactly_the_alertmanager_v4_keys() -> None:
    firing, resolved = alert(), alert("resolved", labels={"alertname": "HighErrorRate"})
    body = payload(ReceiverType.WEBHOOK, notification(firing, resolved))
    assert set(body) == ALERTMANAGER_V4_KEYS
    assert body["version"] == "4"
    assert body["truncatedAlerts"] == 0
    assert body["status"] == "firing"
    assert body["receiver"] == "team-checkout"
    assert body["groupKey"] == '{}:{alertname="HighErrorRate"}'
    assert body["groupLabels"] == {"alertname": "HighErrorRate"}
    assert body["commonLabels"] == {"alertname": "HighErrorRate"}
    assert body["externalURL"] == "https://meshlens.example"
    assert [set(a) for a in body["alerts"]] == [ALERTMANAGER_ALERT_KEYS] * 2


def test_webhook_alerts_carry_times_fingerprints_and_zero_end_while_firing() -> None:
    firing, resolved = alert(), alert("resolved")
    sent = payload(ReceiverType.WEBHOOK, notification(firing, resolved))["alerts"]
    assert sent[0]["endsAt"] == ZERO_TIME == "0001-01-01T00:00:00Z"
    assert sent[0]["startsAt"] == "2024-05-01T12:18:00Z"
    assert sent[1]["endsAt"] == "2024-05-01T12:29:00Z"
    assert all(RFC3339.match(a[key]) for a in sent for key in ("startsAt", "endsAt"))
    assert sent[0]["fingerprint"] == fingerprint(firing.labels)
    assert re.fullmatch(r"[0-9a-f]{16}", sent[0]["fingerprint"])
    assert sent[0]["labels"] == dict(firing.labels)
    assert sent[0]["annotations"] == dict(firing.annotations)
    assert sent[0]["generatorURL"] == firing.generator_url


def test_rfc3339_is_utc_with_fractions_only_when_present() -> None:
    paris = dt.timezone(dt.timedelta(hours=2))
    assert rfc3339(dt.datetime(2024, 5, 1, 14, 0, tzinfo=paris)) == "2024-05-01T12:00:00Z"
    moment = dt.datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=dt.UTC)
    assert rfc3339(moment) == "2024-05-01T12:00:00.25Z"


def test_webhook_keeps_hostile_labels_as_data() -> None:
    note = notification(alert(labels={"alertname": "X", "service": HOSTILE}))
    assert payload(ReceiverType.WEBHOOK, note)["alerts"][0]["labels"]["service"] == HOSTILE


# --- Headers and signatures ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(ReceiverType))
def test_every_message_is_json_with_the_idempotency_key(kind: ReceiverType) -> None:
    message = render(receiver(kind), notification(), now=NOW)
    assert isinstance(message, Message)
    assert message.content_type == "application/json"
    assert message.headers["Idempotency-Key"] == "a1b2c3"
    json.loads(message.body)


def test_webhook_signature_verifies_over_timestamp_and_body() -> None:
    message = render(receiver(ReceiverType.WEBHOOK, "s3cret"), notification(), now=NOW)
    timestamp = message.headers[TIMESTAMP_HEADER]
    assert timestamp == str(int(NOW.timestamp()))
    expected = hmac.new(b"s3cret", f"{timestamp}.".encode() + message.body, hashlib.sha256)
    signature = message.headers[SIGNATURE_HEADER]
    assert hmac.compare_digest(signature, "sha256=" + expected.hexdigest())
    assert verify_signature("s3cret", timestamp, message.body, signature, now=NOW)
    assert not verify_signature("s3cret", timestamp, message.body + b" ", signature, now=NOW)
    assert not verify_signature("other", timestamp, message.body, signature, now=NOW)
    later = NOW + dt.timedelta(minutes=10)
    assert not verify_signature("s3cret", timestamp, message.body, signature, now=later)


def test_only_webhooks_with_a_secret_are_signed() -> None:
    plain = render(receiver(ReceiverType.WEBHOOK), notification(), now=NOW)
    slack = render(receiver(ReceiverType.SLACK, "s3cret"), notification(), now=NOW)
    for message in (plain, slack):
        assert SIGNATURE_HEADER not in message.headers
        assert TIMESTAMP_HEADER not in message.headers


# --- Chat shapes --------------------------------------------------------------------------------


def test_slack_has_text_and_blocks_saying_what_where_how_bad_since_and_a_link() -> None:
    body = payload(ReceiverType.SLACK, notification(alert()))
    assert set(body) == {"text", "blocks"}
    header, section, actions = body["blocks"]
    assert header["type"] == "header"
    assert header["text"]["type"] == "plain_text"
    assert header["text"]["text"].startswith("🔥 [FIRING:1] HighErrorRate")
    assert section["type"] == "section"
    assert section["text"]["type"] == "mrkdwn"
    text = section["text"]["text"]
    for shown in ("Error rate 12% on checkout", "service checkout", "edge web → checkout"):
        assert shown in text
    assert "version v2" in text
    assert "value 0.1234 vs threshold &gt; 5%" in text
    assert "(for 12m)" in text
    assert section["accessory"]["type"] == "button"
    assert section["accessory"]["url"] == "https://meshlens.example/alerts?rule=HighErrorRate"
    assert actions["elements"][0]["url"] == "https://meshlens.example"
    assert "Error rate 12%" in body["text"]


def test_mattermost_uses_attachments_not_blocks_red_when_firing_green_when_resolved() -> None:
    body = payload(ReceiverType.MATTERMOST, notification(alert(), alert("resolved")))
    assert set(body) == {"text", "attachments"}
    firing, resolved = body["attachments"]
    keys = {"fallback", "color", "title", "title_link", "text", "fields"}
    assert set(firing) == keys
    assert firing["color"] == "#d63232"
    assert resolved["color"] == "#2eb67d"
    assert firing["title_link"] == "https://meshlens.example/alerts?rule=HighErrorRate"
    assert all(set(f) == {"short", "title", "value"} for f in firing["fields"])
    titles = [f["title"] for f in firing["fields"]]
    assert titles == ["Severity", "Service", "Edge", "Version", "How bad", "When"]


def test_discord_has_content_embeds_and_no_mentions() -> None:
    body = payload(ReceiverType.DISCORD, notification(alert()))
    assert set(body) == {"content", "embeds", "allowed_mentions"}
    assert body["allowed_mentions"] == {"parse": []}
    (embed,) = body["embeds"]
    assert set(embed) == {"title", "description", "url", "color", "fields"}
    assert embed["color"] == 0xD63232
    assert all(set(f) == {"name", "value", "inline"} for f in embed["fields"])


def test_teams_sends_an_adaptive_card_with_text_facts_and_links() -> None:
    body = payload(ReceiverType.TEAMS, notification(alert()))
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment == {
        "contentType": "application/vnd.microsoft.card.adaptive",
        "contentUrl": None,
        "content": attachment["content"],
    }
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.4"
    kinds = {node["type"] for node in _nodes(card) if "type" in node}
    assert {"TextBlock", "FactSet", "Container", "ActionSet", "Action.OpenUrl"} <= kinds
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": "Open meshlens", "url": "https://meshlens.example"}
    ]


def _nodes(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _nodes(item)
    elif isinstance(value, list):
        for item in value:
            yield from _nodes(item)


@pytest.mark.parametrize("kind", CHAT_TYPES)
def test_resolved_notifications_say_resolved(kind: ReceiverType) -> None:
    note = notification(alert("resolved", started_ago=dt.timedelta(hours=2, minutes=5)))
    text = " ".join(texts(payload(kind, note)))
    assert "RESOLVED" in text
    assert "FIRING" not in text
    assert "after 2h 4m" in text


@pytest.mark.parametrize("kind", CHAT_TYPES)
def test_firing_notifications_count_firing_alerts(kind: ReceiverType) -> None:
    text = " ".join(texts(payload(kind, notification(alert(), alert(), alert("resolved")))))
    assert "[FIRING:2] HighErrorRate" in text.replace("\\", "")


@pytest.mark.parametrize(
    ("ago", "shown"),
    [
        (dt.timedelta(seconds=40), "for 40s"),
        (dt.timedelta(minutes=12), "for 12m"),
        (dt.timedelta(hours=2, minutes=5), "for 2h 5m"),
        (dt.timedelta(days=3), "for 3d"),
    ],
)
def test_since_is_relative_to_now(ago: dt.timedelta, shown: str) -> None:
    body = payload(ReceiverType.SLACK, notification(alert(started_ago=ago)))
    assert shown in body["blocks"][1]["text"]["text"]


# --- Escaping -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CHAT_TYPES)
def test_hostile_labels_and_annotations_are_neutralised(kind: ReceiverType) -> None:
    hostile = alert(
        labels={"alertname": HOSTILE, "service": HOSTILE, "severity": HOSTILE},
        annotations={"summary": HOSTILE, "description": HOSTILE, "threshold": HOSTILE},
    )
    note = notification(hostile)
    note = Notification(
        note.receiver, note.group_key, {"alertname": HOSTILE}, "firing", note.alerts, "", "k"
    )
    strings = list(texts(payload(kind, note)))
    for dangerous in ("<!channel>", "@everyone", "<@1", "<img"):
        assert not any(dangerous in text for text in strings), (dangerous, strings)
    if kind is ReceiverType.SLACK:
        assert any("&lt;!channel&gt;" in text for text in strings)


def test_slack_escapes_control_characters_and_links_of_telemetry() -> None:
    note = notification(alert(annotations={"summary": "a & b <http://evil|click>"}))
    text = payload(ReceiverType.SLACK, note)["blocks"][1]["text"]["text"]
    assert "a &amp; b &lt;http://evil|click&gt;" in text


@pytest.mark.parametrize("kind", [ReceiverType.MATTERMOST, ReceiverType.DISCORD])
def test_markdown_links_and_images_in_telemetry_are_escaped(kind: ReceiverType) -> None:
    note = notification(alert(annotations={"summary": "![x](http://tracker/p.png) [y](http://z)"}))
    body = payload(kind, note)
    for attachment in body.get("attachments", []):
        del attachment["fallback"]  # plain text (notifications), not markdown
    strings = list(texts(body))
    assert any("\\[y\\](http://z)" in text for text in strings)
    assert not any("](" in text and "\\]" not in text for text in strings)


@pytest.mark.parametrize("kind", CHAT_TYPES)
def test_links_that_are_not_http_are_left_out(kind: ReceiverType) -> None:
    note = notification(alert(generator_url="javascript:alert(1)"))
    assert not any("javascript:" in text for text in texts(payload(kind, note)))


# --- Limits -------------------------------------------------------------------------------------


def assert_discord_limits(body: Any) -> None:
    assert utf16(body["content"]) <= 2000
    assert len(body["embeds"]) <= 10
    total = 0
    for embed in body["embeds"]:
        assert utf16(embed["title"]) <= 256
        assert utf16(embed.get("description", "")) <= 4096
        assert len(embed["fields"]) <= 25
        for field in embed["fields"]:
            assert 0 < utf16(field["name"]) <= 256
            assert 0 < utf16(field["value"]) <= 1024
        parts = [embed["title"], embed.get("description", "")]
        parts += [text for f in embed["fields"] for text in (f["name"], f["value"])]
        total += sum(utf16(text) for text in parts)
    assert total <= 6000


def test_discord_fits_its_limits_with_50_alerts_and_long_labels() -> None:
    body = payload(ReceiverType.DISCORD, many_long_alerts())
    assert_discord_limits(body)
    assert len(body["embeds"]) == 10
    assert "and 40 more alerts" in body["content"]
    assert all(embed["title"].endswith("…") for embed in body["embeds"])


@settings(max_examples=40, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=30),
    text=st.text(min_size=0, max_size=3000),
)
def test_discord_limits_hold_for_any_text(count: int, text: str) -> None:
    alerts = [
        alert(labels={"alertname": text or "a", "service": text}, annotations={"summary": text})
        for _ in range(count)
    ]
    assert_discord_limits(payload(ReceiverType.DISCORD, notification(*alerts)))


def test_slack_fits_its_limits_with_50_alerts_and_long_labels() -> None:
    body = payload(ReceiverType.SLACK, many_long_alerts())
    blocks = body["blocks"]
    assert len(blocks) <= 50
    assert len(blocks[0]["text"]["text"]) <= 150
    sections = [b for b in blocks if b["type"] == "section"]
    assert len(sections) == 10
    assert all(len(b["text"]["text"]) <= 3000 for b in sections)
    assert len(body["text"]) <= 3000
    assert any("and 40 more alerts" in str(b) for b in blocks)


def test_slack_cuts_never_split_an_escape() -> None:
    note = notification(alert(annotations={"summary": "&" * 5000, "description": "<" * 5000}))
    body = payload(ReceiverType.SLACK, note)
    for text in [body["text"], *(b["text"]["text"] for b in body["blocks"][1:2])]:
        assert not re.search(r"&(?!amp;|lt;|gt;)", text), text[-40:]


def test_markdown_cuts_never_leave_a_dangling_backslash() -> None:
    note = notification(alert(annotations={"summary": "*" * 5000, "description": "_" * 9000}))
    for embed in payload(ReceiverType.DISCORD, note)["embeds"]:
        for text in (embed["title"], embed["description"]):
            assert text.endswith("…")
            assert not re.search(r"(?<!\\)(\\\\)*\\…$", text)


def test_mattermost_shows_ten_alerts_and_counts_the_rest() -> None:
    body = payload(ReceiverType.MATTERMOST, many_long_alerts())
    assert len(body["attachments"]) == 10
    assert "and 40 more alerts" in body["text"]
    assert all(len(a["text"]) <= 4000 for a in body["attachments"])


def test_teams_stays_under_its_28_kb_limit() -> None:
    message = render(receiver(ReceiverType.TEAMS), many_long_alerts(), now=NOW)
    assert len(message.body) <= 28_000
    card = json.loads(message.body)["attachments"][0]["content"]
    assert "more alert" in card["body"][-1]["text"]
