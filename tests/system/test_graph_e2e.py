"""A new user's view: three services traced with the OpenTelemetry SDK, the graph from the API.

Each service has its own TracerProvider (as separate processes would) and exports over
OTLP/HTTP; trace context crosses the "network" through W3C traceparent headers.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.propagate import extract, inject
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from harness.postgres import DatabaseFactory
from harness.waiting import wait_until
from tests.support import RunningServer, running_server, sdk_provider


@pytest.fixture(scope="module")
def fast_server(
    databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    log = tmp_path_factory.mktemp("e2e") / "meshlens.log"
    with running_server(databases.create(), log, MESHLENS_DERIVE_INTERVAL_SECONDS="0.5") as s:
        yield s


class Mesh:
    """Three services, each its own SDK pipeline exporting to meshlens."""

    def __init__(self, server: RunningServer, tag: str) -> None:
        self.names = {n: f"{n}-{tag}" for n in ("frontend", "checkout", "payments")}
        self.providers = {
            n: sdk_provider(server, name, "2.0" if n == "checkout" else "1.0")
            for n, name in self.names.items()
        }

    def tracer(self, service: str) -> Tracer:
        return self.providers[service].get_tracer("shop")

    def flush(self) -> None:
        for provider in self.providers.values():
            provider.force_flush()
            provider.shutdown()


def _serve(mesh: Mesh, service: str, headers: dict[str, str], name: str) -> Any:
    return mesh.tracer(service).start_as_current_span(
        name, context=extract(headers), kind=SpanKind.SERVER, attributes={"http.route": name}
    )


def _call(mesh: Mesh, caller: str, name: str, attributes: dict[str, Any]) -> Any:
    return mesh.tracer(caller).start_as_current_span(
        name, kind=SpanKind.CLIENT, attributes=attributes
    )


def _checkout(mesh: Mesh, fail_payment: bool) -> None:
    frontend = _serve(mesh, "frontend", {}, "/buy")
    to_checkout = _call(mesh, "frontend", "POST /checkout", {"http.request.method": "POST"})
    with frontend, to_checkout:
        headers: dict[str, str] = {}
        inject(headers)
        with _serve(mesh, "checkout", headers, "/checkout"):
            db = {"db.system": "postgresql", "server.address": "cart-db"}
            with _call(mesh, "checkout", "SELECT cart", db):
                pass
            with _call(mesh, "checkout", "POST /pay", {}) as pay:
                inner: dict[str, str] = {}
                inject(inner)
                with _serve(mesh, "payments", inner, "/pay") as payment:
                    if fail_payment:
                        payment.set_status(Status(StatusCode.ERROR, "card declined"))
                if fail_payment:
                    pay.set_attribute("http.response.status_code", 502)


def test_sdk_traces_become_the_right_graph_within_seconds(fast_server: RunningServer) -> None:
    mesh = Mesh(fast_server, uuid.uuid4().hex[:6])
    for n in range(10):
        _checkout(mesh, fail_payment=n < 2)
    mesh.flush()
    sent = time.monotonic()
    names = mesh.names

    def graph() -> dict[str, Any]:
        answer = httpx.get(f"{fast_server.web}/api/v1/graph", params={"window": "5m"})
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def ours(edge: dict[str, Any]) -> bool:
        return edge["source"] in names.values() or edge["target"] in names.values()

    expected = {
        ("user", names["frontend"]),
        (names["frontend"], names["checkout"]),
        (names["checkout"], names["payments"]),
        (names["checkout"], "cart-db"),
    }
    seen: list[set[tuple[str, str]]] = []

    def complete() -> dict[str, Any] | None:
        answer = graph()
        seen.append({(e["source"], e["target"]) for e in answer["edges"] if ours(e)})
        return answer if seen[-1] == expected else None

    answer = wait_until(
        complete, timeout=20, what=lambda: f"the edges {expected}, not {seen[-1]}", every=0.3
    )
    assert time.monotonic() - sent < 15
    edges = {(e["source"], e["target"]): e for e in answer["edges"] if ours(e)}
    assert set(edges) == expected
    assert all(edge["requests"] == 10 for edge in edges.values())
    assert edges[(names["checkout"], names["payments"])]["errors"] == 2
    assert edges[(names["frontend"], names["checkout"])]["errors"] == 0
    types = {node["id"]: node["type"] for node in answer["nodes"]}
    assert types["cart-db"] == "database"
    assert types["user"] == "client"
    assert {types[name] for name in names.values()} == {"service"}

    detail = httpx.get(
        f"{fast_server.web}/api/v1/services/{names['checkout']}", params={"window": "5m"}
    )
    assert detail.status_code == 200
    body = detail.json()
    assert body["requests"] == 10
    assert [v["version"] for v in body["versions"]] == ["2.0"]
    assert {e["target"] for e in body["downstream"]} == {names["payments"], "cart-db"}
    assert {e["source"] for e in body["upstream"]} == {names["frontend"]}
