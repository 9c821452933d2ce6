"""A service and a database of one name, sent through the real OTLP/HTTP receiver: two nodes and
two edges with exact counts, in the API and on the pages.

`shop` (OpenTelemetry SDK) serves 6 requests; each calls the service `redis` once (an
instrumented proxy in front of Redis, tracing its own SERVER spans) and sends two commands
straight to the database `redis` (CLIENT spans shaped as the semantic conventions'
docs/database/redis.md, open-telemetry/semantic-conventions v1.26.0: `db.system=redis`, span name
the command, `db.statement` the CLI syntax; `server.address=redis` names the host). The proxy
fails the first call; the first command fails.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from opentelemetry.propagate import extract, inject
from opentelemetry.trace import SpanKind, Status, StatusCode
from playwright.sync_api import sync_playwright

from harness.postgres import DatabaseFactory
from harness.waiting import wait_until
from tests.browser_support import CHROMIUM_ARGS, VIEWPORT, Tab, ensure_chromium, screenshot_path
from tests.support import FAST_DERIVATION, RunningServer, running_server, sdk_provider

REQUESTS = 6
COMMANDS = 2  # per request
PAIRING_WINDOW = float(FAST_DERIVATION["MESHLENS_PAIRING_WINDOW_SECONDS"])

EXPECTED_EDGES = {  # (source, source type, target, target type): (requests, errors)
    ("user", "client", "shop", "service"): (REQUESTS, 0),
    ("shop", "service", "redis", "service"): (REQUESTS, 1),
    ("shop", "service", "redis", "database"): (REQUESTS * COMMANDS, 1),
}


def _send(server: RunningServer) -> None:
    shop = sdk_provider(server, "shop", "1.0")
    proxy = sdk_provider(server, "redis", "7.2")
    try:
        for number in range(REQUESTS):
            with shop.get_tracer("shop").start_as_current_span(
                "GET /cart", kind=SpanKind.SERVER, attributes={"http.route": "/cart"}
            ):
                with shop.get_tracer("shop").start_as_current_span(
                    "GET", kind=SpanKind.CLIENT, attributes={"server.address": "redis"}
                ) as call:
                    headers: dict[str, str] = {}
                    inject(headers)
                    with proxy.get_tracer("redis").start_as_current_span(
                        "GET /session", context=extract(headers), kind=SpanKind.SERVER
                    ) as served:
                        if number == 0:
                            served.set_status(Status(StatusCode.ERROR, "backend down"))
                            served.set_attribute("http.response.status_code", 503)
                    if number == 0:
                        call.set_attribute("http.response.status_code", 503)
                for command in range(COMMANDS):
                    with shop.get_tracer("shop").start_as_current_span(
                        "HMSET myhash",
                        kind=SpanKind.CLIENT,
                        attributes={
                            "db.system": "redis",
                            "db.statement": "HMSET myhash field1 'Hello'",
                            "server.address": "redis",
                            "server.port": 6379,
                        },
                    ) as sent:
                        if number == 0 and command == 0:
                            sent.set_status(Status(StatusCode.ERROR, "WRONGTYPE"))
    finally:
        for provider in (shop, proxy):
            provider.force_flush()
            provider.shutdown()


def _graph(server: RunningServer) -> dict[str, Any]:
    answer = httpx.get(f"{server.web}/api/v1/graph", params={"window": "15m"}, timeout=10)
    assert answer.status_code == 200, answer.text
    graph: dict[str, Any] = answer.json()
    return graph


def _counted(graph: dict[str, Any]) -> dict[tuple[str, str, str, str], tuple[int, int]]:
    return {
        (e["source"], e["source_type"], e["target"], e["target_type"]): (e["requests"], e["errors"])
        for e in graph["edges"]
    }


@pytest.fixture(scope="module")
def server(
    databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    log = tmp_path_factory.mktemp("same-name") / "meshlens.log"
    with running_server(databases.create(), log, **FAST_DERIVATION) as running:
        _send(running)
        seen: list[object] = []

        def complete() -> bool:
            seen.append(_counted(_graph(running)))
            return seen[-1] == EXPECTED_EDGES

        wait_until(complete, timeout=30, what=lambda: f"{EXPECTED_EDGES}, not {seen[-1]}")
        time.sleep(PAIRING_WINDOW + 2)  # past the pairing window: no half may count again
        yield running


def test_two_nodes_and_two_edges_with_exact_counts(server: RunningServer) -> None:
    graph = _graph(server)
    assert _counted(graph) == EXPECTED_EDGES
    nodes = [(n["id"], n["name"], n["type"], n["requests"], n["errors"]) for n in graph["nodes"]]
    assert nodes == [
        ("redis", "redis", "service", REQUESTS, 1),
        ("database:redis", "redis", "database", REQUESTS * COMMANDS, 1),
        ("shop", "shop", "service", REQUESTS, 0),
        ("user", "user", "client", 0, 0),
    ]
    ends = {(e["source_id"], e["target_id"]) for e in graph["edges"]}
    assert ends == {("user", "shop"), ("shop", "redis"), ("shop", "database:redis")}
    by_id = {n["id"]: n for n in graph["nodes"]}
    assert by_id["redis"]["signals_from"] == "entry-spans"
    assert by_id["database:redis"]["signals_from"] == "inbound-edges"

    detail = httpx.get(f"{server.web}/api/v1/services/redis", params={"window": "15m"}).json()
    assert (detail["type"], detail["requests"], detail["errors"]) == ("service", REQUESTS, 1)
    assert [(e["source"], e["target_type"]) for e in detail["upstream"]] == [("shop", "service")]
    database = httpx.get(
        f"{server.web}/api/v1/services/redis", params={"window": "15m", "type": "database"}
    ).json()
    assert (database["type"], database["requests"], database["errors"]) == ("database", 12, 1)
    assert [(e["source"], e["target_type"]) for e in database["upstream"]] == [("shop", "database")]
    shop = httpx.get(f"{server.web}/api/v1/services/shop", params={"window": "15m"}).json()
    downstream = {(e["target"], e["target_type"]): e["requests"] for e in shop["downstream"]}
    assert downstream == {("redis", "service"): REQUESTS, ("redis", "database"): 12}


def test_the_pages_draw_both(server: RunningServer) -> None:
    with httpx.Client(base_url=server.web, timeout=30) as web:
        page = web.get("/map")
        assert page.status_code == 200
        rows = page.text.split('id="map-edges"')[1]
        assert rows.count('<span class="type-tag">database</span>') == 1
        assert rows.count('href="/services/redis?window=15m"') == 1
        database = web.get("/services/redis", params={"type": "database"})
        assert database.status_code == 200
        assert '<span class="type-tag">database</span>' in database.text.split("</h1>")[0]
        assert "12 requests" in database.text
        service = web.get("/services/redis")
        assert service.status_code == 200
        assert "type-tag" not in service.text.split("</h1>")[0]
        assert f"{REQUESTS} requests" in service.text
        assert web.get("/services/redis", params={"type": "messaging"}).status_code == 404
        mtls = web.get("/mtls")
        assert mtls.status_code == 200
        coverage = mtls.text.split('id="service-coverage-table"')[1].split("</table>")[0]
        assert coverage.count('data-value="redis"') == 2
        assert coverage.count('<span class="type-tag">database</span>') == 1
        assert "database:redis" in mtls.text  # the coverage line of the database


def test_the_map_in_a_browser(server: RunningServer, request: pytest.FixtureRequest) -> None:
    """The map page draws a node point per (name, type) and a line per edge, cleanly."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=ensure_chromium(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="UTC")
            context.set_default_timeout(15_000)
            tab = Tab(context.new_page(), server.web, screenshot_path(request.node.name))
            tab.open("/map")
            traces: list[dict[str, Any]] = tab.page.evaluate(
                "() => JSON.parse(JSON.stringify(document.getElementById('service-map').data))"
            )
            points = sorted(
                (str(trace["uid"]), html.unescape(label), trace["customdata"][index])
                for trace in traces
                if str(trace.get("uid", "")).startswith("nodes:")
                for index, label in enumerate(trace["text"])
            )
            assert points == [
                ("nodes:client", "user", None),
                ("nodes:database", "redis", None),
                ("nodes:service", "redis", f"/services/{quote('redis')}?window=15m"),
                ("nodes:service", "shop", "/services/shop?window=15m"),
            ]
            lines = sum(
                trace["x"].count(None) + 1
                for trace in traces
                if str(trace.get("uid", "")).startswith("edges:")
            )
            assert lines == len(EXPECTED_EDGES)
            tab.screenshot()
            tab.assert_clean()
        finally:
            browser.close()
