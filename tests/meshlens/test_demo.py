"""`meshlens demo` against a real `meshlens serve`: every promise of the simulated mesh shows up
in the API (the graph, the canary, the plaintext edge, the failing dependency, saturation), and
each request is counted once although Istio sidecars, the ingress gateway and Linkerd proxies
report it beside the apps, in their spans and in their metrics (whose numbers the API takes
for the edges they describe, mTLS included). What the demo exports, request by request and
scrape by scrape, is checked against a real HTTP server in `test_demo_exports.py`.

Calls without a server half (to the broker, the external API) count on their edges after 2 s
(`FAST_DERIVATION`); halves wait a minute for each other, as each proxy and app exports on its
own schedule. The shapes of the spans and metrics themselves are checked in
`tests/meshlens/unit/test_demo_spans.py` and `test_demo_metrics.py`.
"""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from harness.ports import free_port
from harness.postgres import DatabaseFactory
from harness.repo import REPO
from harness.waiting import wait_until
from meshlens.demo.topology import shop
from tests.meshlens.demo_cli import demo_command, demo_environment
from tests.support import FAST_DERIVATION, RunningServer, running_server

SETTLED_SECONDS = 3.0  # ten derivation passes (`FAST_DERIVATION`) without a change
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

    wait_until(
        whole_graph, timeout=30, what=lambda: f"every promise in the graph: {seen[-1]}", every=0.5
    )
    # The proxies' last scrape counts the edges they describe at once; the spans' halves are
    # still being paired for a few derivation passes (a sidecar's entry span counts until its
    # app's meets it): the graph is read once its numbers hold still.
    steady: list[tuple[float, list[Any]]] = []

    def settled() -> dict[str, Any] | None:
        graph = api(fast_server, "graph")
        counts = _request_counts(graph)
        now = time.monotonic()
        if not steady or steady[0][1] != counts:
            steady[:] = [(now, counts)]
            return None
        return graph if now - steady[0][0] >= SETTLED_SECONDS else None

    graph = wait_until(settled, timeout=30, what="the graph's numbers to hold still", every=0.5)
    return DemoRun(result.stdout, requests, graph)


def _request_counts(graph: dict[str, Any]) -> list[Any]:
    nodes = sorted((node["id"], node["requests"], node["errors"]) for node in graph["nodes"])
    edges = sorted((e["source_id"], e["target_id"], e["requests"]) for e in graph["edges"])
    return [nodes, edges]


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
    others = [  # api.stripe.com is the mesh's one external API
        edge["error_rate"] or 0.0 for edge in edges.values() if edge["target_type"] != "external"
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


def _mutual_edges() -> set[tuple[str, str]]:
    """The calls between services that proxies of one mesh carry (mutual TLS), the ingress
    gateway's call to the entry service included."""
    mesh = shop()
    calls = {
        (caller, call.service)
        for caller, call in mesh.calls()
        if mesh.services[caller].mutual_tls_with(mesh.services[call.service])
    }
    assert mesh.gateway is not None
    return calls | {(mesh.gateway.name, mesh.entry_service)}


def test_demo_requests_are_counted_once_through_the_proxies(demo_run: DemoRun) -> None:
    """What Istio sidecars, the gateway and Linkerd proxies send beside the apps adds no
    request and no edge of its own; the edges their metrics describe take the metrics'
    numbers (the API's rule), and those count every request once too."""
    nodes, edges = demo_run.nodes, demo_run.edges
    assert set(nodes) >= SERVICES | set(VIRTUAL)
    assert not [key for key in edges if key[0] == key[1]]  # a proxy and its app are one hop
    # every request of `user` once: at the gateway, on both its edges, into frontend
    requests = demo_run.requests
    assert edges[("user", "istio-ingressgateway")]["requests"] == requests
    assert edges[("user", "istio-ingressgateway")]["sources"] == ["traces"]  # no reporter
    into_frontend = edges[("istio-ingressgateway", "frontend")]
    assert into_frontend["sources"] == ["mesh-metrics", "traces"]  # frontend's sidecar's count
    assert into_frontend["requests"] == requests
    assert nodes["istio-ingressgateway"]["requests"] == requests
    assert nodes["frontend"]["requests"] == requests
    # Linkerd's four spans per hop are one call, and so is its outbound count; templates
    # serves only those calls
    to_templates = edges[("email", "templates")]
    assert to_templates["sources"] == ["mesh-metrics", "traces"]
    assert to_templates["requests"] == nodes["templates"]["requests"] > 0


def test_mutual_tls_comes_from_the_meshes_metrics(demo_run: DemoRun) -> None:
    """Proxies' spans carry no TLS state: Istio's `connection_security_policy` at the
    destination and Linkerd's `tls` label say that every call between two proxies of one mesh
    is mutual TLS."""
    edges = demo_run.edges
    mutual = _mutual_edges()
    assert len(mutual) == 15  # gateway -> frontend and email -> templates among them
    for key in mutual:
        edge = edges[key]
        assert "mesh-metrics" in edge["sources"], key
        assert edge["mtls"]["coverage"] == 1.0, (key, edge["mtls"])
        assert edge["mtls"]["mutual"] > 0, key
    # calls recommendations' pods never got are counted by the caller's sidecar alone, which
    # cannot tell their TLS: unknown, and no part of the coverage
    recommendations = edges[("frontend", "recommendations")]["mtls"]
    assert recommendations["unknown"] > 0
    assert (
        recommendations["mutual"] + recommendations["unknown"]
        == (edges[("frontend", "recommendations")]["requests"])
    )
    # the consumer's span link edge: the TLS of its connection to the broker (spans only)
    assert edges[("checkout", "email")]["sources"] == ["traces"]
    assert edges[("checkout", "email")]["mtls"]["coverage"] == 1.0
    assert edges[("payments", "api.stripe.com")]["mtls"]["tls"] > 0  # one-way TLS outside


def test_calls_that_found_no_endpoint_make_no_node_of_their_own(demo_run: DemoRun) -> None:
    assert set(demo_run.nodes) == SERVICES | set(VIRTUAL)  # no node for a cluster's name


def test_the_call_to_a_workload_without_a_sidecar_stays_plaintext(demo_run: DemoRun) -> None:
    edges = demo_run.edges
    plaintext = [key for key, edge in edges.items() if edge["mtls"]["plaintext"] > 0]
    assert plaintext == [("checkout", "shipping")]
    to_shipping = edges[("checkout", "shipping")]
    assert to_shipping["requests"] == to_shipping["mtls"]["plaintext"] > 0
    assert to_shipping["mtls"]["coverage"] == 0.0


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
