"""IngestPipeline: bounded queue -> batcher -> writers -> acknowledgement after commit.

Receivers `submit()` a decoded request and wait. Writer tasks (one database connection each)
take every queued request up to `batch_max_items` and write them in one transaction: while a
commit is in flight the next requests gather, so concurrent requests share a COPY and a commit
(group commit). A request is answered only after its commit; on any doubt it is answered with
a retryable error, and the client's resend is deduplicated by the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import psycopg

from collector.derive.saturation import merge_readings
from collector.errors import MalformedRequest, Overloaded, StoreUnavailable
from collector.metrics import IngestMetrics
from collector.rows import DecodedBatch
from collector.writer import PostgresWriter, WriteBatch

log = logging.getLogger("meshlens.collector")

WriterFactory = Callable[[], Awaitable[PostgresWriter]]


@dataclass(frozen=True, slots=True)
class PipelineLimits:
    """The pipeline's bounds (from Settings)."""

    queue_items: int
    batch_max_items: int
    writers: int
    timeout_seconds: float
    retry_after_seconds: int


@dataclass(slots=True)
class _Pending:
    batch: DecodedBatch
    done: asyncio.Future[None]


class IngestPipeline:
    """Group-commits submitted batches through a fixed set of writer connections."""

    def __init__(self, connect: WriterFactory, limits: PipelineLimits, metrics: IngestMetrics):
        self._connect = connect
        self._limits = limits
        self._metrics = metrics
        self._queue: deque[_Pending] = deque()
        self._queued_items = 0
        self._ready = asyncio.Event()
        self._healthy = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def healthy(self) -> bool:
        """True while at least one writer is connected."""
        return self._healthy > 0

    async def start(self) -> None:
        """Start the writer tasks (they connect, and reconnect, by themselves)."""
        self._tasks = [
            asyncio.create_task(self._run_writer(n), name=f"meshlens-writer-{n}")
            for n in range(self._limits.writers)
        ]

    async def stop(self, drain_seconds: float = 10.0) -> None:
        """Stop taking work, let queued batches commit for up to `drain_seconds`, then stop."""
        self._stopping = True
        deadline = time.monotonic() + drain_seconds
        while self._queue and self.healthy and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._fail_all(StoreUnavailable("meshlens is shutting down", self._retry_after))

    async def submit(self, batch: DecodedBatch) -> None:
        """Return once `batch` is committed; raise a RetryableError when it cannot be now."""
        if not batch.items:
            return
        self._admit(batch)
        pending = _Pending(batch, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        self._queued_items += batch.items
        self._metrics.queue_items.set(self._queued_items)
        self._ready.set()
        try:
            await asyncio.wait_for(asyncio.shield(pending.done), self._limits.timeout_seconds)
        except TimeoutError as exc:
            pending.done.add_done_callback(_retrieve)  # it may still commit: resends dedupe
            raise StoreUnavailable(
                f"not committed within {self._limits.timeout_seconds:g} s; the database is slow",
                self._retry_after,
            ) from exc

    @property
    def _retry_after(self) -> int:
        return self._limits.retry_after_seconds

    def _admit(self, batch: DecodedBatch) -> None:
        if self._stopping:
            raise StoreUnavailable("meshlens is shutting down", self._retry_after)
        if not self.healthy:
            raise StoreUnavailable("the database is unavailable", self._retry_after)
        over = self._queued_items + batch.items > self._limits.queue_items
        if over and self._queued_items > 0:  # a lone oversized request still gets through
            raise Overloaded(
                f"{self._queued_items} items are waiting to be committed; retry later",
                self._retry_after,
            )

    # -- writer tasks -------------------------------------------------------------------------

    async def _run_writer(self, number: int) -> None:
        writer: PostgresWriter | None = None
        try:
            while True:
                if writer is None or writer.closed:
                    writer = await self._reconnect(number)
                taken = await self._take()
                if not await self._write(writer, taken):
                    await self._disconnect(writer)
                    writer = None
        finally:
            if writer is not None:
                await self._disconnect(writer)

    async def _reconnect(self, number: int) -> PostgresWriter:
        delay = 0.2
        while True:
            try:
                writer = await self._connect()
            except (psycopg.Error, OSError) as exc:
                log.warning("writer %d cannot reach the database (%s); retrying", number, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self._healthy += 1
            self._metrics.healthy_writers.set(self._healthy)
            log.info("writer %d connected", number)
            return writer

    async def _disconnect(self, writer: PostgresWriter) -> None:
        self._healthy -= 1
        self._metrics.healthy_writers.set(self._healthy)
        if not self.healthy:  # nobody can write what waits: answer it now, hold nothing
            self._fail_all(StoreUnavailable("the database is unavailable", self._retry_after))
        with contextlib.suppress(psycopg.Error, OSError):
            await writer.close()

    async def _take(self) -> list[_Pending]:
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
        taken = [self._queue.popleft()]
        items = taken[0].batch.items
        while self._queue and items + self._queue[0].batch.items <= self._limits.batch_max_items:
            pending = self._queue.popleft()
            items += pending.batch.items
            taken.append(pending)
        return taken

    async def _write(self, writer: PostgresWriter, taken: list[_Pending]) -> bool:
        """Write `taken` in one commit and settle its requests; False when the link broke."""
        started = time.perf_counter()
        try:
            await writer.write(_merge(p.batch for p in taken))
        except psycopg.OperationalError as exc:
            log.warning("database write failed (%s); requests answered 503", exc)
            self._settle(taken, StoreUnavailable("the database is unavailable", self._retry_after))
            return False
        except (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError) as exc:
            log.warning("a batch was refused by the database (%s); retrying one by one", exc)
            await self._write_one_by_one(writer, taken)
            return not writer.closed
        self._metrics.commit_seconds.observe(time.perf_counter() - started)
        self._metrics.batch_items.observe(sum(p.batch.items for p in taken))
        self._metrics.batch_requests.observe(len(taken))
        self._settle(taken, None)
        return True

    async def _write_one_by_one(self, writer: PostgresWriter, taken: list[_Pending]) -> None:
        """Isolate the request the database refuses, so the others still commit."""
        for pending in taken:
            try:
                await writer.write(_merge([pending.batch]))
            except psycopg.OperationalError:
                error = StoreUnavailable("the database is unavailable", self._retry_after)
                self._settle([pending], error)
            except psycopg.Error as exc:
                message = f"the database refused this data: {exc.diag.message_primary or exc}"
                self._settle([pending], MalformedRequest(message))
            else:
                self._settle([pending], None)

    def _settle(self, taken: list[_Pending], error: Exception | None) -> None:
        for pending in taken:
            self._queued_items -= pending.batch.items
            if pending.done.done():
                continue
            if error is None:
                pending.done.set_result(None)
            else:
                pending.done.set_exception(error)
        self._metrics.queue_items.set(self._queued_items)

    def _fail_all(self, error: Exception) -> None:
        taken = list(self._queue)
        self._queue.clear()
        self._settle(taken, error)


def _merge(batches: Iterable[DecodedBatch]) -> WriteBatch:
    merged = WriteBatch()
    for batch in batches:
        merged.resources.update(batch.resources)
        if batch.sender is not None:
            merged.senders[batch.sender.id] = batch.sender.identity
        merged.series.update(batch.series)
        merged.spans.extend(batch.spans)
        merged.facts.extend(batch.facts)
        if batch.prepared is not None:
            merged.prepared.append(batch.prepared)
        merged.points.extend(batch.points)
        merged.edge_series.update(batch.edge_series)
        merge_readings(merged.saturation, batch.saturation)
    return merged


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark the outcome of an abandoned request as seen (nobody waits for it any more)."""
    if not future.cancelled():
        future.exception()
