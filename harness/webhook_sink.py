"""A real HTTP server standing in for chat webhooks and Alertmanager receivers.

    with WebhookSink([500, 500, 200]) as sink:
        ...  # POST to sink.url
        first, second, third = sink.wait_for(3)
        assert third.json()["version"] == "4"

The sink listens on 127.0.0.1 (or another loopback address), records every request (method,
path, headers, body) and answers from a script: each entry is a status code or a `Reply` (status,
headers, body, delay); once the script is spent it answers `default` (200). `Reply.redirect` and
`Reply.json` build the usual answers; a `delay` longer than the client's timeout makes a timeout.
`connections` counts accepted TCP connections, to prove nothing connected at all.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socket import socket
from types import TracebackType
from typing import Any

from harness.waiting import wait_until


@dataclass(frozen=True, slots=True)
class Reply:
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    """Seconds to wait before answering (cut short when the sink closes)."""

    @classmethod
    def json(cls, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Reply:
        merged = {"Content-Type": "application/json", **(headers or {})}
        return cls(status, merged, json.dumps(payload).encode())

    @classmethod
    def redirect(cls, location: str, status: int = 307) -> Reply:
        return cls(status, {"Location": location})


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    headers: Mapping[str, str]
    """Names in lower case."""
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookSink:
    """A recording HTTP server on a loopback address, answering from a script."""

    def __init__(
        self,
        statuses: Iterable[int | Reply] = (),
        *,
        default: int | Reply = 200,
        host: str = "127.0.0.1",
        path: str = "/hooks/T0123/B0456/secret-token",
    ) -> None:
        self._script: deque[Reply] = deque(_reply(entry) for entry in statuses)
        self._default = _reply(default)
        self._requests: list[RecordedRequest] = []
        self._connections = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = _Server((host, 0), _handler_for(self))
        self._server.sink = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        self.host = host
        self.port: int = self._server.server_address[1]
        self.base_url = f"http://{host}:{self.port}"
        self.url = self.base_url + path
        """A webhook-looking URL (its path plays the secret)."""

    def url_for(self, path: str) -> str:
        return self.base_url + path

    def push(self, *entries: int | Reply) -> None:
        """Append answers to the script."""
        with self._lock:
            self._script.extend(_reply(entry) for entry in entries)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def connections(self) -> int:
        with self._lock:
            return self._connections

    def wait_for(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """The first `count` requests, waiting up to `timeout` seconds for them."""
        wait_until(
            lambda: len(self.requests) >= count,
            timeout=timeout,
            what=lambda: f"{count} requests, got {[f'{r.method} {r.path}' for r in self.requests]}",
            every=0.01,
        )
        return self.requests[:count]

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> WebhookSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _connected(self) -> None:
        with self._lock:
            self._connections += 1

    def _record(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self._requests.append(request)
            return self._script.popleft() if self._script else self._default


def _reply(entry: int | Reply) -> Reply:
    return entry if isinstance(entry, Reply) else Reply(entry)


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True
    sink: WebhookSink

    def get_request(self) -> tuple[socket, Any]:
        accepted = super().get_request()
        self.sink._connected()
        return accepted

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timeout tests) is not an error of the sink."""


def _handler_for(sink: WebhookSink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 10

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            reply = sink._record(RecordedRequest(self.command, self.path, headers, body))
            if reply.delay and sink._closing.wait(reply.delay):
                self.close_connection = True
                return
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(reply.body)
            self.close_connection = True

        do_POST = do_GET = do_PUT = _answer

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    return Handler
