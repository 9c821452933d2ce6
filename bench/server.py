"""`meshlens serve` as a subprocess of the benchmark."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.ports import free_port
from harness.repo import REPO
from harness.waiting import wait_until
from meshlens.settings import Settings

HOST = "127.0.0.1"  # meshlens serve's default listen address
READY_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class Server:
    """A `meshlens serve` subprocess and its ports."""

    process: subprocess.Popen[bytes]
    database_url: str
    otlp_http_port: int
    web_port: int
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def start_server(database_url: str, log_path: Path, **env: str) -> Server:
    """Start `meshlens serve` on free ports and wait until /readyz says ready; `env` adds
    MESHLENS_* settings."""
    otlp_http_port, web_port = free_port(), free_port()
    environment = {
        **os.environ,  # other MESHLENS_* settings reach the server (see server_overrides)
        "MESHLENS_HOST": HOST,
        "MESHLENS_DATABASE_URL": database_url,
        "MESHLENS_OTLP_GRPC_PORT": str(free_port()),
        "MESHLENS_OTLP_HTTP_PORT": str(otlp_http_port),
        "MESHLENS_HTTP_PORT": str(web_port),
        **env,
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "meshlens.cli", "serve"],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    server = Server(process, database_url, otlp_http_port, web_port, log_path)
    try:
        _wait_ready(server)
    except BaseException:
        stop_server(server)
        raise
    return server


def server_writers() -> int:
    """The server's writer connections: MESHLENS_WRITER_CONNECTIONS, or the default."""
    from_environment: dict[str, Any] = {}  # Settings reads MESHLENS_* itself
    return Settings(**from_environment).writer_connections


def server_overrides() -> dict[str, str]:
    """MESHLENS_* settings from the environment that the server runs with, besides ours."""
    ours = {"MESHLENS_HOST", "MESHLENS_DATABASE_URL", "MESHLENS_DATA_DIR"}
    ours |= {f"MESHLENS_{port}_PORT" for port in ("OTLP_GRPC", "OTLP_HTTP", "HTTP")}
    return {
        name: value
        for name, value in sorted(os.environ.items())
        if name.startswith("MESHLENS_") and name not in ours
    }


def _wait_ready(server: Server) -> None:
    def ready() -> bool:
        if server.process.poll() is not None:
            raise RuntimeError(f"meshlens serve exited early:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{server.web_port}/readyz", timeout=1):
                return True  # urlopen raises on a 503 (not ready yet)
        except (urllib.error.URLError, OSError):
            return False

    wait_until(
        ready,
        timeout=READY_TIMEOUT,
        what=lambda: f"meshlens serve to become ready:\n{server.log_tail()}",
        every=0.1,
    )


def stop_server(server: Server) -> None:
    """SIGTERM (meshlens drains its queue), then SIGKILL after 30 s."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
