"""PostgresWriter: one database connection writing whole batches with COPY, one commit each.

Spans are COPYed straight into the partitioned table. A resent span violates the unique
`(trace_id, span_id, start_unix_nano)` index; the batch then goes through a session-local
staging table and `INSERT .. ON CONFLICT DO NOTHING`, so resends are stored once and the
common case stays a plain COPY. Metric points work the same way on `(series_id, time)`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from psycopg import AsyncConnection, errors, sql

from collector.derive.at_ingest import InboxRows, point_inbox, span_inbox
from collector.derive.mesh_metrics import EdgeSeries
from collector.derive.span_facts import SpanFacts
from collector.rows import (
    POINT_COLUMNS,
    SPAN_COLUMNS,
    PointRow,
    PreparedSpans,
    ResourceRow,
    SeriesRow,
    SpanRow,
)
from collector.series_budget import (
    FOLDED_POINT_COLUMNS,
    FOLDED_POINT_IDENTITY,
    SeriesBudget,
    SeriesPlan,
    points_inserted,
)
from meshlens import partitions
from meshlens.schema import PARTITIONED_TABLES
from meshlens.timeunits import NANOS_PER_DAY

_POINT_IDENTITY = ("series_id", "time_unix_nano")


@dataclass(slots=True)
class WriteBatch:
    """Everything one group commit writes: rows merged from several requests."""

    resources: dict[int, ResourceRow] = field(default_factory=dict)
    series: dict[int, SeriesRow] = field(default_factory=dict)
    spans: list[SpanRow] = field(default_factory=list)
    facts: list[SpanFacts] = field(default_factory=list)
    prepared: list[PreparedSpans] = field(default_factory=list)  # formatted by decode workers
    points: list[PointRow] = field(default_factory=list)
    edge_series: dict[int, EdgeSeries] = field(default_factory=dict)
    saturation: dict[tuple[int, str], float] = field(default_factory=dict)
    senders: dict[int, str] = field(default_factory=dict)  # id -> client certificate identity


class KnownRows:
    """Ids of resources, senders, series and partitions known to exist; shared by the
    writers."""

    def __init__(self) -> None:
        self.resources: set[int] = set()
        self.senders: set[int] = set()
        self.series: set[int] = set()
        self.days: dict[str, set[int]] = {table: set() for table in PARTITIONED_TABLES}
        self.series_budget: SeriesBudget | None = None  # None: series are not capped


class PostgresWriter:
    """Writes batches on one connection; raises psycopg errors for the pipeline to map."""

    def __init__(self, conn: AsyncConnection, known: KnownRows) -> None:
        self._conn = conn
        self._known = known
        self._staging_ready = False

    @classmethod
    async def connect(cls, conninfo: str, known: KnownRows) -> PostgresWriter:
        """Open a connection for writing (short connect timeout, bounded statements)."""
        conn = await AsyncConnection.connect(
            conninfo, connect_timeout=5, options="-c statement_timeout=60000"
        )
        return cls(conn, known)

    @property
    def closed(self) -> bool:
        """True once the connection is gone."""
        return self._conn.closed

    async def close(self) -> None:
        """Close the connection, ignoring errors of an already broken one."""
        await self._conn.close()

    async def write(self, batch: WriteBatch) -> None:
        """Write and commit `batch` in one transaction."""
        try:
            await self._write(batch)
        except errors.CheckViolation:  # "no partition for row": one was dropped under us
            for days in self._known.days.values():
                days.clear()
            await self._write(batch)

    async def _write(self, batch: WriteBatch) -> None:
        prepared_days = (day * NANOS_PER_DAY for p in batch.prepared for day in p.days)
        await self._ensure_partitions(
            "spans", chain((row[9] for row in batch.spans), prepared_days)
        )
        await self._ensure_partitions("metric_points", (row[2] for row in batch.points))
        async with self._conn.transaction():
            plan = await self._plan_series(batch)  # first: it may wait for the budget's lock
            await self._insert_resources(batch.resources.values())
            await self._insert_senders(batch.senders)
            await self._insert_series(plan.insert if plan else batch.series.values())
            if batch.spans or batch.prepared:
                texts = [p.copy_text for p in batch.prepared]
                inserted = await self._copy_idempotent(
                    "spans", SPAN_COLUMNS, batch.spans, texts=texts
                )
                await self._queue(span_inbox(batch.facts, batch.prepared, inserted))
            if batch.points:
                inserted = await self._write_points(batch, plan)
                edges, saturation = batch.edge_series, batch.saturation
                await self._queue(
                    point_inbox(batch.points, batch.series, edges, saturation, inserted)
                )
        self._known.resources.update(batch.resources)
        self._known.senders.update(batch.senders)
        if plan is None:
            self._known.series.update(batch.series)
        else:
            self._known.series.update(plan.known_after())
            if self._known.series_budget is not None:
                self._known.series_budget.settle(plan)

    async def _plan_series(self, batch: WriteBatch) -> SeriesPlan | None:
        budget = self._known.series_budget
        if budget is None or not batch.series:
            return None
        return await budget.plan(self._conn, batch.series, self._known.series)

    async def _write_points(
        self, batch: WriteBatch, plan: SeriesPlan | None
    ) -> set[tuple[Any, ...]] | None:
        """Store the points, those of series over the cap under their overflow series;
        returns the (series id, time) inserted, None when all were."""
        if plan is None:
            return await self._copy_idempotent(
                "metric_points", POINT_COLUMNS, batch.points, _POINT_IDENTITY
            )
        kept, folded = plan.split(batch.points)
        inserted = await self._copy_idempotent(
            "metric_points", POINT_COLUMNS, kept, _POINT_IDENTITY
        )
        if not folded:
            return inserted
        folded_inserted = await self._copy_idempotent(
            "metric_points", FOLDED_POINT_COLUMNS, folded, FOLDED_POINT_IDENTITY
        )
        plan.points_folded = len(folded if folded_inserted is None else folded_inserted)
        return points_inserted(kept, inserted, folded, folded_inserted)

    async def _ensure_partitions(self, table: str, times: Iterable[int]) -> None:
        days = {t // NANOS_PER_DAY for t in times} - self._known.days[table]
        if days:
            await partitions.create_partitions(self._conn, table, days)
            self._known.days[table].update(days)

    async def _insert_resources(self, rows: Iterable[ResourceRow]) -> None:
        new = [r for r in rows if r.id not in self._known.resources]
        if not new:
            return
        await self._conn.execute(
            "INSERT INTO resources (id, service, attributes) "
            "SELECT * FROM unnest(%s::bigint[], %s::text[], %s::jsonb[]) ON CONFLICT DO NOTHING",
            ([r.id for r in new], [r.service for r in new], [r.attributes for r in new]),
        )

    async def _insert_senders(self, senders: dict[int, str]) -> None:
        new = [
            (id_, identity) for id_, identity in senders.items() if id_ not in self._known.senders
        ]
        if not new:
            return
        await self._conn.execute(
            "INSERT INTO senders (id, identity) "
            "SELECT * FROM unnest(%s::bigint[], %s::text[]) ON CONFLICT DO NOTHING",
            ([id_ for id_, _ in new], [identity for _, identity in new]),
        )

    async def _insert_series(self, rows: Iterable[SeriesRow]) -> None:
        new = [r for r in rows if r.id not in self._known.series]
        if not new:
            return
        columns = [
            [r.id for r in new],
            [r.name for r in new],
            [r.description for r in new],
            [r.unit for r in new],
            [r.type for r in new],
            [r.temporality for r in new],
            [r.is_monotonic for r in new],
            [r.resource_id for r in new],
            [r.service for r in new],
            [r.scope_name for r in new],
            [r.attributes for r in new],
        ]
        await self._conn.execute(
            "INSERT INTO metric_series (id, name, description, unit, type, temporality, "
            "is_monotonic, resource_id, service, scope_name, attributes) "
            "SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], "
            "%s::smallint[], %s::boolean[], %s::bigint[], %s::text[], %s::text[], %s::jsonb[]) "
            "ON CONFLICT DO NOTHING",
            columns,
        )

    async def _queue(self, inbox: list[InboxRows]) -> None:
        """COPY what the derive stage queues for the deriver, in this transaction."""
        for table, columns, rows in inbox:
            await self._copy(table, columns, rows)

    async def _copy_idempotent(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        identity: Sequence[str] | None = None,
        texts: Sequence[bytes] = (),
    ) -> set[tuple[Any, ...]] | None:
        """COPY `rows` (and `texts`, rows already in COPY text); with resends among them,
        insert the new ones only.

        Returns None when every row was new, else the inserted rows' `identity` columns
        (by default the first two).
        """
        try:
            async with self._conn.transaction():  # a savepoint: the fast path may fail
                await self._copy(table, columns, rows, texts)
            return None
        except errors.UniqueViolation:
            key = identity or columns[:2]
            return await self._copy_deduplicated(table, columns, rows, key, texts)

    async def _copy(
        self,
        table: str,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        texts: Sequence[bytes] = (),
    ) -> None:
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
        )
        async with self._conn.cursor().copy(statement) as copy:
            for row in rows:
                await copy.write_row(row)
            for text in texts:
                await copy.write(text)

    async def _copy_deduplicated(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        identity: Sequence[str],
        texts: Sequence[bytes] = (),
    ) -> set[tuple[Any, ...]]:
        staging = f"{table}_incoming"
        await self._conn.execute(
            sql.SQL(
                "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS)"
                " ON COMMIT DELETE ROWS"
            ).format(sql.Identifier(staging), sql.Identifier(table))
        )
        await self._copy(staging, columns, rows, texts)
        names = sql.SQL(", ").join(map(sql.Identifier, columns))
        returned = sql.SQL(", ").join(map(sql.Identifier, identity))
        cursor = await self._conn.execute(
            sql.SQL(
                "INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING RETURNING {}"
            ).format(sql.Identifier(table), names, names, sql.Identifier(staging), returned)
        )
        return {tuple(row) for row in await cursor.fetchall()}
