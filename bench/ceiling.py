"""The ceiling: the same spans COPYed straight into `spans`, no HTTP and no decoding."""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from bench.procstat import PostgresCpu, machine_cpu_delta, machine_cpu_seconds, own_cpu_seconds
from bench.templates import TOKEN_LENGTH, Template, id_prefix
from collector.decode import OtlpDecoder, TimeWindow
from collector.rows import SPAN_COLUMNS

CEILING_COUNTER_BASE = 1 << 62  # ceiling id prefixes never meet the HTTP run's
CEILING_BATCH_ROWS = 10_000
CEILING_MAX_RATE = 300_000  # spans/s: how many ceiling batches to prepare for --ceiling-seconds


@dataclass(frozen=True, slots=True)
class DecodedTemplate:
    """A template's span rows, split so each copy can put fresh trace ids in front."""

    trace_of_row: list[int]  # index into `suffixes`, per row
    rest: list[tuple[Any, ...]]  # each SpanRow without its trace_id
    suffixes: list[bytes]  # the unique 8 bytes after the token, per trace


def decode_template(template: Template, token: bytes) -> DecodedTemplate:
    """Decode `template` as the server does, accepting every time."""
    batch = OtlpDecoder().traces(template.body, TimeWindow(1, 2**63 - 1))
    if batch.rejected or len(batch.spans) != template.spans:
        raise RuntimeError(f"the template does not decode cleanly: {batch.error_message}")
    index: dict[bytes, int] = {}
    trace_of_row = []
    for row in batch.spans:
        if row[0][:TOKEN_LENGTH] != token:
            raise RuntimeError("a decoded trace id does not start with the token")
        trace_of_row.append(index.setdefault(row[0][TOKEN_LENGTH:], len(index)))
    return DecodedTemplate(trace_of_row, [row[1:] for row in batch.spans], list(index))


Chunk = tuple[DecodedTemplate, list[bytes]]  # a template and fresh trace ids for its traces


def templates_per_batch(spans_per_request: int) -> int:
    """Templates per ceiling batch: about CEILING_BATCH_ROWS rows."""
    return max(1, round(CEILING_BATCH_ROWS / spans_per_request))


def plan_batches(decoded: Sequence[DecodedTemplate], spans: int, seconds: int) -> list[list[Chunk]]:
    """Enough batches of about CEILING_BATCH_ROWS rows for `seconds` at CEILING_MAX_RATE."""
    chunks_per_batch = templates_per_batch(spans)
    batches = math.ceil(seconds * CEILING_MAX_RATE / (chunks_per_batch * spans))
    counter = itertools.count(CEILING_COUNTER_BASE)
    plan = []
    for b in range(batches):
        chunks = []
        for c in range(chunks_per_batch):
            template = decoded[(b * chunks_per_batch + c) % len(decoded)]
            prefix = id_prefix(next(counter))
            chunks.append((template, [prefix + suffix for suffix in template.suffixes]))
        plan.append(chunks)
    return plan


@dataclass(frozen=True, slots=True)
class Ceiling:
    """What the COPY ceiling wrote, how fast, and at what CPU cost."""

    writers: int
    rows: int
    seconds: float
    client_cpu_seconds: float
    postgres_cpu_seconds: dict[str, float] | None
    machine_seconds: tuple[float, float]  # busy, iowait
    exhausted: bool  # every prepared batch was written before the time was up

    @property
    def spans_per_second(self) -> float:
        return self.rows / self.seconds


COPY_SPANS = sql.SQL("COPY spans ({}) FROM STDIN").format(
    sql.SQL(", ").join(map(sql.Identifier, SPAN_COLUMNS))
)


class CeilingClock:
    """Wall time, client CPU, machine and PostgreSQL CPU between the writers' start and finish.

    Its methods are barrier actions: they run once every writer has arrived and before any
    goes on, so copying starts after the readings, and backends are alive for the last one.
    """

    def __init__(self, postgres: PostgresCpu | None) -> None:
        self._postgres = postgres
        self._begin = self._end = (0.0, 0.0, (0.0, 0.0))

    def start(self) -> None:
        if self._postgres is not None:
            self._postgres.start()
        self._begin = self._read()

    def stop(self) -> None:
        self._end = self._read()
        if self._postgres is not None:
            self._postgres.sample()

    def ceiling(self, writers: int, rows: int, exhausted: bool) -> Ceiling:
        (wall_end, client_end, machine_end), (wall, client, machine) = self._end, self._begin
        return Ceiling(
            writers=writers,
            rows=rows,
            seconds=wall_end - wall,
            client_cpu_seconds=client_end - client,
            postgres_cpu_seconds=self._postgres.seconds() if self._postgres else None,
            machine_seconds=machine_cpu_delta(machine_end, machine),
            exhausted=exhausted,
        )

    @staticmethod
    def _read() -> tuple[float, float, tuple[float, float]]:
        return time.perf_counter(), own_cpu_seconds(), machine_cpu_seconds()


def measure_ceiling(
    url: str, token: bytes, templates: Sequence[Template], seconds: int, writers: int
) -> Ceiling:
    """COPY batches from `writers` connections in parallel threads for `seconds`."""
    decoded = [decode_template(t, token) for t in templates]
    spans = max(1, round(sum(t.spans for t in templates) / len(templates)))  # per request
    plan = plan_batches(decoded, spans, seconds)
    prepared = sum(len(template.rest) for batch in plan for template, _ in batch)
    postgres = PostgresCpu.attach(url)
    clock = CeilingClock(postgres)
    started = threading.Barrier(writers, action=clock.start, timeout=60)
    finished = threading.Barrier(writers, action=clock.stop, timeout=seconds + 600)
    interrupted = threading.Event()
    try:
        with ThreadPoolExecutor(writers) as pool:
            futures = [
                pool.submit(
                    _copy_writer,
                    url,
                    plan[n::writers],
                    seconds,
                    (started, finished),
                    interrupted,
                )
                for n in range(writers)
            ]
            try:
                rows = sum(future.result() for future in futures)
            except BaseException:  # Ctrl-C: the writers stop after their current batch
                interrupted.set()
                raise
    finally:
        if postgres is not None:
            postgres.close()
    return clock.ceiling(writers, rows, exhausted=rows == prepared)


def _copy_writer(
    url: str,
    batches: Sequence[list[Chunk]],
    seconds: float,
    barriers: tuple[threading.Barrier, threading.Barrier],
    interrupted: threading.Event,
) -> int:
    """COPY `batches`, one commit each, for `seconds`; the number of rows written."""
    started, finished = barriers
    rows = 0
    try:
        with psycopg.connect(url) as conn:
            started.wait()
            deadline = time.perf_counter() + seconds
            for batch in batches:
                if time.perf_counter() >= deadline or interrupted.is_set():
                    break
                with conn.transaction(), conn.cursor().copy(COPY_SPANS) as copy:
                    for template, trace_ids in batch:
                        for trace, rest in zip(template.trace_of_row, template.rest, strict=True):
                            copy.write_row((trace_ids[trace], *rest))
                        rows += len(template.rest)
            finished.wait()
    except BaseException:
        started.abort()  # the other writer must not wait for this one
        finished.abort()
        raise
    return rows
