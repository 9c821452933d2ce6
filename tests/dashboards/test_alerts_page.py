"""The alerts page (`/alerts`) and the overview's "Alerts firing" card over plain HTTP: the
empty state, rules, alerts, silences, history, deliveries and receivers, with names from
telemetry escaped, webhook URLs masked and no inline script.

Evaluation runs once at start (MESHLENS_EVAL_INTERVAL=1h); alerts, history and the outbox are
written straight into the tables.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import uuid
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from alerting.notify.destinations import mask_url
from harness.postgres import DatabaseFactory
from harness.waiting import wait_until
from tests.support import RunningServer, running_server

XSS = "<img src=x onerror=alert(1)>"
SECRET_URL = "https://hooks.slack.com/services/T123/B456/PAGESECRETXYZ"
SECTIONS = ("alerts-firing", "alerts-rules", "alerts-history", "alerts-silences",
            "alerts-deliveries", "alerts-receivers")  # fmt: skip


@pytest.fixture(scope="module")
def server(
    databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    log_path = tmp_path_factory.mktemp("alerts-page") / "meshlens.log"
    with running_server(databases.create(), log_path, MESHLENS_EVAL_INTERVAL="1h") as running:
        wait_until(
            lambda: "last round" in httpx.get(f"{running.web}/alerts", timeout=10).text,
            timeout=30,
            what="the first evaluation round",
            every=0.1,
        )
        yield running


@pytest.fixture(scope="module")
def web(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.web, timeout=30) as client:
        yield client


class Page(HTMLParser):
    """Script tags, event-handler attributes, and the text of each element with an id."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[dict[str, str | None]] = []
        self.inline = ""
        self.handlers: list[str] = []
        self.ids: dict[str, str] = {}
        self.classes: dict[str, str] = {}
        self._open: list[str | None] = []
        self._in_script = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_data(" ")  # elements apart, as a browser shows them
        attributes = dict(attrs)
        self.handlers += [name for name in attributes if name.startswith("on")]
        if tag == "script":
            self.scripts.append(attributes)
            self._in_script = True
        if tag in ("img", "br", "input", "meta", "link"):
            return
        element_id = attributes.get("id")
        if element_id:
            self.ids[element_id] = ""
            self.classes[element_id] = attributes.get("class") or ""
        self._open.append(element_id)

    def handle_endtag(self, tag: str) -> None:
        self.handle_data(" ")
        if tag == "script":
            self._in_script = False
        if tag not in ("img", "br", "input", "meta", "link") and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline += data.strip()
            return
        for element_id in self._open:
            if element_id:
                self.ids[element_id] += data


def get_page(web: httpx.Client, path: str) -> tuple[str, Page]:
    answer = web.get(path)
    assert answer.status_code == 200, answer.text
    assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
    page = Page(answer.text)
    assert page.inline == ""
    assert all(script.get("src") for script in page.scripts)
    assert page.handlers == []
    return answer.text, page


def text_of(page: Page, element_id: str) -> str:
    return re.sub(r"\s+", " ", page.ids[element_id]).strip()


def execute(server: RunningServer, sql: str, params: Any = None) -> None:
    with psycopg.connect(server.database_url) as conn:
        conn.execute(sql, params)


def test_without_rules_the_page_says_how_to_add_them(
    web: httpx.Client, server: RunningServer
) -> None:
    _, page = get_page(web, "/alerts")
    empty = text_of(page, "alerts-empty")
    assert "No alert rules yet" in empty
    assert "MESHLENS_RULES_FILE" in empty
    assert "{{ $labels.service }} fails {{ $value | humanizePercentage }}" in empty
    assert f"curl -X POST {server.web}/api/v1/rules" in empty
    for section in SECTIONS:
        assert section in page.ids
    assert "Nothing is firing or pending." in text_of(page, "alerts-firing")
    assert "Rules are evaluated every 1h; last round" in text_of(page, "alerts-status")


def test_the_page_shows_rules_alerts_and_deliveries(
    web: httpx.Client, server: RunningServer
) -> None:
    receiver = {"name": "oncall", "type": "slack", "url": SECRET_URL}
    assert web.post("/api/v1/receivers", json=receiver).status_code == 201
    rule = {
        "name": "CheckoutErrors",
        "signal": "error_rate",
        "scope": "service",
        "matchers": ['service=~"check.*"'],
        "condition": "> 5%",
        "for": "2m",
        "severity": "critical",
        "receivers": ["oncall"],
    }
    assert web.post("/api/v1/rules", json=rule).status_code == 201
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    since = now - dt.timedelta(minutes=7)
    labels = {"alertname": "CheckoutErrors", "severity": "critical", "service": XSS}
    execute(
        server,
        "INSERT INTO alert_states (rule, fingerprint, labels, annotations, state, value,"
        " active_at, fired_at, last_true_at, evaluated_at, generator_url)"
        " VALUES ('CheckoutErrors', 'f1', %s, %s, 'firing', 0.125, %s, %s, %s, %s, %s)",
        (
            Jsonb(labels),
            Jsonb({"summary": f"{XSS} fails"}),
            since,
            since,
            now,
            now,
            "http://meshlens.example:8080/services/checkout?window=5m",
        ),
    )
    execute(
        server,
        "INSERT INTO alert_history (rule, fingerprint, labels, state, value, at)"
        " VALUES ('CheckoutErrors', 'f1', %s, 'firing', 0.125, %s)",
        (Jsonb(labels), since),
    )
    execute(
        server,
        "INSERT INTO alert_silences (id, matchers, starts_at, ends_at, created_by, comment)"
        " VALUES (%s, %s, %s, %s, 'ana', %s)",
        (
            uuid.uuid4(),
            Jsonb([{"name": "service", "op": "=", "value": XSS}]),
            now - dt.timedelta(minutes=1),
            now + dt.timedelta(hours=2),
            f"quiet {XSS}",
        ),
    )
    execute(
        server,
        "INSERT INTO notification_outbox (idempotency_key, receiver, group_key, status,"
        " notification, state, attempts, next_attempt_at, last_error, created_at)"
        " VALUES ('k1', 'oncall', 'g', 'firing', %s, 'failed', 1, %s, %s, %s)",
        (Jsonb({"alerts": [{}]}), now, f"HTTP 404 from {SECRET_URL}", now),
    )
    try:
        text, page = get_page(web, "/alerts")
        assert "alerts-empty" not in page.ids
        assert XSS not in text
        assert html.escape(XSS, quote=False) in text
        assert "PAGESECRETXYZ" not in text

        firing = text_of(page, "alerts-firing")
        assert "firing silenced CheckoutErrors 12.5 % 7m ago" in firing
        assert f"service={XSS}" in firing
        assert f"{XSS} fails" in firing
        assert 'href="/services/checkout?window=5m"' in text
        rules = text_of(page, "alerts-rules")
        assert (
            'CheckoutErrors error_rate service (service=~"check.*") > 0.05 over 5m 2m critical'
            " oncall api 1 0" in rules
        )
        assert "CheckoutErrors firing 12.5 %" in text_of(page, "alerts-history")
        silences = text_of(page, "alerts-silences")
        assert f'service="{XSS}"' in silences
        assert f"ana quiet {XSS}" in silences
        deliveries = text_of(page, "alerts-deliveries")
        assert "oncall firing 1 failed 1" in deliveries
        assert f"HTTP 404 from {mask_url(SECRET_URL)}" in deliveries
        assert mask_url(SECRET_URL) in text_of(page, "alerts-receivers")
        assert "1" in text_of(page, "alerts-cards")

        overview_text, overview = get_page(web, "/")
        card = text_of(overview, "alerts-card")
        assert card.startswith("Alerts firing 1 0 pending")
        assert "bad" in overview.classes["alerts-card"].split()
        assert 'href="/alerts?window=15m" id="alerts-card"' in overview_text
    finally:
        execute(server, "DELETE FROM alert_states")
        assert web.delete("/api/v1/rules/CheckoutErrors").status_code == 204


def test_the_overview_card_without_alerts(web: httpx.Client) -> None:
    _, overview = get_page(web, "/")
    assert text_of(overview, "alerts-card").startswith("Alerts firing 0 0 pending")
    assert "bad" not in overview.classes["alerts-card"].split()
