"""Shared parts of the fault-injection tests (`tests/test_reliability_*.py`).

Load comes from the official OpenTelemetry SDK exporters (OTLP over HTTP and over gRPC), called
directly from threads with batches of finished SDK spans, as a BatchSpanProcessor's worker
thread calls them; calling them directly keeps the bookkeeping exact: a span is *acknowledged*
when the `export()` of its batch returned SUCCESS, after the exporter's own retries.

Every batch holds one half of some requests: the CLIENT spans of a `frontend` service or the
SERVER spans of a `backend` service answering them, so halves reach meshlens in separate
requests (in either order, over either transport) and the deriver pairs them into the edge
frontend -> backend.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Tracer

from harness.waiting import wait_until
from tests.support import RunningServer, rss_bytes

SpanKey = tuple[bytes, bytes]  # (trace_id, span_id) as stored
MIB = 1024 * 1024
RSS_LIMIT_MIB = 300
"""The documented bound (README, Reliability): meshlens's resident memory under a database
outage or offered load above capacity, at the default queue and body limits."""


def span_key(span: ReadableSpan) -> SpanKey:
    context = span.get_span_context()
    assert context is not None
    return context.trace_id.to_bytes(16, "big"), context.span_id.to_bytes(8, "big")


def http_exporter(server: RunningServer, timeout: float) -> HttpSpanExporter:
    return HttpSpanExporter(endpoint=f"{server.otlp_http}/v1/traces", timeout=timeout)


def grpc_exporter(server: RunningServer, timeout: float) -> GrpcSpanExporter:
    return GrpcSpanExporter(endpoint=server.grpc_endpoint, insecure=True, timeout=timeout)


def exporters(server: RunningServer, count: int, timeout: float) -> list[SpanExporter]:
    """`count` exporters, alternately OTLP/HTTP and OTLP/gRPC."""
    makers = (http_exporter, grpc_exporter)
    return [makers[n % 2](server, timeout) for n in range(count)]


class _Finished(SpanProcessor):
    """Keeps the spans that ended, for the caller to export itself."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


class PairMaker:
    """Requests frontend -> backend made with the SDK: each a CLIENT span and its SERVER child."""

    def __init__(self, frontend: str, backend: str) -> None:
        self._finished = _Finished()
        self._tracers: dict[str, Tracer] = {}
        for name in (frontend, backend):
            provider = TracerProvider(resource=Resource.create({"service.name": name}))
            provider.add_span_processor(self._finished)
            self._tracers[name] = provider.get_tracer("tests.reliability")
        self._frontend, self._backend = frontend, backend

    def pairs(self, count: int) -> tuple[list[ReadableSpan], list[ReadableSpan]]:
        """`count` requests: (their client spans, their server spans)."""
        front, back = self._tracers[self._frontend], self._tracers[self._backend]
        for n in range(count):
            route = f"/items/{n % 7}"
            client_attributes = {"http.request.method": "GET", "server.address": self._backend}
            with (
                front.start_as_current_span(
                    f"GET {route}", kind=SpanKind.CLIENT, attributes=client_attributes
                ),
                back.start_as_current_span(
                    f"GET {route}",
                    kind=SpanKind.SERVER,
                    attributes={"http.route": route, "http.response.status_code": 200},
                ),
            ):
                pass
        spans, self._finished.spans = self._finished.spans, []
        clients = [s for s in spans if s.kind is SpanKind.CLIENT]
        servers = [s for s in spans if s.kind is SpanKind.SERVER]
        return clients, servers


@dataclass
class Ledger:
    """What the load emitted and what meshlens acknowledged, span by span (thread-safe)."""

    emitted: set[SpanKey] = field(default_factory=set)
    acknowledged: list[SpanKey] = field(default_factory=list)
    failed: list[SpanKey] = field(default_factory=list)
    acknowledged_batches: list[Sequence[ReadableSpan]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def emit(self, batch: Sequence[ReadableSpan]) -> None:
        with self._lock:
            self.emitted.update(map(span_key, batch))

    def settle(self, batch: Sequence[ReadableSpan], result: SpanExportResult) -> None:
        with self._lock:
            if result is SpanExportResult.SUCCESS:
                self.acknowledged.extend(map(span_key, batch))
                self.acknowledged_batches.append(batch)
            else:
                self.failed.extend(map(span_key, batch))

    def wait_acknowledged(self, count: int, timeout: float = 60) -> None:
        """Block until at least `count` spans have been acknowledged in all."""
        wait_until(
            lambda: self.acknowledged_count() >= count,
            timeout=timeout,
            what=lambda: f"{count} spans acknowledged, only {self.acknowledged_count()} were",
            every=0.05,
        )

    def acknowledged_count(self) -> int:
        with self._lock:
            return len(self.acknowledged)

    def batches_so_far(self) -> int:
        with self._lock:
            return len(self.acknowledged_batches)


class SdkLoad:
    """Threads exporting request halves through their own exporter each, until stopped."""

    def __init__(
        self,
        exporters: list[SpanExporter],
        maker: Callable[[], PairMaker],
        pairs_per_batch: int,
        pause: float = 0.0,
    ) -> None:
        self.ledger = Ledger()
        self._exporters = exporters
        self._maker = maker
        self._pairs = pairs_per_batch
        self._pause = pause  # seconds each thread waits between two batches
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._work, args=(e,), name=f"sdk-load-{n}", daemon=True)
            for n, e in enumerate(exporters)
        ]
        self.errors: list[BaseException] = []

    def __enter__(self) -> SdkLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop at once (also when the test failed): exports in flight give up retrying."""
        self._stop.set()
        for exporter in self._exporters:
            exporter.shutdown()
        for thread in self._threads:
            thread.join(10)

    def stop(self, timeout: float) -> None:
        """Stop emitting; wait for the exports in flight (with their retries) to finish."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0))
        alive = [t.name for t in self._threads if t.is_alive()]
        assert not alive, f"exports still running after {timeout} s: {alive}"
        assert not self.errors, self.errors

    def _work(self, exporter: SpanExporter) -> None:
        maker = self._maker()
        try:
            while not self._stop.is_set():
                halves = list(maker.pairs(self._pairs))
                random.shuffle(halves)  # server halves first as often as client halves
                for batch in halves:
                    self.ledger.emit(batch)
                    self.ledger.settle(batch, exporter.export(batch))
                self._stop.wait(self._pause)
        except BaseException as exc:  # reported by stop()
            self.errors.append(exc)


class RssSampler:
    """Samples a process's resident memory (VmRSS) every 50 ms in a thread; the process may
    change (a restart): `pid` is asked each time."""

    def __init__(self, pid: Callable[[], int]) -> None:
        self._pid = pid
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mib(self) -> float:
        return max(self.samples, default=0) / MIB

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            rss = rss_bytes(self._pid())
            if rss is not None:
                self.samples.append(rss)


def stored_counts(server: RunningServer, services: Sequence[str]) -> Counter[SpanKey]:
    """How many times each span of `services` is stored."""
    rows = server.query(
        "SELECT trace_id, span_id, count(*) FROM spans WHERE service = ANY(%s)"
        " GROUP BY trace_id, span_id",
        (list(services),),
    )
    return Counter({(bytes(t), bytes(s)): int(n) for t, s, n in rows})


def assert_stored_once(stored: Counter[SpanKey], expected: Sequence[SpanKey]) -> None:
    """Every span of `expected` is stored, and nothing stored is stored twice."""
    missing = set(expected) - set(stored)
    twice = {key: n for key, n in stored.items() if n > 1}
    assert not missing, f"{len(missing)} acknowledged spans are not stored"
    assert not twice, f"{len(twice)} spans are stored more than once"
