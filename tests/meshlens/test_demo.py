"""`meshlens demo` against a real `meshlens serve`: every promise of the simulated mesh shows up
in the API (the graph, the canary, the plaintext edge, the failing dependency, saturation), and
each request is counted once although Istio sidecars, the ingress gateway and Linkerd proxies
report it beside the apps; and what the demo exports, request by request, to a real HTTP
server standing in for meshlens.

The server pairs fast (3 s pairing window), so calls to the broker and the external API, which
have no server half, become edges within seconds instead of minutes. The shapes of the spans
themselves are checked in `tests/meshlens/unit/test_demo_spans.py`.
"""

from __future__ import annotations

import gzip
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from harness.ports import free_port
from harness.postgres import DatabaseFactory
from harness.repo import REPO
from harness.waiting import wait_until
from harness.webhook_sink import WebhookSink
from tests.support import FAST_DERIVATION, RunningServer, running_server

SERVICES = {
    "istio-ingressgateway",
    "frontend",
    "auth",
    "catalog",
    "inventory",
    "currency",
    "recommendations",
    "reviews",
    "cart",
    "checkout",
    "payments",
    "shipping",
    "email",
    "templates",
}
VIRTUAL = {
    "user": "client",
    "postgres": "database",
    "kafka": "messaging",
    "api.stripe.com": "external",
}


@pytest.fixture(scope="module")
def fast_server(
    databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    log = tmp_path_factory.mktemp("demo") / "meshlens.log"
    # halves wait a minute, as each proxy and app exports on its own schedule (seconds apart)
    settings = {**FAST_DERIVATION, "MESHLENS_PAIRING_WINDOW_SECONDS": "60"}
    with running_server(databases.create(), log, **settings) as server:
        yield server


def demo_command(*flags: str) -> list[str]:
    return [sys.executable, "-m", "meshlens.cli", "demo", *flags]


def demo_environment(server: RunningServer | None = None) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MESHLENS_")}
    if server is not None:
        environment["MESHLENS_HTTP_PORT"] = str(server.web_port)
    return environment


def api(server: RunningServer, path: str) -> dict[str, Any]:
    answer = httpx.get(f"{server.web}/api/v1/{path}", params={"window": "1h"}, timeout=10)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


@dataclass(frozen=True)
class DemoRun:
    """A finished demo run and the graph meshlens derived from it."""

    output: str
    requests: int  # requests of `user`, as the demo says it sent
    graph: dict[str, Any]

    @property
    def nodes(self) -> dict[str, dict[str, Any]]:
        return {node["id"]: node for node in self.graph["nodes"]}

    @property
    def edges(self) -> dict[tuple[str, str], dict[str, Any]]:
        return {(edge["source"], edge["target"]): edge for edge in self.graph["edges"]}


def _complete(graph: dict[str, Any], requests: int) -> bool:
    """Every node and edge the demo promises is there, and every request of `user` counted."""
    nodes = {node["id"]: node for node in graph["nodes"]}
    edges = {(edge["source"], edge["target"]): edge for edge in graph["edges"]}
    entry = [("user", "istio-ingressgateway"), ("istio-ingressgateway", "frontend")]
    return (
        set(nodes) >= SERVICES | set(VIRTUAL)
        and ("payments", "api.stripe.com") in edges
        and {("checkout", "kafka"), ("email", "kafka"), ("checkout", "email")} <= set(edges)
        and {("email", "templates"), ("frontend", "recommendations"), *entry} <= set(edges)
        and all(edges[key]["requests"] >= requests for key in entry)
        and nodes["frontend"]["requests"] >= requests
    )


@pytest.fixture(scope="module")
def demo_run(fast_server: RunningServer) -> DemoRun:
    flags = ["--endpoint", fast_server.otlp_http, "--backfill", "5", "--backfill-rate", "5"]
    result = subprocess.run(
        demo_command(*flags, "--rate", "10", "--duration", "2", "--seed", "1"),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=demo_environment(fast_server),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    match = re.search(r"meshlens demo: sent ([\d,]+) requests", result.stdout)
    assert match is not None, result.stdout
    requests = int(match[1].replace(",", ""))
    seen: list[dict[str, Any]] = []

    def whole_graph() -> dict[str, Any] | None:
        seen.append(api(fast_server, "graph"))
        return seen[-1] if _complete(seen[-1], requests) else None

    graph = wait_until(
        whole_graph, timeout=30, what=lambda: f"every promise in the graph: {seen[-1]}", every=0.5
    )
    return DemoRun(result.stdout, requests, graph)


def test_demo_fills_the_graph_with_everything_it_promises(
    fast_server: RunningServer, demo_run: DemoRun
) -> None:
    output = demo_run.output
    assert fast_server.otlp_http in output
    assert f"dashboard: {fast_server.web}/" in output
    for promise in ("canary", "checkout -> shipping", "api.stripe.com", "recommendations"):
        assert promise in output
    assert "Linkerd proxies in front of email, templates" in output
    assert "Istio ingress gateway istio-ingressgateway in front of frontend" in output

    types = {name: node["type"] for name, node in demo_run.nodes.items()}
    assert {name for name, kind in types.items() if kind == "service"} == SERVICES
    assert {name: types[name] for name in VIRTUAL} == VIRTUAL
    edges = demo_run.edges
    # calls recommendations' pods never got (UF, UH) fail on the edge meant for them
    assert edges[("frontend", "recommendations")]["errors"] > 0

    failing = edges[("payments", "api.stripe.com")]["error_rate"]
    others = [
        edge["error_rate"] or 0.0 for key, edge in edges.items() if key[1] != "api.stripe.com"
    ]
    assert 0.08 <= failing <= 0.3
    assert failing > 2 * max(others)

    workloads = SERVICES - {"istio-ingressgateway"}  # the gateway reports no utilization
    saturation = {name: node["saturation"] for name, node in demo_run.nodes.items()}
    saturation = {name: saturation[name] for name in workloads}
    assert all(value is not None and 0 < value <= 1 for value in saturation.values()), saturation
    assert max(saturation, key=lambda name: saturation[name]) == "recommendations"
    assert saturation["recommendations"] >= 0.75

    reviews = api(fast_server, "services/reviews")
    versions = {version["version"]: version for version in reviews["versions"]}
    assert set(versions) == {"v1", "v2"}
    assert 0.05 <= versions["v2"]["share"] <= 0.2
    assert versions["v2"]["error_rate"] > versions["v1"]["error_rate"]
    assert versions["v2"]["latency_ms"]["p50"] > versions["v1"]["latency_ms"]["p50"]


def test_demo_requests_are_counted_once_through_the_proxies(demo_run: DemoRun) -> None:
    """What Istio sidecars, the gateway and Linkerd proxies send beside the apps adds no
    request, no node and no edge of its own."""
    nodes, edges = demo_run.nodes, demo_run.edges
    assert set(nodes) == SERVICES | set(VIRTUAL)  # no node for a proxy or a cluster name
    assert not [key for key in edges if key[0] == key[1]]  # a proxy and its app are one hop
    # every request of `user` once: at the gateway, on both its edges, into frontend
    requests = demo_run.requests
    assert edges[("user", "istio-ingressgateway")]["requests"] == requests
    assert edges[("istio-ingressgateway", "frontend")]["requests"] == requests
    assert nodes["istio-ingressgateway"]["requests"] == requests
    assert nodes["frontend"]["requests"] == requests
    # Linkerd's four spans per hop are one call, and templates serves only those calls
    assert edges[("email", "templates")]["requests"] == nodes["templates"]["requests"] > 0

    plaintext = [key for key, edge in edges.items() if edge["mtls"]["plaintext"] > 0]
    assert plaintext == [("checkout", "shipping")]
    assert edges[("checkout", "shipping")]["mtls"]["coverage"] == 0.0
    between_services = [
        edge
        for key, edge in edges.items()
        if edge["source_type"] == edge["target_type"] == "service" and key not in plaintext
    ]
    assert len(between_services) == 16  # gateway -> frontend and email -> templates too
    assert {edge["mtls"]["coverage"] for edge in between_services} == {1.0}
    assert edges[("payments", "api.stripe.com")]["mtls"]["tls"] > 0  # one-way TLS outside


def test_demo_without_a_server_says_so_and_fails() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run(
        demo_command("--endpoint", endpoint, "--duration", "1"),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=demo_environment(),
    )
    assert result.returncode == 1
    assert f"nothing answers at {endpoint}" in result.stderr
    assert "meshlens serve" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def _lines(stream: IO[str], into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


def test_ctrl_c_stops_the_demo_cleanly(fast_server: RunningServer, tmp_path: Path) -> None:
    flags = ("--endpoint", fast_server.otlp_http, "--backfill", "0", "--rate", "5")
    seen: list[str] = []
    with (
        (tmp_path / "stderr").open("w") as stderr,
        subprocess.Popen(
            demo_command(*flags),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=REPO,
            env=demo_environment(fast_server),
        ) as process,
    ):
        assert process.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=_lines, args=(process.stdout, lines), daemon=True)
        reader.start()
        try:
            while not any(line.startswith("streaming") for line in seen):
                seen.append(lines.get(timeout=30))
            time.sleep(1.5)
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
        reader.join(timeout=10)
    while not lines.empty():
        seen.append(lines.get())
    output = "".join(seen)
    errors = (tmp_path / "stderr").read_text()
    assert process.returncode == 0, output + errors
    assert "Traceback" not in errors
    assert "stopping: sending what is left" in output
    assert "meshlens demo: sent" in output


def _exports(sink: WebhookSink) -> list[ExportTraceServiceRequest]:
    exports = []
    for request in sink.requests:
        if request.path != "/v1/traces" or not request.body:  # the reachability check is empty
            continue
        body = request.body
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        exports.append(ExportTraceServiceRequest.FromString(body))
    return exports


def test_every_proxy_and_every_app_exports_on_its_own() -> None:
    """A sidecar and its app are two processes: they never share an export request, and a
    proxy's export carries the proxy's resource (a real HTTP server records what is sent)."""
    with WebhookSink() as sink:
        flags = ("--backfill", "1", "--backfill-rate", "5", "--duration", "0", "--seed", "2")
        result = subprocess.run(
            demo_command("--endpoint", sink.base_url, *flags),
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
            env=demo_environment(),
        )
    assert result.returncode == 0, result.stdout + result.stderr
    emitters: dict[str, set[str]] = {}
    for export in _exports(sink):
        assert len(export.resource_spans) == 1  # one process, one resource
        (resource_spans,) = export.resource_spans
        resource = {kv.key: kv.value for kv in resource_spans.resource.attributes}
        name = resource["service.name"].string_value
        if (
            "telemetry.sdk.name" in resource
            and resource["telemetry.sdk.name"].string_value == "envoy"
        ):
            kind = "envoy"
        elif name == "linkerd-proxy":
            kind = "linkerd"
            name = resource["linkerd.io/proxy-deployment"].string_value
        else:
            kind = resource["telemetry.sdk.language"].string_value
        emitters.setdefault(kind, set()).add(name)
        if kind != "python":  # proxies export spans with no instrumentation scope
            assert [scope.scope.name for scope in resource_spans.scope_spans] == [""]
    assert emitters["envoy"] >= {
        "istio-ingressgateway.istio-system",
        "frontend.shop",
        "reviews.shop",
    }
    assert "shipping.shop" not in emitters["envoy"]  # no sidecar
    assert emitters["linkerd"] == {"email", "templates"}
    assert emitters["python"] >= {"frontend", "reviews", "shipping", "email", "templates"}
