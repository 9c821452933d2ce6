"""The dashboards over plain HTTP (no browser): status codes, security headers, no inline
script, plotly.js served locally, escaping of names from telemetry, and the empty state.

The server holds the same known mesh as the browser tests (`tests.browser_support`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from harness.postgres import DatabaseFactory
from tests.browser_support import XSS_NAME, Scenario, scenario_server
from tests.support import running_server

XSS_PATH = "/services/" + quote(XSS_NAME, safe="")
PAGES = ["/", "/map", "/map?focus=checkout&hops=2", "/services/frontend", XSS_PATH, "/mtls"]
PAGES_WITHOUT_THE_NAME = ["/alerts", "/services/checkout"]
ESCAPED_NAME = "&lt;img src=x onerror=alert(1)&gt;"


@pytest.fixture(scope="module")
def scenario(
    databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    with scenario_server(databases, tmp_path_factory.mktemp("dashboards-http")) as known:
        yield known


@pytest.fixture(scope="module")
def web(scenario: Scenario) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=scenario.server.web, timeout=30) as client:
        yield client


VOID = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "source",
        "track",
        "wbr",
    ]
)


class Markup(HTMLParser):
    """What a page's HTML holds: script tags, event-handler attributes, URLs, and the text
    of each element with an id."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[dict[str, str | None]] = []
        self.inline_script = ""
        self.handlers: list[str] = []
        self.ids: dict[str, str] = {}
        self.urls: list[str] = []
        self.images: list[str] = []
        self.figures: dict[str, Any] = {}
        self._open: list[tuple[str, str | None]] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script":
            self.scripts.append(attributes)
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        self.urls += [value or "" for name, value in attrs if name in ("src", "href", "action")]
        element = attributes.get("id")
        if tag == "img":
            self.images.append(attributes.get("src") or "")
        if element and attributes.get("data-figure"):
            self.figures[element] = json.loads(attributes["data-figure"] or "")
        if element:
            self.ids[element] = ""
        if tag not in VOID:
            self._open.append((tag, element))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._open and self._open[-1][0] == "script":
            self.inline_script += data.strip()
        for _, element in self._open:
            if element:
                self.ids[element] += data


def checked_page(client: httpx.Client, path: str, status: int = 200) -> Markup:
    """The page at `path`, with the headers and markup every page must have."""
    answer = client.get(path)
    assert answer.status_code == status, f"{path}: {answer.status_code} {answer.text[:300]}"
    assert answer.headers["content-type"].startswith("text/html")
    policy = {
        part.strip().split(" ", 1)[0]: part.strip()
        for part in answer.headers["content-security-policy"].split(";")
    }
    assert policy["script-src"] == "script-src 'self'"
    assert "'unsafe-inline'" not in policy.get("default-src", "")
    assert answer.headers["x-content-type-options"] == "nosniff"
    if status == 200:  # the page's own time, which bench/api_queries.py reports
        assert answer.headers["server-timing"].startswith("page;dur=")
    markup = Markup(answer.text)
    assert markup.scripts, f"{path} loads no script"
    assert all(script.get("src") for script in markup.scripts), f"inline script in {path}"
    assert markup.inline_script == ""
    figures = "data-figure=" in answer.text  # plotly.js (4.8 MB) only where a figure is drawn
    expected = ["/plotly.min.js", "/static/meshlens.js"] if figures else ["/static/meshlens.js"]
    assert [s["src"] for s in markup.scripts] == expected
    assert markup.handlers == [], f"event-handler attributes in {path}: {markup.handlers}"
    for url in markup.urls:
        assert not url.startswith(("http:", "https:", "//", "javascript:")), f"{path}: {url}"
    assert "cdn.plot.ly" not in answer.text
    assert "cdn.jsdelivr" not in answer.text
    return markup


@pytest.mark.parametrize("path", PAGES + PAGES_WITHOUT_THE_NAME)
def test_pages_have_a_strict_policy_and_no_inline_script(web: httpx.Client, path: str) -> None:
    markup = checked_page(web, path)
    assert "content" in markup.ids
    if path.startswith("/services/checkout"):
        assert "versions-table" in markup.ids
    assert "timepicker" in markup.ids


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


@pytest.mark.parametrize("path", PAGES)
def test_names_from_telemetry_are_escaped(web: httpx.Client, path: str) -> None:
    """The XSS-named service is HTML-escaped in the page, and escaped for plotly (which draws
    HTML-ish text) inside the figures; no element or handler comes of it."""
    text = web.get(path).text
    assert ESCAPED_NAME in text
    assert re.search(r"<img[^>]*src=x", text, re.IGNORECASE) is None
    markup = Markup(text)
    assert "x" not in markup.images
    assert markup.handlers == []
    for element, figure in markup.figures.items():
        for value in strings(figure):
            assert "<img" not in value, f"{path} #{element}: {value!r} not escaped for plotly"
    if "service-map" in markup.figures:
        found = [value for value in strings(markup.figures["service-map"]) if "img" in value]
        assert ESCAPED_NAME in found  # the node's label
        assert "/services/" + quote(XSS_NAME, safe="") + "?window=15m" in found


def test_the_page_of_the_xss_named_service(web: httpx.Client) -> None:
    markup = checked_page(web, XSS_PATH)
    assert f"<title>{ESCAPED_NAME}" in web.get(XSS_PATH).text
    assert XSS_NAME in markup.ids["service-cards"] or XSS_NAME in markup.ids["upstream-table"]


def test_assets_are_served_locally(web: httpx.Client) -> None:
    plotly = web.get("/plotly.min.js")
    assert plotly.status_code == 200
    assert "javascript" in plotly.headers["content-type"]
    assert len(plotly.content) > 1_000_000
    assert b"plotly.js" in plotly.content[:2000]
    script = web.get("/static/meshlens.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    styles = web.get("/static/meshlens.css")
    assert styles.status_code == 200
    assert styles.headers["content-type"].startswith("text/css")


@pytest.mark.parametrize(
    ("query", "complaint"),
    [
        ("window=banana", "window must be a duration"),
        ("window=1h&end=yesterday", "end must be"),
        ("refresh=5s", "refresh must be one of"),
    ],
)
@pytest.mark.parametrize("path", ["/", "/map", "/services/checkout", "/mtls"])
def test_a_bad_range_is_a_400_page(
    web: httpx.Client, path: str, query: str, complaint: str
) -> None:
    markup = checked_page(web, f"{path}?{query}", 400)
    assert complaint in markup.ids["error"]


@pytest.mark.parametrize(
    "name", ["no-such-service", "<script>alert(1)</script>", "a/b", "ü ∂ 服务"]
)
def test_an_unknown_service_is_a_404_page(web: httpx.Client, name: str) -> None:
    path = "/services/" + quote(name, safe="")
    markup = checked_page(web, path, 404)
    assert name in markup.ids["error"]
    assert "<script>alert" not in web.get(path).text


def test_an_empty_database_shows_how_to_send_data(
    databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    log = tmp_path_factory.mktemp("dashboards-empty") / "meshlens.log"
    with (
        running_server(databases.create(), log) as server,
        httpx.Client(base_url=server.web, timeout=30) as client,
    ):
        for path in ("/", "/map", "/mtls"):
            markup = checked_page(client, path)
            assert "onboarding" in markup.ids, path
        markup = checked_page(client, "/")
        assert "services-table" not in markup.ids
        http_endpoint = f"http://127.0.0.1:{server.otlp_http_port}"
        grpc_endpoint = f"127.0.0.1:{server.grpc_port}"
        assert http_endpoint in markup.ids["snippet-sdk"]
        assert grpc_endpoint in markup.ids["snippet-collector"]
        assert str(server.grpc_port) in markup.ids["snippet-istio"]
        assert grpc_endpoint in markup.ids["snippet-linkerd"]
        assert http_endpoint in markup.ids["onboarding"]
        assert grpc_endpoint in markup.ids["onboarding"]
