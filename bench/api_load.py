"""Loading spans through meshlens's own ingest code, in this process, spread over 24 hours.

Each template request is decoded once by `OtlpDecoder` (as the server does). Every copy then
gets fresh trace ids (a per-copy 8-byte prefix in front of the trace's number) and its traces
moved into the copy's slice of the 24 hours: the decoded span rows and `SpanFacts` are patched,
no protobuf is built again. `PostgresWriter.write` stores batches of a few copies (COPY of the
spans, halves and pre-aggregated signals into the inboxes, one commit each) on WRITERS
connections, while a `Deriver` pass runs every DERIVE_INTERVAL seconds, as in `meshlens serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import AsyncConnection

from bench.api_traces import TOKEN, Template
from bench.templates import id_prefix
from collector.decode import OtlpDecoder, TimeWindow
from collector.derive.loop import Deriver, DeriveStats
from collector.derive.span_facts import SpanFacts
from collector.rows import ResourceRow, SpanRow
from collector.writer import KnownRows, PostgresWriter, WriteBatch
from meshlens import partitions
from meshlens.read.windows import bucket_ranges

WRITERS = 2  # meshlens serve's default writer connections
REQUESTS_PER_BATCH = 5  # about 5,000 spans per commit, as group commit makes under load
DERIVE_INTERVAL = 1.0  # seconds between deriver passes while loading (the server: 2)
PAIRING_WINDOW = 1.0  # every real pair is in one batch: only virtual calls wait, then expire
MARGIN_NS = 10_000_000_000  # traces start this long before the end at the latest
NANOS = 1_000_000_000
INBOXES = ("edge_halves_inbox", "edge_halves", "rollup_inbox")


@dataclass(frozen=True, slots=True)
class DecodedTemplate:
    """A template's rows and facts, with times relative to the start of their trace."""

    template: Template
    resources: dict[int, ResourceRow]
    # per span row: trace number, relative start and end, the columns before and after them
    rows: list[tuple[int, int, int, tuple[Any, ...], tuple[Any, ...]]]
    facts: list[tuple[int, int, SpanFacts]]  # trace number, relative start, facts
    suffixes: list[bytes]  # the 8 bytes after the prefix, per trace


def decode_templates(templates: Sequence[Template], base_ns: int) -> list[DecodedTemplate]:
    """Decode each template as the server would (accepting any time)."""
    decoder = OtlpDecoder()
    decoded = []
    for template in templates:
        batch = decoder.traces(template.body, TimeWindow(1, 2**63 - 1))
        if batch.rejected or len(batch.spans) != template.spans:
            raise RuntimeError(f"a template does not decode cleanly: {batch.error_message}")
        if any(row[0][:8] != TOKEN for row in batch.spans):
            raise RuntimeError("a decoded trace id does not start with the token")
        rows = [
            (_trace(row[0]), row[9] - base_ns, row[10] - base_ns, row[1:9], row[11:])
            for row in batch.spans
        ]
        facts = [(_trace(f.trace_id), f.start_unix_nano - base_ns, f) for f in batch.facts]
        suffixes = [(n + 1).to_bytes(8, "big") for n in range(len(template.fractions))]
        decoded.append(DecodedTemplate(template, batch.resources, rows, facts, suffixes))
    return decoded


def _trace(trace_id: bytes) -> int:
    return int.from_bytes(trace_id[8:], "big") - 1


@dataclass(frozen=True, slots=True)
class Plan:
    """`requests` copies of the templates spread evenly over `[start_ns, end_ns - MARGIN)`."""

    templates: list[DecodedTemplate]
    requests: int
    start_ns: int
    end_ns: int
    first_counter: int  # id prefixes of this plan: first_counter + copy number

    def batches(self) -> Iterator[tuple[WriteBatch, int]]:
        """WriteBatches of REQUESTS_PER_BATCH copies, in time order, and their copy count."""
        span = self.end_ns - MARGIN_NS - self.start_ns
        copies = range(self.requests)
        for first in range(0, self.requests, REQUESTS_PER_BATCH):
            batch = WriteBatch()
            chunk = copies[first : first + REQUESTS_PER_BATCH]
            for n in chunk:
                lo = self.start_ns + span * n // self.requests
                hi = self.start_ns + span * (n + 1) // self.requests
                template = self.templates[n % len(self.templates)]
                _patch(template, id_prefix(self.first_counter + n), lo, hi - lo, batch)
            yield batch, len(chunk)


def _patch(decoded: DecodedTemplate, prefix: bytes, lo: int, width: int, batch: WriteBatch) -> None:
    """Append a copy of `decoded` with fresh trace ids, its traces moved into [lo, lo+width)."""
    ids = [prefix + suffix for suffix in decoded.suffixes]
    bases = [lo + int(width * fraction) for fraction in decoded.template.fractions]
    batch.resources.update(decoded.resources)
    spans: list[SpanRow] = batch.spans
    spans.extend(
        (ids[t], *head, bases[t] + start, bases[t] + end, *tail)
        for t, start, end, head, tail in decoded.rows
    )
    batch.facts.extend(
        fact._replace(trace_id=ids[t], start_unix_nano=bases[t] + start)
        for t, start, fact in decoded.facts
    )


@dataclass(slots=True)
class LoadStats:
    """What loading one plan did, and how long it took."""

    requests: int = 0
    spans: int = 0
    servers: int = 0
    edge_requests: int = 0
    batches: int = 0
    seconds: float = 0.0  # writes, with derivation running beside them
    drain_seconds: float = 0.0  # the deriver's last passes, after the writes
    derive_passes: int = 0
    derive: dict[str, int] = field(default_factory=dict)

    @property
    def spans_per_second(self) -> float:
        """Spans stored and derived per second, drain included."""
        total = self.seconds + self.drain_seconds
        return self.spans / total if total else 0.0

    def add_pass(self, stats: DeriveStats) -> None:
        self.derive_passes += 1
        for name in ("pairs", "unpaired_counted", "inbox_rows", "rollup_rows"):
            self.derive[name] = self.derive.get(name, 0) + getattr(stats, name)


async def create_day_partitions(url: str, start_ns: int, end_ns: int, known: KnownRows) -> None:
    """The daily `spans` partitions of `[start_ns, end_ns]`, made before the load."""
    days = set(range(partitions.day_of(start_ns), partitions.day_of(end_ns) + 1))
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        await partitions.create_partitions(conn, "spans", days)
    known.days["spans"].update(days)


async def load(url: str, plan: Plan, known: KnownRows, progress: bool = True) -> LoadStats:
    """Write every batch of `plan` and derive until the inboxes are empty."""
    stats = LoadStats()
    batches = plan.batches()
    written = asyncio.Event()
    started = time.perf_counter()

    async def write(writer: PostgresWriter) -> None:
        for batch, copies in batches:  # the shared iterator hands each batch to one writer
            await writer.write(batch)
            stats.batches += 1
            stats.requests += copies
            stats.spans += len(batch.spans)
            if progress and stats.batches % 200 == 0:
                rate = stats.spans / (time.perf_counter() - started)
                print(f"  {stats.spans:>12,} spans   {rate:,.0f} spans/s", flush=True)

    async def derive() -> None:
        async with await AsyncConnection.connect(url) as conn:
            deriver = Deriver(PAIRING_WINDOW)
            while not written.is_set():
                stats.add_pass(await deriver.run_once(conn))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(written.wait(), DERIVE_INTERVAL)

    writers = [await PostgresWriter.connect(url, known) for _ in range(WRITERS)]
    deriving = asyncio.create_task(derive())
    try:
        await asyncio.gather(*(write(writer) for writer in writers))
    finally:
        written.set()
        for writer in writers:
            await writer.close()
        await deriving
    stats.seconds = time.perf_counter() - started
    drained = time.perf_counter()
    await drain(url, stats)
    stats.drain_seconds = time.perf_counter() - drained
    counts = [
        _counts(plan.templates[n % len(plan.templates)].template) for n in range(plan.requests)
    ]
    stats.servers = sum(c[0] for c in counts)
    stats.edge_requests = sum(c[1] for c in counts)
    return stats


def _counts(template: Template) -> tuple[int, int]:
    return template.servers, template.edge_requests


async def drain(url: str, stats: LoadStats) -> None:
    """Deriver passes until nothing waits: halves expire after PAIRING_WINDOW."""
    async with await AsyncConnection.connect(url) as conn:
        deriver = Deriver(PAIRING_WINDOW)
        for _ in itertools.count():
            stats.add_pass(await deriver.run_once(conn))
            if sum(await _waiting(conn)) == 0:
                return
            await asyncio.sleep(PAIRING_WINDOW / 2)


async def _waiting(conn: AsyncConnection) -> list[int]:
    waiting = []
    for table in INBOXES:
        cursor = await conn.execute(f"SELECT count(*) FROM {table}")
        row = await cursor.fetchone()
        waiting.append(int(row[0]) if row else 0)
    await conn.commit()
    return waiting


def vacuum_rollups(url: str) -> float:
    """VACUUM ANALYZE of the rollup tables (what autovacuum does over a day); its seconds."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) service_rollups, edge_rollups, saturation_rollups")
    return time.perf_counter() - started


def database_figures(url: str, end_unix: int) -> dict[str, Any]:
    """Row counts and sizes of what the API reads and of the raw spans, and the rollup rows
    a 15 m and a 24 h window ending at `end_unix` read (as `read.rollup_sql` selects them)."""
    figures: dict[str, Any] = {"rows_read": {}}
    with psycopg.connect(url) as conn:
        for window, seconds in (("15m", 900), ("24h", 86_400)):
            ranges = bucket_ranges(end_unix - seconds, end_unix)
            read = figures["rows_read"][window] = {"latency_buckets": 0}
            for table in ("service_rollups", "edge_rollups"):
                read[table] = 0
                for r in ranges:
                    row = conn.execute(
                        f"SELECT count(*), coalesce(sum(cardinality(latency_keys)), 0) FROM {table}"
                        " WHERE resolution = %s AND bucket_unix >= %s AND bucket_unix < %s",
                        (r.resolution, r.lo, r.hi),
                    ).fetchone()
                    assert row is not None
                    read[table] += int(row[0])
                    read["latency_buckets"] += int(row[1])
        for table in ("service_rollups", "edge_rollups"):
            row = conn.execute(
                f"SELECT count(*), count(*) FILTER (WHERE resolution = 60),"
                f" pg_total_relation_size('{table}') FROM {table}"
            ).fetchone()
            assert row is not None
            figures[table] = {"rows": row[0], "minute_rows": row[1], "bytes": row[2]}
        row = conn.execute(
            "SELECT count(*), min(start_unix_nano), max(start_unix_nano) FROM spans"
        ).fetchone()
        assert row is not None
        figures["spans"] = {
            "rows": row[0],
            "first_unix": _seconds(row[1]),
            "last_unix": _seconds(row[2]),
        }
        row = conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits"
            " WHERE inhparent = 'spans'::regclass"
        ).fetchone()
        figures["spans"]["bytes"] = int(row[0]) if row else 0
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        figures["database_bytes"] = int(row[0]) if row else 0
    return figures


def _seconds(unix_nano: int | None) -> int | None:
    return None if unix_nano is None else unix_nano // NANOS
