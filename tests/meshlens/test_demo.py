"""`meshlens demo` against a real `meshlens serve`: every promise of the simulated mesh shows up
in the API (the graph, the canary, the plaintext edge, the failing dependency, saturation).

The server pairs fast (3 s pairing window), so calls to the broker and the external API, which
have no server half, become edges within seconds instead of minutes.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

from harness.ports import free_port
from harness.postgres import DatabaseFactory
from harness.repo import REPO
from harness.waiting import wait_until
from meshlens.demo.arrivals import Arrivals
from meshlens.demo.pipelines import workloads
from meshlens.demo.topology import shop
from meshlens.demo.traffic import Traffic
from tests.support import FAST_DERIVATION, RunningServer, running_server

SERVICES = {
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
    with running_server(databases.create(), log, **FAST_DERIVATION) as server:
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


def test_demo_fills_the_graph_with_everything_it_promises(fast_server: RunningServer) -> None:
    flags = ["--endpoint", fast_server.otlp_http, "--backfill", "5", "--backfill-rate", "3"]
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
    output = result.stdout
    assert fast_server.otlp_http in output
    assert f"dashboard: {fast_server.web}/" in output
    for promise in ("canary", "checkout -> shipping", "api.stripe.com", "recommendations"):
        assert promise in output

    def complete(graph: dict[str, Any]) -> bool:
        nodes = {node["id"] for node in graph["nodes"]}
        edges = {(edge["source"], edge["target"]) for edge in graph["edges"]}
        return (
            nodes >= SERVICES | set(VIRTUAL)
            and ("payments", "api.stripe.com") in edges
            and {("checkout", "kafka"), ("email", "kafka"), ("checkout", "email")} <= edges
        )

    seen: list[dict[str, Any]] = []

    def whole_graph() -> dict[str, Any] | None:
        seen.append(api(fast_server, "graph"))
        return seen[-1] if complete(seen[-1]) else None

    graph = wait_until(
        whole_graph, timeout=30, what=lambda: f"every promise in the graph: {seen[-1]}", every=0.5
    )
    assert complete(graph), graph
    types = {node["id"]: node["type"] for node in graph["nodes"]}
    assert {name for name, kind in types.items() if kind == "service"} == SERVICES
    assert {name: types[name] for name in VIRTUAL} == VIRTUAL
    edges = {(edge["source"], edge["target"]): edge for edge in graph["edges"]}

    plaintext = [key for key, edge in edges.items() if edge["mtls"]["plaintext"] > 0]
    assert plaintext == [("checkout", "shipping")]
    assert edges[("checkout", "shipping")]["mtls"]["coverage"] == 0.0
    between_services = [
        edge
        for key, edge in edges.items()
        if edge["source_type"] == edge["target_type"] == "service" and key not in plaintext
    ]
    assert len(between_services) == 14
    assert {edge["mtls"]["coverage"] for edge in between_services} == {1.0}
    assert edges[("payments", "api.stripe.com")]["mtls"]["tls"] > 0  # one-way TLS outside

    failing = edges[("payments", "api.stripe.com")]["error_rate"]
    others = [
        edge["error_rate"] or 0.0 for key, edge in edges.items() if key[1] != "api.stripe.com"
    ]
    assert 0.08 <= failing <= 0.3
    assert failing > 2 * max(others)

    saturation = {
        node["id"]: node["saturation"] for node in graph["nodes"] if node["id"] in SERVICES
    }
    assert all(value is not None and 0 < value <= 1 for value in saturation.values()), saturation
    assert max(saturation, key=lambda name: saturation[name]) == "recommendations"
    assert saturation["recommendations"] >= 0.75

    reviews = api(fast_server, "services/reviews")
    versions = {version["version"]: version for version in reviews["versions"]}
    assert set(versions) == {"v1", "v2"}
    assert 0.05 <= versions["v2"]["share"] <= 0.2
    assert versions["v2"]["error_rate"] > versions["v1"]["error_rate"]
    assert versions["v2"]["latency_ms"]["p50"] > versions["v1"]["latency_ms"]["p50"]


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


def _spans(seed: int) -> list[tuple[Any, ...]]:
    """What the demo's traffic records for one seed, without ids."""
    mesh = shop()
    exporter = InMemorySpanExporter()
    tracers: dict[tuple[str, str], Tracer] = {}
    for workload in workloads(mesh):
        provider = TracerProvider(resource=workload.resource(), shutdown_on_exit=False)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracers[workload.key] = provider.get_tracer("test")
    rng = random.Random(seed)
    traffic = Traffic(mesh, lambda service, version: tracers[(service, version)], rng)
    start = 1_700_000_000 * 1_000_000_000
    for at in Arrivals(rng, 5.0, start).until(start + 20 * 1_000_000_000):
        traffic.request(at)
    return [
        (
            span.resource.attributes["service.name"],
            span.resource.attributes["service.version"],
            span.name,
            span.kind,
            span.start_time,
            span.end_time,
            dict(span.attributes or {}),
            span.status.status_code,
        )
        for span in exporter.get_finished_spans()
    ]


def test_a_seed_repeats_the_traffic() -> None:
    first, again, other = _spans(7), _spans(7), _spans(8)
    assert len(first) > 500
    assert first == again
    assert first != other
