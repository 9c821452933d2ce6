"""Sends the rounds of scrapes of the proxies' metrics to meshlens, in order, on a thread of
their own, so that the traffic never waits for an export.

The thread is a daemon, as the SDK's span processors' are: a second Ctrl-C leaves at once,
whatever is still unsent. `flush` waits (a bounded time) for everything submitted so far.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, wait

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics.export import MetricExportResult, MetricsData

Counted = Callable[[int, bool], None]
"""Told how many points an export held and whether meshlens took them."""


class ScrapeSender:
    """One OTLP/HTTP metric exporter, fed rounds of scrapes from a queue."""

    def __init__(self, endpoint: str, timeout: float, counted: Counted) -> None:
        self._exporter = OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics", timeout=timeout)
        self._counted = counted
        self._queue: queue.SimpleQueue[tuple[MetricsData, Future[None]] | None]
        self._queue = queue.SimpleQueue()
        self._pending: list[Future[None]] = []
        self._thread = threading.Thread(target=self._run, name="meshlens-demo-scrapes", daemon=True)
        self._thread.start()

    def submit(self, data: MetricsData) -> None:
        """Queue one round of scrapes (rounds go out in the order they come)."""
        done: Future[None] = Future()
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(done)
        self._queue.put((data, done))

    def flush(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for every round submitted so far to be answered."""
        wait(self._pending, timeout=timeout)

    def close(self, timeout: float) -> None:
        """Send what is queued (waiting up to `timeout` seconds), then stop."""
        self._queue.put(None)
        self._thread.join(timeout)
        self._exporter.shutdown()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            data, done = item
            try:
                result = self._exporter.export(data)
                self._counted(_points(data), result is MetricExportResult.SUCCESS)
            finally:
                done.set_result(None)


def _points(data: MetricsData) -> int:
    return sum(
        len(metric.data.data_points)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    )
