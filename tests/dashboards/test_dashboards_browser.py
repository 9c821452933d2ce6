"""The dashboards in a real browser: Playwright driving Debian's Chromium (headless), against
`meshlens serve` holding a known mesh sent through the OpenTelemetry SDK.

Every test records console errors, page errors, failed requests, error answers to
subresources and dialogs, and asserts there were none; each leaves a full-page screenshot in
`tests/artifacts/screenshots/` (or `$MESHLENS_TEST_ARTIFACTS/screenshots/`).
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from harness.postgres import DatabaseFactory
from tests.browser_support import (
    CHROMIUM_ARGS,
    DATABASE,
    REQUESTS,
    VIEWPORT,
    XSS_NAME,
    Scenario,
    Tab,
    ensure_chromium,
    scenario_server,
    screenshot_path,
)

# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, launched by Playwright (never downloaded)."""
    executable = ensure_chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def scenario(
    databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    with scenario_server(databases, tmp_path_factory.mktemp("dashboards-browser")) as known:
        yield known


@pytest.fixture
def tab(browser: Browser, scenario: Scenario, request: pytest.FixtureRequest) -> Iterator[Tab]:
    """A fresh browser context and page for one test; a full-page screenshot at its end."""
    context = browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        opened = Tab(page, scenario.server.web, screenshot_path(request.node.name))
        yield opened
        if not opened.screenshots and page.url.startswith("http"):
            opened.screenshot()
    finally:
        context.close()


# --- helpers -----------------------------------------------------------------------------------


def query_of(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def column_values(page: Page, table: str, index: int) -> list[str]:
    """The `data-value` of column `index` in each data row of `table` (a CSS selector)."""
    values: list[str] = page.eval_on_selector_all(
        f"{table} tbody tr:not(.none)",
        "(rows, i) => rows.map(row => row.cells[i].getAttribute('data-value'))",
        index,
    )
    return values


def figure_traces(page: Page, element_id: str) -> list[dict[str, Any]]:
    """The traces plotly drew in `element_id` (plotly keeps them on the div as `data`)."""
    traces: list[dict[str, Any]] = page.evaluate(
        "id => JSON.parse(JSON.stringify(document.getElementById(id).data))", element_id
    )
    return traces


def node_points(traces: list[dict[str, Any]]) -> dict[str, tuple[int, int, str | None]]:
    """Each node's name -> (trace index, point index, customdata) in the map's node traces."""
    points = {}
    for number, trace in enumerate(traces):
        if not str(trace.get("uid", "")).startswith("nodes:"):
            continue
        for index, label in enumerate(trace["text"]):
            points[html.unescape(label)] = (number, index, trace["customdata"][index])
    return points


def edge_lines(traces: list[dict[str, Any]]) -> int:
    """Lines drawn by the map's edge traces (a trace's segments are separated by nulls)."""
    count = 0
    for trace in traces:
        if str(trace.get("uid", "")).startswith("edges:"):
            xs = trace["x"]
            count += sum(1 for x in xs if x is None) + (1 if xs else 0)
    return count


def point_on_screen(page: Page, element_id: str, trace: int, index: int) -> tuple[float, float]:
    """Viewport pixel position of point `index` of trace `trace` of a plotly figure."""
    position: list[float] = page.evaluate(
        """([id, trace, index]) => {
            const gd = document.getElementById(id);
            const full = gd._fullLayout;
            const box = gd.getBoundingClientRect();
            const point = gd._fullData[trace];
            return [
                box.left + full._size.l + full.xaxis.l2p(point.x[index]),
                box.top + full._size.t + full.yaxis.l2p(point.y[index]),
            ];
        }""",
        [element_id, trace, index],
    )
    return position[0], position[1]


def served(scenario: Scenario) -> int:
    """Requests the mesh served: those into each service (the overview's count)."""
    return sum(node["requests"] for node in scenario.graph["nodes"] if node["type"] == "service")


def no_injected_markup(page: Page) -> None:
    """Nothing the XSS-named service carries became an element or an event handler."""
    found = page.evaluate(
        """() => ({
            images: document.querySelectorAll('img[src="x"], image[href="x"]').length,
            handlers: document.querySelectorAll('[onerror]').length,
        })"""
    )
    assert found == {"images": 0, "handlers": 0}


# --- tests -------------------------------------------------------------------------------------


def shows_overview(tab: Tab, scenario: Scenario) -> None:
    services = {node["id"] for node in scenario.graph["nodes"] if node["type"] == "service"}
    assert set(column_values(tab.page, "#services-table", 0)) == services
    cards = tab.page.locator("#overview-cards").inner_text()
    assert f"{served(scenario)} requests served" in cards
    assert f"{len(scenario.graph['nodes'])} nodes · {len(scenario.graph['edges'])} edges" in cards
    for chart in ("#mesh-rps", "#mesh-errors", "#mesh-p95", "#mesh-coverage"):
        assert tab.page.locator(chart).is_visible()


def shows_map(tab: Tab, scenario: Scenario) -> None:
    """One node point per node of the API's graph, one line per edge; services link home."""
    traces = figure_traces(tab.page, "service-map")
    nodes = node_points(traces)
    drawn = sum(len(t["x"]) for t in traces if str(t.get("uid", "")).startswith("nodes:"))
    assert drawn == len(scenario.graph["nodes"])
    assert set(nodes) == scenario.node_ids
    assert edge_lines(traces) == len(scenario.graph["edges"])
    types = {node["id"]: node["type"] for node in scenario.graph["nodes"]}
    assert types[DATABASE] == "database"
    for name, (_, _, target) in nodes.items():
        if types[name] == "service":
            assert target == f"/services/{quote(name, safe='')}?window=15m"
        else:
            assert target is None
    pairs = set(
        zip(
            column_values(tab.page, "#map-edges", 0),
            column_values(tab.page, "#map-edges", 1),
            strict=True,
        )
    )
    assert pairs == scenario.edge_pairs
    assert len(column_values(tab.page, "#map-edges", 0)) == len(scenario.graph["edges"])
    hint = tab.page.locator("#focus-form .hint").inner_text()
    assert f"{len(scenario.graph['nodes'])} nodes · {len(scenario.graph['edges'])} edges" in hint


def shows_checkout(tab: Tab, scenario: Scenario) -> None:
    """checkout: v1 and v2 at 90/10, called by frontend, calling payments."""
    shares = dict(
        zip(
            column_values(tab.page, "#versions-table", 0),
            column_values(tab.page, "#versions-table", 1),
            strict=True,
        )
    )
    assert {name: round(float(share), 2) for name, share in shares.items()} == {
        "v1": 0.9,
        "v2": 0.1,
    }
    assert column_values(tab.page, "#upstream-table", 0) == ["frontend"]
    assert column_values(tab.page, "#downstream-table", 1) == ["payments"]
    assert f"{REQUESTS} requests" in tab.page.locator("#service-cards").inner_text()
    assert tab.page.locator("#operations-table tbody tr:not(.none)").count() >= 1


def shows_mtls(tab: Tab, scenario: Scenario) -> None:
    """One plaintext edge (frontend -> inventory), every other edge mutual."""
    plaintext = list(
        zip(
            column_values(tab.page, "#plaintext-table", 0),
            column_values(tab.page, "#plaintext-table", 1),
            strict=True,
        )
    )
    assert plaintext == [("frontend", "inventory")]
    assert len(column_values(tab.page, "#mtls-edges", 0)) == len(scenario.graph["edges"])
    assert "on 1 edge" in tab.page.locator("#mtls-cards").inner_text()
    assert column_values(tab.page, "#service-coverage-table", 0)[0] == "inventory"


def shows_alerts(tab: Tab, scenario: Scenario) -> None:
    assert tab.page.locator("#alerts-empty").is_visible()


def shows_not_found(tab: Tab, scenario: Scenario) -> None:
    assert "no-such-service" in tab.page.locator("#error").inner_text()


PAGES: dict[str, tuple[str, int, Callable[[Tab, Scenario], None]]] = {
    "overview": ("/", 200, shows_overview),
    "map": ("/map", 200, shows_map),
    "service": ("/services/checkout", 200, shows_checkout),
    "mtls": ("/mtls", 200, shows_mtls),
    "alerts": ("/alerts", 200, shows_alerts),
    "unknown-service": ("/services/no-such-service", 404, shows_not_found),
}


@pytest.mark.parametrize("name", list(PAGES))
def test_page_loads_without_errors(tab: Tab, scenario: Scenario, name: str) -> None:
    """Each page loads, draws its figures, shows the scenario, and logs no error at all."""
    path, status, shows = PAGES[name]
    if status == 404:  # Chromium logs the page's own 404 answer as a console error
        tab.allow_console(
            r"status of 404 \(Not Found\) \(at http://[^/]+" + re.escape(path) + r"\)$"
        )
    tab.open(path, status)
    assert tab.page.locator("#onboarding").count() == 0
    shows(tab, scenario)
    assert tab.screenshot().stat().st_size > 0
    tab.assert_clean()


def test_clicking_a_map_node_opens_its_service_page(tab: Tab) -> None:
    tab.open("/map")
    tab.page.locator("#service-map").scroll_into_view_if_needed()
    trace, index, _ = node_points(figure_traces(tab.page, "service-map"))["checkout"]
    x, y = point_on_screen(tab.page, "service-map", trace, index)
    tab.page.mouse.move(x, y)
    with tab.page.expect_navigation():
        tab.page.mouse.click(x, y)
    assert urlsplit(tab.page.url).path == "/services/checkout"
    assert query_of(tab.page) == {"window": ["15m"]}
    tab.wait_drawn()
    assert tab.page.locator("h1").inner_text().strip() == "checkout"
    tab.assert_clean()


def test_time_picker_changes_url_and_data(tab: Tab, scenario: Scenario) -> None:
    page = tab.page
    tab.open("/")
    label = page.locator("#range-label")
    assert "last 15 minutes" in label.inner_text()
    rps_card = page.locator("#overview-cards .card").first
    rps_15m = rps_card.locator(".value").inner_text()
    with page.expect_navigation():
        page.select_option("#window-select", "1h")
    tab.wait_drawn()
    assert query_of(page) == {"window": ["1h"]}
    assert "last 1 hour" in label.inner_text()
    assert f"{served(scenario)} requests served" in rps_card.inner_text()
    assert rps_card.locator(".value").inner_text() != rps_15m  # the same requests, 4x the time
    assert "window=1h" in (
        page.locator("nav a", has_text="Service map").get_attribute("href") or ""
    )

    # a custom range ending before anything was sent: nothing to show. Typing moves
    # nowhere; Enter or Apply (shown while the custom fields are) applies both fields
    before = str(int(time.time()) - 3 * 3600)
    page.select_option("#window-select", "custom")
    assert page.locator("#custom-range").is_visible()
    page.fill("#custom-end", before)
    page.press("#custom-end", "Tab")
    assert "end=" not in page.url
    with page.expect_navigation():
        page.click("#timepicker button[type=submit]")
    tab.wait_drawn()
    assert query_of(page) == {"window": ["1h"], "end": [before]}
    assert page.locator("#window-select").input_value() == "custom"
    assert "1h until" in label.inner_text()
    assert "0 requests served" in page.locator("#overview-cards").inner_text()
    assert page.locator("#onboarding").is_visible()
    page.fill("#custom-window", "2h")
    with page.expect_navigation():
        page.press("#custom-window", "Enter")
    tab.wait_drawn()
    assert query_of(page) == {"window": ["2h"], "end": [before]}
    assert "2h until" in label.inner_text()
    assert page.locator("#onboarding").is_visible()
    tab.assert_clean()


def test_xss_service_name_is_text(tab: Tab) -> None:
    """A service named like an HTML tag shows as that text everywhere and runs nothing."""
    page = tab.page
    tab.open("/")
    link = page.locator("#services-table a", has_text=XSS_NAME)
    assert link.count() == 1
    assert link.inner_text() == XSS_NAME
    no_injected_markup(page)

    tab.open("/map")
    labels = page.eval_on_selector_all(
        "#service-map text", "texts => texts.map(text => text.textContent)"
    )
    assert XSS_NAME in labels
    assert XSS_NAME in page.locator("#focus-select").inner_text()
    no_injected_markup(page)

    with page.expect_navigation():
        page.locator("#map-edges a", has_text=XSS_NAME).click()
    tab.wait_drawn()
    assert urlsplit(page.url).path == "/services/" + quote(XSS_NAME, safe="")
    assert page.locator("h1").inner_text().strip() == XSS_NAME
    assert page.title().startswith(XSS_NAME)
    no_injected_markup(page)
    assert tab.problems.dialogs == []
    tab.assert_clean()


def test_auto_refresh_updates_in_place(tab: Tab, scenario: Scenario) -> None:
    """Refresh 10 s: the URL says so without a navigation, and after 10 s the live parts are
    fetched again and replaced in place. The page's clock is Playwright's: it runs as usual,
    and is moved on 11 s at once instead of the test sleeping."""
    page = tab.page
    page.clock.install()
    tab.open("/")
    page.evaluate(
        "() => { window.__marker = 1; document.getElementById('overview-cards').__old = 1 }"
    )
    assert page.locator("#updated").inner_text() == ""
    page.select_option("#refresh-select", "10s")
    assert page.evaluate("() => window.location.search") == "?window=15m&refresh=10s"
    assert query_of(page) == {"window": ["15m"], "refresh": ["10s"]}
    link = page.locator("nav a", has_text="Service map").get_attribute("href") or ""
    assert "refresh=10s" in link
    page.clock.run_for(11_000)
    page.wait_for_function(
        "() => document.getElementById('updated').textContent.includes('updated')"
    )
    assert page.evaluate("() => window.__marker") == 1  # no navigation happened
    assert page.evaluate("() => document.getElementById('overview-cards').__old") is None
    assert f"{served(scenario)} requests served" in page.locator("#overview-cards").inner_text()
    assert page.url.endswith("/?window=15m&refresh=10s")
    tab.wait_drawn()
    tab.assert_clean()


def test_sorting_a_numeric_column_reorders_rows(tab: Tab) -> None:
    page = tab.page
    tab.open("/")
    before = column_values(page, "#services-table", 0)
    header = page.locator("#services-table th[data-sort]", has_text="Requests/s")
    header.click()
    assert header.get_attribute("aria-sort") == "descending"
    rates = [float(v) for v in column_values(page, "#services-table", 1)]
    assert rates == sorted(rates, reverse=True)
    header.click()
    assert header.get_attribute("aria-sort") == "ascending"
    rates = [float(v) for v in column_values(page, "#services-table", 1)]
    assert rates == sorted(rates)
    after = column_values(page, "#services-table", 0)
    assert after[0] == XSS_NAME  # the fewest requests
    assert after != before
    assert sorted(after) == sorted(before)
    tab.assert_clean()
