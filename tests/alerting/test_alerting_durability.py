"""Alerting across crashes and processes: a notification whose delivery was cut short by
SIGKILL is delivered after the restart, a firing alert is neither forgotten nor re-sent, and
two meshlens processes on one database evaluate each rule once."""

from __future__ import annotations

import time
from pathlib import Path

from harness.postgres import DatabaseFactory
from harness.waiting import wait_until
from harness.webhook_sink import Reply, WebhookSink
from tests.alerting_scenario import (
    ALERTING_FAST,
    error_rule,
    history,
    rounds,
    send_requests,
    write_rules,
)
from tests.support import running_server, start_server, stop_server


def test_sigkill_during_delivery_loses_nothing_and_sends_nothing_twice(
    databases: DatabaseFactory, tmp_path: Path
) -> None:
    url = databases.create()
    with WebhookSink([Reply(200, delay=60)]) as sink:  # the first delivery hangs
        rules = write_rules(
            tmp_path / "rules.yaml",
            [{"name": "am", "type": "webhook", "url": sink.url}],
            [error_rule("Crash", "pay-k", ["am"])],
        )
        env = {**ALERTING_FAST, "MESHLENS_RULES_FILE": str(rules)}
        first = start_server(url, tmp_path / "first.log", **env)
        try:
            send_requests(first, "pay-k", ok=0, failed=20)
            sink.wait_for(1, timeout=30)  # committed, and being delivered
        finally:
            first.process.kill()  # SIGKILL: no shutdown, the delivery's transaction is lost
            first.process.wait()
        assert first.query("SELECT state FROM notification_outbox") == [("pending",)]
        with running_server(url, tmp_path / "second.log", **env) as second:
            requests = sink.wait_for(2, timeout=30)
            assert requests[0].body == requests[1].body
            assert requests[0].headers["idempotency-key"] == requests[1].headers["idempotency-key"]
            wait_until(
                lambda: second.query("SELECT 1 FROM notification_outbox WHERE state = 'delivered'"),
                timeout=20,
                what="delivered after the restart",
            )
            time.sleep(3)  # several rounds of the new process
            assert len(sink.requests) == 2  # the firing alert is not notified again
            assert history(second, "Crash") == ["pending", "firing"]
            assert second.query("SELECT state FROM alert_states") == [("firing",)]


def test_two_processes_evaluate_each_rule_once(databases: DatabaseFactory, tmp_path: Path) -> None:
    url = databases.create()
    with WebhookSink() as sink:
        rules = write_rules(
            tmp_path / "rules.yaml",
            [{"name": "am", "type": "webhook", "url": sink.url}],
            [error_rule(f"Twin{n}", f"pay-t{n}", ["am"]) for n in range(5)],
        )
        env = {**ALERTING_FAST, "MESHLENS_RULES_FILE": str(rules)}
        with (
            running_server(url, tmp_path / "a.log", **env) as a,
            running_server(url, tmp_path / "b.log", **env) as b,
        ):
            for n in range(5):
                send_requests(a if n % 2 else b, f"pay-t{n}", ok=0, failed=20)
            sink.wait_for(5, timeout=30)
            time.sleep(3)
            assert len(sink.requests) == 5
            for n in range(5):
                assert history(a, f"Twin{n}") == ["pending", "firing"]
            leaders = [rounds(server) for server in (a, b)]
            assert sorted(value > 0 for value in leaders) == [False, True]
            stop_server(a if leaders[0] > 0 else b)  # the evaluator dies: the other takes over
            survivor = b if leaders[0] > 0 else a
            before = rounds(survivor)
            wait_until(
                lambda: rounds(survivor) > before + 2, timeout=20, what="the survivor evaluates"
            )
