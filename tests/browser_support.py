"""Support for the dashboard tests: a known mesh fed through the OpenTelemetry SDK into a real
`meshlens serve`, Debian's Chromium for Playwright, and a page wrapper that records every
console error, page error, failed request and dialog.

No browser is downloaded: `ensure_chromium` finds `/usr/bin/chromium` or installs Debian's
package, and Playwright launches it through `executable_path`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.context import Context
from opentelemetry.propagate import extract, inject
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, set_span_in_context
from opentelemetry.util.types import AttributeValue
from playwright.sync_api import ConsoleMessage, Dialog, Page, Request, Response, ViewportSize

from harness.postgres import DatabaseFactory
from harness.repo import REPO
from harness.waiting import wait_until
from tests.support import RunningServer, running_server, sdk_provider

# --- artifacts ---------------------------------------------------------------------------------


def artifacts_dir() -> Path:
    """Where test artifacts go: `$MESHLENS_TEST_ARTIFACTS`, else `tests/artifacts` (ignored)."""
    configured = os.environ.get("MESHLENS_TEST_ARTIFACTS")
    return Path(configured) if configured else REPO / "tests" / "artifacts"


def screenshot_path(test_name: str) -> Path:
    """`<artifacts>/screenshots/<test name>.png`, the name made safe for a file system."""
    folder = artifacts_dir() / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / (re.sub(r"[^\w.-]+", "_", test_name).strip("_") + ".png")


# --- the browser -------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}


def _find_chromium() -> str | None:
    if Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    return shutil.which("chromium")


def _apt_get(*args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["apt-get", *args],
            env={**os.environ, **APT_ENV},
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"apt-get {' '.join(args)} took more than 15 minutes")


def ensure_chromium() -> str:
    """The path of Debian's Chromium, installing the package (as root) when it is missing.

    Never downloads a browser build of Playwright's: the tests drive the distribution's.
    """
    found = _find_chromium()
    if found:
        return found
    if os.geteuid() != 0:
        pytest.fail(
            "the dashboard browser tests need Debian's Chromium at /usr/bin/chromium: run "
            "`apt-get install -y --no-install-recommends chromium` as root (or run the tests "
            "as root, and they install it)"
        )
    if shutil.which("apt-get") is None:
        pytest.fail("Chromium is missing and there is no apt-get to install it with")
    install = ("install", "-y", "--no-install-recommends", "chromium")
    outcome = _apt_get(*install)
    if outcome.returncode != 0:  # a fresh machine often has no package lists yet
        update = _apt_get("update")
        outcome = _apt_get(*install)
        if outcome.returncode != 0:
            pytest.fail(
                "could not install Debian's chromium package:\n"
                f"apt-get update: {update.stdout[-2000:]}{update.stderr[-2000:]}\n"
                f"apt-get install: {outcome.stdout[-2000:]}{outcome.stderr[-2000:]}"
            )
    found = _find_chromium()
    if not found:
        pytest.fail("apt-get installed chromium, yet no chromium executable is on the PATH")
    return found


CHROMIUM_ARGS = ["--no-sandbox"]
VIEWPORT: ViewportSize = {"width": 1400, "height": 1000}


@dataclass
class Problems:
    """What went wrong in a page while a test drove it."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    bad_responses: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "console errors": self.console_errors,
            "page errors": self.page_errors,
            "failed requests": self.failed_requests,
            "error responses to subresources": self.bad_responses,
            "dialogs": self.dialogs,
        }

    def clear(self) -> None:
        for found in self.as_dict().values():
            found.clear()


class Tab:
    """A page of one test, with every console error, page error, failed request, error answer
    to a subresource and dialog recorded in `problems` (dialogs are dismissed)."""

    def __init__(self, page: Page, base_url: str, screenshot_to: Path) -> None:
        self.page = page
        self.base_url = base_url
        self.screenshot_to = screenshot_to
        self.screenshots = 0
        self.problems = Problems()
        self.allowed_console: list[re.Pattern[str]] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.page_errors.append(str(error)))
        page.on("requestfailed", self._request_failed)
        page.on("response", self._response)
        page.on("dialog", self._dialog)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            text = f"{message.text} (at {message.location.get('url', '?')})"
            if not any(pattern.search(text) for pattern in self.allowed_console):
                self.problems.console_errors.append(text)

    def _request_failed(self, request: Request) -> None:
        self.problems.failed_requests.append(f"{request.url}: {request.failure}")

    def _response(self, response: Response) -> None:
        if response.status >= 400 and response.request.resource_type != "document":
            self.problems.bad_responses.append(f"{response.status} {response.url}")

    def _dialog(self, dialog: Dialog) -> None:
        self.problems.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def allow_console(self, pattern: str) -> None:
        """Accept console errors matching `pattern` (a page answered 404 on purpose)."""
        self.allowed_console.append(re.compile(pattern))

    def url(self, path: str) -> str:
        return self.base_url + path

    def open(self, path: str, status: int = 200) -> Response:
        """Load `path` and wait until its scripts ran and its figures are drawn."""
        response = self.page.goto(self.url(path), wait_until="load")
        assert response is not None
        assert response.status == status, f"{path}: {response.status}"
        self.wait_drawn()
        return response

    def wait_drawn(self) -> None:
        """Wait until every figure of the page is drawn by plotly."""
        self.page.wait_for_function(
            "() => document.documentElement.classList.contains('js') && Array.from("
            "document.querySelectorAll('[data-figure]')).every("
            "el => el.classList.contains('js-plotly-plot') && el.querySelector('.main-svg'))",
            timeout=15_000,
        )

    def screenshot(self) -> Path:
        """A full-page screenshot of the page as it is now, at `screenshot_to`."""
        self.page.screenshot(path=str(self.screenshot_to), full_page=True)
        self.screenshots += 1
        return self.screenshot_to

    def assert_clean(self) -> None:
        found = {kind: items for kind, items in self.problems.as_dict().items() if items}
        assert not found, f"problems in the page {self.page.url}: {found}"


# --- the known scenario ------------------------------------------------------------------------

XSS_NAME = "<img src=x onerror=alert(1)>"
DATABASE = "inventory-db"
REQUESTS = 60
"""Requests into frontend; checkout and payments see each, inventory every 2nd, the XSS-named
service every 3rd; payments fails every 5th; checkout v2 serves every 10th."""


@dataclass(frozen=True)
class Scenario:
    """A server holding the known mesh, and the API's graph of it (window 1h)."""

    server: RunningServer
    graph: dict[str, Any]

    @property
    def node_ids(self) -> set[str]:
        return {node["id"] for node in self.graph["nodes"]}

    @property
    def edge_pairs(self) -> set[tuple[str, str]]:
        return {(edge["source"], edge["target"]) for edge in self.graph["edges"]}


def expected_edges() -> dict[tuple[str, str], int]:
    """Each derived edge of the scenario with its request count."""
    return {
        ("user", "frontend"): REQUESTS,
        ("frontend", "checkout"): REQUESTS,
        ("checkout", "payments"): REQUESTS,
        ("frontend", "inventory"): REQUESTS // 2,
        ("inventory", DATABASE): REQUESTS // 2,
        ("frontend", XSS_NAME): REQUESTS // 3,
    }


PLAINTEXT: dict[str, AttributeValue] = {"tls.established": False}
"""frontend -> inventory runs without TLS (the scenario's one plaintext edge)."""


def mutual(peer: str) -> dict[str, AttributeValue]:
    """A mutually authenticated connection whose client presented `peer`'s certificate."""
    return {
        "tls.established": True,
        "tls.client.subject": f"CN={peer}",
        "tls.client.issuer": "CN=mesh-ca",
    }


class Mesh:
    """The scenario's services, each with its own SDK pipeline exporting over OTLP/HTTP."""

    def __init__(self, server: RunningServer) -> None:
        workloads = {
            "frontend": ("frontend", "1.4.0"),
            "checkout-v1": ("checkout", "v1"),
            "checkout-v2": ("checkout", "v2"),
            "payments": ("payments", "2.1.0"),
            "inventory": ("inventory", "0.9.3"),
            "xss": (XSS_NAME, "1.0"),
        }
        self.providers = {
            key: sdk_provider(server, name, version) for key, (name, version) in workloads.items()
        }

    def tracer(self, workload: str) -> Tracer:
        return self.providers[workload].get_tracer("meshlens-dashboard-tests")

    def close(self) -> None:
        for provider in self.providers.values():
            provider.force_flush()
            provider.shutdown()


MS = 1_000_000


def _start(
    tracer: Tracer,
    name: str,
    kind: SpanKind,
    parent: Context | None,
    at: int,
    attributes: dict[str, AttributeValue],
) -> Span:
    return tracer.start_span(name, context=parent, kind=kind, attributes=attributes, start_time=at)


def _over_the_wire(client: Span) -> Context:
    """The context a server extracts from the `traceparent` header its client sent."""
    headers: dict[str, str] = {}
    inject(headers, context=set_span_in_context(client))
    return extract(headers)


def _call(
    mesh: Mesh,
    caller: str,
    parent: Span,
    callee: str,
    route: str,
    at: int,
    took_ms: float,
    tls: dict[str, AttributeValue],
    fail: bool = False,
) -> int:
    """A CLIENT span in `caller` and the SERVER span of `callee` it reached; returns the end."""
    client = _start(
        mesh.tracer(caller),
        f"POST {route}",
        SpanKind.CLIENT,
        set_span_in_context(parent),
        at,
        {"http.request.method": "POST", "server.address": callee, "server.port": 8080},
    )
    server_at = at + MS // 2
    server_end = server_at + round(took_ms * MS)
    server = _start(
        mesh.tracer(callee),
        f"POST {route}",
        SpanKind.SERVER,
        _over_the_wire(client),
        server_at,
        {"http.request.method": "POST", "http.route": route, **tls},
    )
    status = 503 if fail else 200
    server.set_attribute("http.response.status_code", status)
    client.set_attribute("http.response.status_code", status)
    if fail:
        server.set_status(Status(StatusCode.ERROR, "card declined"))
    server.end(end_time=server_end)
    end = server_end + MS // 2
    client.end(end_time=end)
    return end


def _request(mesh: Mesh, number: int, at: int) -> None:
    """One request into frontend and everything it causes, with explicit times."""
    root = _start(
        mesh.tracer("frontend"),
        "GET /shop",
        SpanKind.SERVER,
        None,
        at,
        {"http.request.method": "GET", "http.route": "/shop", **mutual("ingress")},
    )
    root.set_attribute("http.response.status_code", 200)
    now = at + MS
    checkout = "checkout-v2" if number % 10 == 0 else "checkout-v1"
    to_checkout = _start(
        mesh.tracer("frontend"),
        "POST /checkout",
        SpanKind.CLIENT,
        set_span_in_context(root),
        now,
        {"http.request.method": "POST", "server.address": "checkout"},
    )
    served = _start(
        mesh.tracer(checkout),
        "POST /checkout",
        SpanKind.SERVER,
        _over_the_wire(to_checkout),
        now + MS // 2,
        {"http.request.method": "POST", "http.route": "/checkout", **mutual("frontend")},
    )
    served.set_attribute("http.response.status_code", 200)
    paid = _call(
        mesh,
        checkout,
        served,
        "payments",
        "/pay",
        now + MS,
        12 + number % 7,
        mutual("checkout"),
        fail=number % 5 == 0,
    )
    served.end(end_time=paid + 3 * MS)
    to_checkout.set_attribute("http.response.status_code", 200)
    to_checkout.end(end_time=paid + 4 * MS)
    now = paid + 5 * MS
    if number % 2 == 0:
        parent = _start(
            mesh.tracer("frontend"),
            "GET /stock",
            SpanKind.CLIENT,
            set_span_in_context(root),
            now,
            {"http.request.method": "GET", "server.address": "inventory"},
        )
        stock = _start(
            mesh.tracer("inventory"),
            "GET /stock",
            SpanKind.SERVER,
            _over_the_wire(parent),
            now + MS // 2,
            {"http.request.method": "GET", "http.route": "/stock", **PLAINTEXT},
        )
        stock.set_attribute("http.response.status_code", 200)
        query = _start(
            mesh.tracer("inventory"),
            "SELECT stock",
            SpanKind.CLIENT,
            set_span_in_context(stock),
            now + MS,
            {
                "db.system": "postgresql",
                "db.namespace": "stock",
                "server.address": DATABASE,
                **mutual("inventory"),
            },
        )
        query.end(end_time=now + MS + (2 + number % 3) * MS)
        stock.end(end_time=now + 6 * MS)
        parent.set_attribute("http.response.status_code", 200)
        parent.end(end_time=now + 7 * MS)
        now += 8 * MS
    if number % 3 == 0:
        now = _call(mesh, "frontend", root, "xss", "/banner", now, 2, mutual("frontend"))
    root.end(end_time=now + 2 * MS)


def feed_scenario(server: RunningServer) -> None:
    """Send the scenario's traces (times spread over the last ~30 seconds) and flush them."""
    mesh = Mesh(server)
    try:
        start = time.time_ns() - 30_000 * MS
        for number in range(REQUESTS):
            _request(mesh, number, start + number * 400 * MS)
    finally:
        mesh.close()


def wait_for_graph(server: RunningServer, timeout: float = 30.0) -> dict[str, Any]:
    """The API's graph (window 1h) once it holds every edge of the scenario, fully counted."""
    wanted = expected_edges()
    counted: dict[tuple[str, str], int] = {}

    def complete() -> dict[str, Any] | None:
        answer = httpx.get(f"{server.web}/api/v1/graph", params={"window": "1h"}, timeout=10)
        assert answer.status_code == 200, answer.text
        graph: dict[str, Any] = answer.json()
        counted.clear()
        counted.update({(e["source"], e["target"]): e["requests"] for e in graph["edges"]})
        return graph if counted == wanted else None

    return wait_until(
        complete,
        timeout=timeout,
        what=lambda: f"the graph to show the scenario: {counted} instead of {wanted}",
        every=0.3,
    )


@contextmanager
def scenario_server(databases: DatabaseFactory, folder: Path) -> Iterator[Scenario]:
    """`meshlens serve` (deriving every 0.5 s) on a fresh database holding the scenario."""
    with running_server(
        databases.create(), folder / "meshlens.log", MESHLENS_DERIVE_INTERVAL_SECONDS="0.5"
    ) as server:
        feed_scenario(server)
        yield Scenario(server, wait_for_graph(server))
