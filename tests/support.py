"""Test support: `meshlens serve` run as a real subprocess, and how the tests talk to it (what the
benchmarks share with the tests is in `harness`)."""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client.parser import text_string_to_metric_families

from harness.ports import free_port
from harness.repo import REPO
from harness.waiting import wait_until


@contextmanager
def reachable_temp_dir() -> Iterator[Path]:
    """A temporary folder the embedded PostgreSQL's unprivileged user can reach (mode 0755).

    pytest's own tmp_path lives under a 0700 folder of root's, which that user cannot enter.
    """
    path = Path(tempfile.mkdtemp(prefix="meshlens-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class RunningServer:
    """A `meshlens serve` subprocess and how to reach it."""

    process: subprocess.Popen[bytes]
    database_url: str
    grpc_port: int
    otlp_http_port: int
    web_port: int
    log_path: Path
    trust: Path | None = None  # CA of the server certificate when the ports speak TLS

    @property
    def scheme(self) -> str:
        return "http" if self.trust is None else "https"

    @property
    def otlp_http(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.otlp_http_port}"

    @property
    def web(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.web_port}"

    def web_client(self, **options: Any) -> httpx.Client:
        """An HTTP client of the web port (trusting its certificate over TLS)."""
        verify = True if self.trust is None else ssl.create_default_context(cafile=self.trust)
        return httpx.Client(base_url=self.web, verify=verify, **options)

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(sql, params).fetchall()


def run_meshlens(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`meshlens ARGS` run to its end from the repository, output captured as text (for
    commands that exit by themselves: refusals, checks, --help)."""
    return subprocess.run(
        [sys.executable, "-m", "meshlens.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


def start_server(
    database_url: str, log_path: Path, *, trust: Path | None = None, **env: str
) -> RunningServer:
    """Start `meshlens serve` on free ports and wait until /readyz says ready; another free
    port is tried when one was taken between the check and the bind (at most three times)."""
    for attempt in range(3):
        offset = log_path.stat().st_size if log_path.exists() else 0
        try:
            return _start_server(database_url, log_path, None, trust, **env)
        except (RuntimeError, AssertionError):  # exited early, or never ready
            taken = b"address already in use" in log_path.read_bytes()[offset:]
            if not taken or attempt == 2:
                raise
    raise AssertionError("unreachable")


def restart_server(server: RunningServer, **env: str) -> RunningServer:
    """A new `meshlens serve` on the database and ports of `server`, which has exited (as
    after a crash), so clients reach it where they reached the old one."""
    if server.process.poll() is None:
        raise RuntimeError("the server to replace is still running")
    ports = (server.grpc_port, server.otlp_http_port, server.web_port)
    return _start_server(server.database_url, server.log_path, ports, server.trust, **env)


def _start_server(
    database_url: str,
    log_path: Path,
    ports: tuple[int, int, int] | None,
    trust: Path | None = None,
    **env: str,
) -> RunningServer:
    grpc_port, http_port, web_port = ports or (free_port(), free_port(), free_port())
    environment = {
        **os.environ,
        "MESHLENS_DATABASE_URL": database_url,
        "MESHLENS_OTLP_GRPC_PORT": str(grpc_port),
        "MESHLENS_OTLP_HTTP_PORT": str(http_port),
        "MESHLENS_HTTP_PORT": str(web_port),
        **env,
    }
    with log_path.open("ab") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "meshlens.cli", "serve"],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    server = RunningServer(process, database_url, grpc_port, http_port, web_port, log_path, trust)
    wait_ready(server)
    return server


def wait_ready(server: RunningServer, timeout: float = 60.0) -> None:
    """Until /readyz of `server` says ready; RuntimeError when the process exits first."""

    def ready() -> bool:
        if server.process.poll() is not None:
            raise RuntimeError(f"meshlens exited early:\n{server.log()}")
        try:
            with server.web_client(timeout=1) as client:
                return client.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(
        ready,
        timeout=timeout,
        what=lambda: f"meshlens to become ready; its log:\n{server.log()}",
        every=0.1,
    )


def stop_server(server: RunningServer) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@contextmanager
def running_server(
    database_url: str, log_path: Path, *, trust: Path | None = None, **env: str
) -> Iterator[RunningServer]:
    server = start_server(database_url, log_path, trust=trust, **env)
    try:
        yield server
    finally:
        stop_server(server)


FAST_DERIVATION = {
    "MESHLENS_PAIRING_WINDOW_SECONDS": "3",
    "MESHLENS_DERIVE_INTERVAL_SECONDS": "0.3",
    "MESHLENS_UNPAIRED_COUNT_AFTER_SECONDS": "2",
}


def unique_names() -> Callable[[str], str]:
    """A namer that tags names with one random suffix, so tests sharing a server stay apart."""
    tag = uuid.uuid4().hex[:6]
    return lambda name: f"{name}-{tag}"


def sdk_provider(server: RunningServer, name: str, version: str) -> TracerProvider:
    """One service's OpenTelemetry SDK pipeline, exporting to `server` over OTLP/HTTP (as a
    separate process would; flush with `force_flush` and `shutdown`)."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": name, "service.version": version})
    )
    exporter = OTLPSpanExporter(endpoint=f"{server.otlp_http}/v1/traces", timeout=10)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=200))
    return provider


def rss_bytes(pid: int) -> int | None:
    """VmRSS of `pid`; None once it has exited."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None  # a zombie has no VmRSS


def metric_total(server: RunningServer, sample: str, **labels: str) -> float:
    """The sum of `sample` in /metrics over the series matching `labels`."""
    text = httpx.get(f"{server.web}/metrics", timeout=10).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    )
