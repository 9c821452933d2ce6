"""Where an on-call engineer reads a rate, the pages say when it is only a lower bound: Chromium
(headless, through Playwright) on a `meshlens serve` fed Istio sidecar spans and metrics.

- web -> shop: Envoy spans only, no sampling rate declared: every rate of shop is marked
  "sampled, rate unknown (lower bound)" (service page card, its tables, the map's edge table and
  hover text).
- web -> ledger: Envoy spans and Istio's `istio_requests_total`: ledger's rate comes from the
  metrics and is not marked; its versions (from spans only) are.
Each test leaves a full-page screenshot in `tests/artifacts/screenshots/`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

from dashboards.formatting import SAMPLED
from harness.postgres import DatabaseFactory
from harness.waiting import wait_until
from tests.browser_support import CHROMIUM_ARGS, VIEWPORT, Tab, ensure_chromium, screenshot_path
from tests.collector.proxy_spans import CLIENT, SERVER, envoy, outbound, send
from tests.dashboards.test_dashboards_browser import figure_traces, node_points, point_on_screen
from tests.metric_payloads import MetricSpec, Point, istio_labels, metrics_request
from tests.support import FAST_DERIVATION, RunningServer, running_server

S, MS = 1_000_000_000, 1_000_000
WEB, SHOP, LEDGER = "web", "shop", "ledger"


def _envoy_calls(server: RunningServer, caller: str, callee: str, count: int) -> None:
    now = time.time_ns()
    specs = []
    for n in range(count):
        trace, client, answer = os.urandom(16), os.urandom(8), os.urandom(8)
        status = "503" if n % 10 == 0 else "200"
        specs += [
            envoy(caller, CLIENT, (trace, client, b""), outbound(callee), start=now + n * MS,
                  duration_ns=12 * MS, status=status),
            envoy(callee, SERVER, (trace, answer, client), "inbound|8080||",
                  start=now + n * MS + MS, duration_ns=10 * MS, status=status),
        ]  # fmt: skip
    send(server, specs)


def _istio_metrics(server: RunningServer, caller: str, callee: str) -> None:
    at = time.time_ns() - 30 * S
    ok, failed = istio_labels(caller, callee), istio_labels(caller, callee, response_code="503")
    request = metrics_request(
        {"service.name": "istio-proxies", "service.instance.id": f"{callee}:15090"},
        [MetricSpec("istio_requests_total", "sum",
                    [Point(ok, at, at - 20 * S, 430), Point(failed, at, at - 20 * S, 17)])],
    )  # fmt: skip
    answer = httpx.post(
        f"{server.otlp_http}/v1/metrics",
        content=request.SerializeToString(),
        headers={"content-type": "application/x-protobuf"},
    )
    assert answer.status_code == 200, answer.text


def _counted(server: RunningServer) -> dict[str, int]:
    answer = httpx.get(f"{server.web}/api/v1/services", timeout=10).json()
    return {s["name"]: s["requests"] for s in answer["services"]}


@pytest.fixture(scope="module")
def server(
    databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    log = tmp_path_factory.mktemp("sampling-pages") / "meshlens.log"
    with running_server(databases.create(), log, **FAST_DERIVATION) as running:
        _envoy_calls(running, WEB, SHOP, 40)
        _envoy_calls(running, WEB, LEDGER, 20)
        _istio_metrics(running, WEB, LEDGER)
        wanted = {SHOP: 40, LEDGER: 447}
        wait_until(
            lambda: all(_counted(running).get(k) == v for k, v in wanted.items()),
            timeout=30,
            what=lambda: f"{wanted}, have {_counted(running)}",
        )
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=ensure_chromium(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def tab(browser: Browser, server: RunningServer, request: pytest.FixtureRequest) -> Iterator[Tab]:
    context = browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(15_000)
    try:
        opened = Tab(context.new_page(), server.web, screenshot_path(request.node.name))
        yield opened
        if not opened.screenshots:
            opened.screenshot()
    finally:
        context.close()


def _edge_row_rate(tab: Tab, table: str, source: str, target: str) -> str:
    rows = tab.page.locator(f"#{table} tbody tr")
    for n in range(rows.count()):
        cells = rows.nth(n).locator("td")
        if (cells.nth(0).inner_text().strip(), cells.nth(1).inner_text().strip()) == (
            source,
            target,
        ):
            return cells.nth(2).inner_text()
    raise AssertionError(f"no row {source} -> {target} in #{table}")


def test_the_service_page_marks_a_sampled_rate(tab: Tab) -> None:
    tab.open(f"/services/{SHOP}")
    card = tab.page.locator("#rate-card")
    assert card.locator(".value").inner_text().startswith("≥ ")
    marker = card.locator(".sampled")
    assert marker.is_visible()
    assert marker.inner_text().strip() == SAMPLED
    assert "100 % of these requests" in (marker.get_attribute("title") or "")
    assert SAMPLED in _edge_row_rate(tab, "upstream-table", WEB, SHOP)
    versions = tab.page.locator("#versions-table tbody tr").first
    assert SAMPLED in versions.inner_text()
    assert "lower bound" in (tab.page.locator("#service-rps .gtitle").text_content() or "")
    tab.screenshot()
    tab.assert_clean()


def test_a_service_counted_from_mesh_metrics_is_not_marked(tab: Tab) -> None:
    tab.open(f"/services/{LEDGER}")
    card = tab.page.locator("#rate-card")
    assert card.locator(".sampled").count() == 0
    assert "447 requests · from mesh metrics" in card.inner_text()
    assert "from the mesh's metrics" in tab.page.locator("#counted-from").inner_text()
    assert SAMPLED not in _edge_row_rate(tab, "upstream-table", WEB, LEDGER)
    assert SAMPLED in tab.page.locator("#versions-table tbody tr").first.inner_text()  # spans
    tab.screenshot()
    tab.assert_clean()


def _hover_label(tab: Tab, name: str) -> str:
    trace, index, _ = node_points(figure_traces(tab.page, "service-map"))[name]
    x, y = point_on_screen(tab.page, "service-map", trace, index)
    tab.page.mouse.move(x, y)
    label = tab.page.locator("#service-map .hoverlayer .hovertext")
    label.first.wait_for(state="visible")
    return label.first.text_content() or ""


def test_the_map_marks_sampled_rates_in_its_edge_table_and_hover_text(tab: Tab) -> None:
    tab.open("/map")
    assert SAMPLED in _edge_row_rate(tab, "map-edges", WEB, SHOP)
    assert SAMPLED not in _edge_row_rate(tab, "map-edges", WEB, LEDGER)
    traces: list[dict[str, Any]] = figure_traces(tab.page, "service-map")
    edge_hovers = [t for trace in traces if str(trace.get("uid", "")).startswith("edge-hover:")
                   for t in trace["hovertext"]]  # fmt: skip
    to_shop = next(text for text in edge_hovers if text.startswith(f"<b>{WEB} → {SHOP}</b>"))
    assert SAMPLED in to_shop
    tab.page.locator("#service-map").scroll_into_view_if_needed()
    shown = _hover_label(tab, SHOP)
    assert SAMPLED in shown
    assert shown.startswith(SHOP)
    tab.screenshot()
    assert "counted from mesh metrics" in _hover_label(tab, LEDGER)
    tab.assert_clean()


def test_the_overview_marks_sampled_rates(tab: Tab) -> None:
    tab.open("/")
    rows = {
        row.locator("td").first.inner_text().strip(): row.locator("td").nth(1).inner_text()
        for row in tab.page.locator("#services-table tbody tr").all()
    }
    assert SAMPLED in rows[SHOP]
    assert SAMPLED not in rows[LEDGER]
    mesh = tab.page.locator("#overview-cards .card").first  # shop's spans are in the mesh's
    assert mesh.locator(".value").inner_text().startswith("≥ ")
    assert mesh.locator(".sampled").is_visible()
    tab.screenshot()
    tab.assert_clean()
