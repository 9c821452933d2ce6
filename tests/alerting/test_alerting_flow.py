"""Alerting end to end: a real `meshlens serve`, spans over OTLP, rules from a file, real HTTP
servers standing in for Slack, Mattermost, Discord, Teams and an Alertmanager receiver."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.postgres import DatabaseFactory
from harness.waiting import wait_until
from harness.webhook_sink import WebhookSink
from tests.alerting_scenario import (
    ALERTING_FAST,
    error_rule,
    history,
    rounds,
    send_plaintext_call,
    send_requests,
    write_rules,
)
from tests.support import RunningServer, running_server

CHATS = ("slack", "mattermost", "discord", "teams", "webhook")


@pytest.fixture(scope="module")
def sinks() -> Iterator[dict[str, WebhookSink]]:
    names = (*CHATS, "flaky", "broken", "silenced", "mtls", "deleted")
    opened = {name: WebhookSink() for name in names}
    opened["flaky"].push(500, 500, 200)
    opened["broken"].push(400)
    yield opened
    for sink in opened.values():
        sink.close()


@pytest.fixture(scope="module")
def server(
    databases: DatabaseFactory,
    tmp_path_factory: pytest.TempPathFactory,
    sinks: dict[str, WebhookSink],
) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("alerting")
    receivers = [{"name": name, "type": name, "url": sinks[name].url} for name in CHATS]
    receivers += [
        {"name": name, "type": "webhook", "url": sinks[name].url}
        for name in ("flaky", "broken", "silenced", "mtls", "deleted")
    ]
    rules = [
        error_rule("PayFails", "pay-a", CHATS),
        error_rule("FlakyReceiver", "pay-b", ["flaky"]),
        error_rule("BrokenReceiver", "pay-c", ["broken"]),
        error_rule("LowTraffic", "pay-d", ["webhook"]),
        error_rule("Silenced", "pay-e", ["silenced"]),
        {
            "name": "PlaintextEdge",
            "signal": "mtls_coverage",
            "scope": "edge",
            "matchers": {"source": "web-f"},
            "condition": "< 1",
            "window": "1m",
            "receivers": ["mtls"],
            "group_wait": "0s",
        },
    ]
    path = write_rules(folder / "rules.yaml", receivers, rules)
    env = {**ALERTING_FAST, "MESHLENS_RULES_FILE": str(path)}
    with running_server(databases.create(), folder / "meshlens.log", **env) as running:
        yield running


def test_a_rule_fires_then_resolves_in_each_chat_format(
    server: RunningServer, sinks: dict[str, WebhookSink]
) -> None:
    send_requests(server, "pay-a", ok=0, failed=20)
    for name in CHATS:
        sinks[name].wait_for(1, timeout=30)
    assert history(server, "PayFails")[:2] == ["pending", "firing"]
    firing = {name: sinks[name].requests[0].json() for name in CHATS}
    assert set(firing["slack"]) >= {"text", "blocks"}
    assert "attachments" in firing["mattermost"]
    assert "blocks" not in firing["mattermost"]
    assert len(firing["discord"]["content"]) <= 2000
    assert firing["discord"]["embeds"]
    card = firing["teams"]["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    webhook = firing["webhook"]
    assert (webhook["version"], webhook["status"]) == ("4", "firing")
    assert set(webhook) == {
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
    (alert,) = webhook["alerts"]
    assert (alert["labels"]["service"], alert["labels"]["alertname"]) == ("pay-a", "PayFails")
    assert alert["annotations"]["summary"] == "pay-a fails 100% of requests"
    assert "/services/pay-a" in alert["generatorURL"]
    assert "pay-a" in firing["slack"]["text"]

    send_requests(server, "pay-a", ok=400, failed=0)  # 20 of 420 fail: under a half
    for name in CHATS:
        sinks[name].wait_for(2, timeout=30)
    resolved = sinks["webhook"].requests[1].json()
    assert resolved["status"] == "resolved"
    assert resolved["alerts"][0]["status"] == "resolved"
    assert history(server, "PayFails")[-1] == "resolved"
    assert "resolved" in sinks["slack"].requests[1].json()["text"].lower()
    for name in CHATS:  # once each way, nothing more
        assert len(sinks[name].requests) == 2, name


def test_a_failing_receiver_gets_exactly_one_successful_delivery(
    server: RunningServer, sinks: dict[str, WebhookSink]
) -> None:
    send_requests(server, "pay-b", ok=0, failed=20)
    requests = sinks["flaky"].wait_for(3, timeout=45)
    keys = {request.headers["idempotency-key"] for request in requests}
    assert len(keys) == 1  # the same notification, retried
    rows = wait_until(
        lambda: server.query(
            "SELECT o.state, o.attempts FROM notification_outbox o "
            "WHERE o.receiver = 'flaky' AND o.state = 'delivered'"
        ),
        timeout=20,
        what="the flaky receiver's notification delivered",
    )
    assert rows == [("delivered", 3)]
    outcomes = server.query(
        "SELECT a.outcome, a.status_code FROM delivery_attempts a JOIN notification_outbox o "
        "ON o.id = a.outbox_id WHERE o.receiver = 'flaky' ORDER BY a.id"
    )
    assert outcomes == [("retry", 500), ("retry", 500), ("delivered", 200)]


def test_a_receiver_answering_400_is_not_retried(
    server: RunningServer, sinks: dict[str, WebhookSink]
) -> None:
    send_requests(server, "pay-c", ok=0, failed=20)
    sinks["broken"].wait_for(1, timeout=30)
    wait_until(
        lambda: server.query(
            "SELECT 1 FROM notification_outbox WHERE receiver = 'broken' AND state = 'failed'"
        ),
        timeout=20,
        what="the broken receiver's notification failed",
    )
    assert server.query("SELECT attempts FROM notification_outbox WHERE receiver = 'broken'") == [
        (1,)
    ]
    assert len(sinks["broken"].requests) == 1


def test_a_low_traffic_service_stays_quiet(server: RunningServer) -> None:
    send_requests(server, "pay-d", ok=0, failed=5)  # all fail, but under min_requests (10)
    wait_until(
        lambda: server.query("SELECT 1 FROM service_rollups WHERE service = 'pay-d'"),
        timeout=20,
        what="pay-d's requests derived",
    )
    before = rounds(server)
    wait_until(lambda: rounds(server) >= before + 3, timeout=20, what="three more rounds")
    assert history(server, "LowTraffic") == []


def test_a_silence_suppresses_notifications(
    server: RunningServer, sinks: dict[str, WebhookSink]
) -> None:
    now = dt.datetime.now(dt.UTC)
    server.query(
        "INSERT INTO alert_silences (id, matchers, starts_at, ends_at, created_by, comment) "
        "VALUES (%s, %s, %s, %s, 'test', 'maintenance') RETURNING id",
        (
            uuid.uuid4(),
            '[{"name": "service", "op": "=", "value": "pay-e"}]',
            now - dt.timedelta(minutes=1),
            now + dt.timedelta(hours=1),
        ),
    )
    send_requests(server, "pay-e", ok=0, failed=20)
    wait_until(
        lambda: "firing" in history(server, "Silenced"), timeout=20, what="the Silenced rule firing"
    )
    before = rounds(server)
    wait_until(lambda: rounds(server) >= before + 4, timeout=20, what="four more rounds")
    assert sinks["silenced"].requests == []


def test_an_mtls_rule_fires_when_a_plaintext_edge_appears(
    server: RunningServer, sinks: dict[str, WebhookSink]
) -> None:
    send_plaintext_call(server, "web-f", "db-api-f")
    (request,) = sinks["mtls"].wait_for(1, timeout=30)
    (alert,) = request.json()["alerts"]
    assert (alert["labels"]["source"], alert["labels"]["target"]) == ("web-f", "db-api-f")


def test_deleting_a_firing_rule_resolves_its_alerts(
    server: RunningServer, sinks: dict[str, WebhookSink]
) -> None:
    rule = error_rule("MadeThroughTheApi", "pay-g", ["deleted"])
    made = httpx.post(f"{server.web}/api/v1/rules", json=rule, timeout=10)
    assert made.status_code == 201, made.text
    send_requests(server, "pay-g", ok=0, failed=20)
    (firing,) = sinks["deleted"].wait_for(1, timeout=30)
    assert firing.json()["status"] == "firing"
    gone = httpx.delete(f"{server.web}/api/v1/rules/MadeThroughTheApi", timeout=10)
    assert gone.status_code == 204
    resolved = sinks["deleted"].wait_for(2, timeout=30)[1].json()
    assert resolved["status"] == "resolved"
    assert resolved["alerts"][0]["labels"]["service"] == "pay-g"
    assert server.query("SELECT 1 FROM alert_states WHERE rule = 'MadeThroughTheApi'") == []


def test_the_rules_file_is_reloaded_when_it_changes(
    databases: DatabaseFactory, tmp_path: Path, sinks: dict[str, WebhookSink]
) -> None:
    receivers = [{"name": "am", "type": "webhook", "url": sinks["deleted"].url}]
    path = write_rules(tmp_path / "rules.yaml", receivers, [error_rule("First", "x", ["am"])])
    env = {**ALERTING_FAST, "MESHLENS_RULES_FILE": str(path)}
    with running_server(databases.create(), tmp_path / "meshlens.log", **env) as running:
        assert _rule_names(running) == ["First"]
        write_rules(path, receivers, [error_rule("Second", "x", ["am"])])
        wait_until(
            lambda: _rule_names(running) == ["Second"], timeout=20, what="the new file's rules"
        )
        path.write_text("rules:\n  - name: Broken\n    signal: nonsense\n")
        before = rounds(running)
        wait_until(lambda: rounds(running) >= before + 2, timeout=20, what="two more rounds")
        assert _rule_names(running) == ["Second"]  # an invalid change keeps the last rules
        assert "rules file not (re)loaded" in running.log()


def _rule_names(server: RunningServer) -> list[str]:
    answer = httpx.get(f"{server.web}/api/v1/rules", timeout=5).json()
    return [rule["name"] for rule in answer["rules"]]
