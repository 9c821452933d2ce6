"""The load generator: OTLP/HTTP exports over raw HTTP/1.1 on asyncio streams.

One request in flight per keep-alive connection; each send is a template with fresh trace ids:
a prefix of its own per send, or, for a grouped set (the proxy workload, whose traces span
several requests), one prefix per round through the set.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from bench.server import HOST
from bench.templates import Template, id_prefix

REQUEST_TIMEOUT = 60.0
IDLE_SECONDS = 4.0  # a connection idle longer is opened again: uvicorn closes it after 5 s


class ProtocolError(Exception):
    """An HTTP answer this minimal client does not understand."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    retry_after: float
    close: bool


def request_head(port: int, length: int) -> bytes:
    """The head of an OTLP/HTTP protobuf export of a `length`-byte body."""
    return (
        f"POST /v1/traces HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Content-Type: application/x-protobuf\r\nContent-Length: {length}\r\n\r\n"
    ).encode("ascii")


class HttpConnection:
    """One keep-alive HTTP/1.1 connection; answers need a Content-Length (no chunking)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, port: int) -> HttpConnection:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    def close(self) -> None:
        self._writer.close()

    async def post(self, head: bytes, body: bytes) -> Answer:
        self._writer.write(head)
        self._writer.write(body)
        await self._writer.drain()
        return await self._answer()

    async def _answer(self) -> Answer:
        lines = (await self._reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise ProtocolError(f"bad status line {lines[0]!r}")
        headers = {}
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        length = headers.get(b"content-length")
        if length is None or not length.isdigit():
            raise ProtocolError("the answer has no Content-Length")
        body = await self._reader.readexactly(int(length)) if int(length) else b""
        retry_after = headers.get(b"retry-after", b"")
        return Answer(
            status=int(parts[1]),
            body=body,
            retry_after=float(retry_after) if retry_after.isdigit() else 1.0,
            close=headers.get(b"connection", b"").lower() == b"close",
        )


@dataclass
class LoadStats:
    """What the load generator saw; only answers completed inside the window are measured."""

    spans_per_request: int  # at most; a request's own count is passed to `record`
    window_start: float
    seconds: int
    per_second: list[int] = field(init=False)  # acknowledged spans by second of the window
    latencies: list[float] = field(default_factory=list)  # seconds, window requests
    acknowledged_total: int = 0  # warm-up and tail included: what the table must hold
    refused: Counter[int] = field(default_factory=Counter)  # non-200 answers by status
    refused_spans: int = 0
    rejected_spans: int = 0  # partial_success in 200 answers
    failures: Counter[str] = field(default_factory=Counter)  # transport errors by type
    messages: list[str] = field(default_factory=list)  # first few distinct error messages

    def __post_init__(self) -> None:
        self.per_second = [0] * self.seconds

    @property
    def window_end(self) -> float:
        return self.window_start + self.seconds

    def record(self, answer: Answer, started: float, done: float, spans: int) -> None:
        """The answer to a request of `spans` spans."""
        if answer.status != 200:
            self.refused[answer.status] += 1
            self.refused_spans += spans
            self._note(f"HTTP {answer.status}: {answer.body[:200]!r}")
            return
        acknowledged = spans - self._rejected(answer.body)
        self.acknowledged_total += acknowledged
        if self.window_start <= done < self.window_end:
            second = min(int(done - self.window_start), self.seconds - 1)
            self.per_second[second] += acknowledged
            self.latencies.append(done - started)

    def fail(self, exc: BaseException) -> None:
        self.failures[type(exc).__name__] += 1
        self._note(f"{type(exc).__name__}: {exc}")

    def _rejected(self, body: bytes) -> int:
        if not body:  # an empty ExportTraceServiceResponse: nothing rejected
            return 0
        partial = ExportTraceServiceResponse.FromString(body).partial_success
        if partial.rejected_spans:
            self.rejected_spans += partial.rejected_spans
            self._note(f"partial success: {partial.error_message}")
        return partial.rejected_spans

    def _note(self, message: str) -> None:
        if len(self.messages) < 5 and message not in self.messages:
            self.messages.append(message)


class Pacer:
    """Send times `interval` seconds apart, shared by the connections: a steady offered rate.

    Each turn is the next slot of the schedule, or now when the schedule has fallen behind (all
    connections were busy): a late turn shifts the schedule rather than bursting to catch up.
    """

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._next = time.perf_counter()

    async def wait_turn(self, stop: asyncio.Event) -> None:
        """Wait for this caller's turn, or until `stop` is set."""
        turn = max(self._next, time.perf_counter())
        self._next = turn + self._interval
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, turn - time.perf_counter()))


class LoadGenerator:
    """Keeps one request in flight per connection until stopped (paced by `pacer`, if any)."""

    def __init__(
        self,
        token: bytes,
        templates: Sequence[Template],
        port: int,
        stats: LoadStats,
        pacer: Pacer | None = None,
        *,
        grouped: bool = False,
    ):
        self._port = port
        self._stats = stats
        self._pacer = pacer
        self._grouped = grouped
        self._counter = itertools.count()
        self.stop = asyncio.Event()
        self.replace_templates(token, templates)

    def replace_templates(self, token: bytes, templates: Sequence[Template]) -> None:
        """Send these from now on (for instance the same requests timed afresh)."""
        self._token = token
        self._templates = templates
        self._heads = [request_head(self._port, len(t.body)) for t in templates]

    def next_send(self) -> tuple[Template, bytes, bytes]:
        """The next request to send: (template, head, fresh prefix for its trace ids).

        Sends go through the templates in turn; a grouped set shares one prefix per round
        (its requests hold parts of the same traces), any other send gets a prefix of its own.
        """
        send = next(self._counter)
        index = send % len(self._templates)
        number = send // len(self._templates) if self._grouped else send
        return self._templates[index], self._heads[index], id_prefix(number + 1)

    async def connection(self) -> None:
        """Send requests on one connection, reconnecting after errors, until `stop`."""
        conn: HttpConnection | None = None
        used = time.perf_counter()
        try:
            while True:
                if self._pacer is not None:
                    await self._pacer.wait_turn(self.stop)
                if self.stop.is_set():
                    return
                if conn is not None and time.perf_counter() - used > IDLE_SECONDS:
                    conn.close()  # the server may have closed it meanwhile: not a failure
                    conn = None
                conn = await self._send(conn)
                used = time.perf_counter()
        finally:
            if conn is not None:
                conn.close()

    async def _send(self, conn: HttpConnection | None) -> HttpConnection | None:
        """One request; returns the connection to use next (None: reconnect)."""
        template, head, prefix = self.next_send()  # taken together: templates may be replaced
        body = template.body.replace(self._token, prefix)
        try:
            if conn is None:
                conn = await HttpConnection.open(self._port)
            started = time.perf_counter()
            async with asyncio.timeout(REQUEST_TIMEOUT):
                answer = await conn.post(head, body)
        except (OSError, EOFError, TimeoutError, asyncio.LimitOverrunError, ProtocolError) as exc:
            self._stats.fail(exc)
            if conn is not None:
                conn.close()
            await asyncio.sleep(0.5)
            return None
        self._stats.record(answer, started, time.perf_counter(), template.spans)
        if answer.status != 200:  # back off as an OTLP exporter does
            await asyncio.sleep(answer.retry_after)
        if answer.close:
            conn.close()
            return None
        return conn
