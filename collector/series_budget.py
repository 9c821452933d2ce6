"""The cardinality budget of metric series: at most `cap` rows in `metric_series`.

Every distinct (metric, attributes, resource) is a row of `metric_series`, kept for good; a
label holding a request id or a pod name makes millions. The writers admit new series while
fewer than `cap` exist; a series that comes after is folded into the overflow series of its
metric: one `metric_series` row per (name, type, unit, temporality, monotonicity), with
service `meshlens.overflow`, resource 0 and the attributes `{"otel.metric.overflow": true}`
(the OpenTelemetry SDKs' own overflow attribute). After `MAX_OVERFLOW_METRICS` such rows,
further metric names fold into the overflow series named `meshlens.overflow`.

Nothing is dropped: a folded point is stored as received under the overflow series, with the
fingerprint of its own series in `metric_points.overflow_key`, so resends are still stored
once and two series' points at the same time stay two points. Only their distinguishing
attributes are not kept. Istio / Linkerd points are still turned into deltas per original
series (the cursor is keyed by that fingerprint, and dropped after the point retention like
the points), so counters never mix; their edges go through the deriver's budget.

Admission is exact across writers and meshlens processes: a batch with series the database
does not have takes the row lock of `cardinality_usage` ('series'), which counts the admitted
series, before anything else in its transaction. Series seen once are remembered in memory
(admitted ones in `KnownRows.series`; folded ones in a bounded cache), so steady ingest
takes no lock and runs no query.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from psycopg import AsyncConnection

from collector.decode.attributes import fingerprint
from collector.derive.cardinality import OVERFLOW, FirstFold, Kind
from collector.rows import POINT_COLUMNS, PointRow, SeriesRow

OVERFLOW_ATTRIBUTES = '{"otel.metric.overflow": true}'
OVERFLOW_RESOURCE = 0
MAX_OVERFLOW_METRICS = 1000
FOLDED_POINT_COLUMNS = (*POINT_COLUMNS, "overflow_key")
FOLDED_POINT_IDENTITY = ("series_id", "time_unix_nano", "overflow_key")
_CACHE_LIMIT = 100_000
_LOCK_USAGE = "SELECT used FROM cardinality_usage WHERE kind = 'series' FOR UPDATE"


@dataclass(slots=True)
class SeriesPlan:
    """One batch's series: which to insert, and which fold into which overflow series."""

    insert: list[SeriesRow] = field(default_factory=list)
    exist: set[int] = field(default_factory=set)  # ids known to be in `metric_series` after
    folded: dict[int, SeriesRow] = field(default_factory=dict)  # series id -> overflow series
    admitted: int = 0  # new series counted in `cardinality_usage`
    full: bool = False  # the cap is reached once this plan commits
    used: int | None = None  # admitted series once this plan commits, when it counted them
    points_folded: int = 0  # folded points the write inserted (resends are not)

    def known_after(self) -> set[int]:
        """The series ids in `metric_series` once this plan's batch committed."""
        return self.exist | {row.id for row in self.insert}

    def split(self, points: Sequence[PointRow]) -> tuple[Sequence[PointRow], list[tuple[Any, ...]]]:
        """The points of their own series, and the folded ones as rows of
        FOLDED_POINT_COLUMNS (the overflow series' id, ..., the own series' id)."""
        if not self.folded:
            return points, []
        kept, folded = [], []
        for point in points:
            overflow = self.folded.get(point[0])
            if overflow is None:
                kept.append(point)
            else:
                folded.append((overflow.id, *point[1:], point[0]))
        return kept, folded


class SeriesBudget:
    """Admits metric series up to `cap` (0: no cap); shared by one process's writers."""

    def __init__(
        self,
        cap: int,
        on_first_fold: FirstFold | None = None,
        on_points_folded: Callable[[int], None] | None = None,
    ) -> None:
        self.cap = cap
        self.full = False
        self.used = 0  # admitted series, as last seen
        self._on_points_folded = on_points_folded
        self._folded: set[int] = set()  # series ids known to be over the cap (bounded cache)
        self._overflow_ids: set[int] = set()  # overflow series rows known
        self._on_first_fold = on_first_fold
        self._warned = False

    async def load(self, conn: AsyncConnection) -> int:
        """Recount the admitted series (under the counter's lock) and learn the overflow
        series rows; returns the admitted count."""
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO cardinality_usage (kind, used) VALUES ('series', 0)"
                " ON CONFLICT DO NOTHING"
            )
            await conn.execute(_LOCK_USAGE)
            cursor = await conn.execute(
                "UPDATE cardinality_usage SET used ="
                " (SELECT count(*) FROM metric_series WHERE resource_id <> %s)"
                " WHERE kind = 'series' RETURNING used",
                (OVERFLOW_RESOURCE,),
            )
            row = await cursor.fetchone()
            cursor = await conn.execute(
                "SELECT id FROM metric_series WHERE resource_id = %s", (OVERFLOW_RESOURCE,)
            )
            self._overflow_ids = {found for (found,) in await cursor.fetchall()}
        self.used = int(row[0]) if row else 0
        self.full = 0 < self.cap <= self.used
        return self.used

    async def plan(
        self, conn: AsyncConnection, series: Mapping[int, SeriesRow], known: set[int]
    ) -> SeriesPlan:
        """Decide, in the batch's transaction (before its other writes), which of `series`
        are admitted and which fold; `known`: ids known to be in `metric_series`."""
        plan = SeriesPlan()
        unknown = [sid for sid in series if sid not in known and sid not in self._folded]
        for sid in series:
            if sid in self._folded:
                self._fold(plan, series[sid])
        if not unknown or self.cap == 0:
            plan.insert = [series[sid] for sid in unknown]
            return plan
        new = await _missing(conn, unknown, plan.exist)
        if new and not self.full:
            cursor = await conn.execute(_LOCK_USAGE)
            row = await cursor.fetchone()
            used = int(row[0]) if row else 0
            new = await _missing(conn, new, plan.exist)  # admitted by others meanwhile
            plan.admitted = min(len(new), max(0, self.cap - used))
            if plan.admitted:
                await conn.execute(
                    "UPDATE cardinality_usage SET used = used + %s WHERE kind = 'series'",
                    (plan.admitted,),
                )
            plan.full = used + plan.admitted >= self.cap
            plan.used = used + plan.admitted
            plan.insert = [series[sid] for sid in new[: plan.admitted]]
            plan.exist.update(new[: plan.admitted])
            new = new[plan.admitted :]
        for sid in new:
            self._fold(plan, series[sid])
        return plan

    def settle(self, plan: SeriesPlan) -> None:
        """The plan's batch committed: remember what it decided."""
        folded = [sid for sid in plan.folded if sid not in self._folded]
        if len(self._folded) + len(folded) > _CACHE_LIMIT:
            self._folded.clear()
        self._folded.update(folded)
        self._overflow_ids.update(row.id for row in plan.folded.values())
        if plan.points_folded and self._on_points_folded is not None:
            self._on_points_folded(plan.points_folded)
        if plan.used is not None:
            self.used = plan.used
        self.full = self.full or plan.full or bool(plan.folded)
        if plan.folded and not self._warned:
            self._warned = True
            if self._on_first_fold is not None:
                self._on_first_fold(Kind.SERIES)

    def _fold(self, plan: SeriesPlan, row: SeriesRow) -> None:
        overflow = overflow_series(row, named=self._named(row))
        if overflow.id not in self._overflow_ids and overflow.id not in plan.exist:
            plan.insert.append(overflow)
            plan.exist.add(overflow.id)
        plan.folded[row.id] = overflow

    def _named(self, row: SeriesRow) -> bool:
        """Whether the overflow series of `row` keeps its metric's name (bounded)."""
        if len(self._overflow_ids) < MAX_OVERFLOW_METRICS:
            return True
        return overflow_series(row, named=True).id in self._overflow_ids


def overflow_series(row: SeriesRow, *, named: bool = True) -> SeriesRow:
    """The overflow series `row` folds into: its metric's, or the catch-all named
    `meshlens.overflow` (`named=False`)."""
    name = row.name if named else OVERFLOW
    canonical = orjson.dumps(
        [OVERFLOW, name, row.type, row.unit, row.temporality, row.is_monotonic]
    )
    return SeriesRow(
        id=fingerprint(canonical),
        name=name,
        description="",
        unit=row.unit,
        type=row.type,
        temporality=row.temporality,
        is_monotonic=row.is_monotonic,
        resource_id=OVERFLOW_RESOURCE,
        service=OVERFLOW,
        scope_name="",
        attributes=OVERFLOW_ATTRIBUTES,
    )


async def _missing(conn: AsyncConnection, ids: list[int], exist: set[int]) -> list[int]:
    """The ids among `ids` that `metric_series` does not have (those it has go to `exist`)."""
    cursor = await conn.execute("SELECT id FROM metric_series WHERE id = ANY(%s)", (ids,))
    found = {sid for (sid,) in await cursor.fetchall()}
    exist.update(found)
    return [sid for sid in ids if sid not in found]


def points_inserted(
    kept: Iterable[PointRow],
    kept_inserted: set[tuple[Any, ...]] | None,
    folded: Iterable[tuple[Any, ...]],
    folded_inserted: set[tuple[Any, ...]] | None,
) -> set[tuple[Any, ...]] | None:
    """The (own series id, time) of the points a write inserted; None when all were."""
    if kept_inserted is None and folded_inserted is None:
        return None
    inserted = kept_inserted if kept_inserted is not None else {(p[0], p[2]) for p in kept}
    if folded_inserted is None:
        inserted.update((row[-1], row[2]) for row in folded)
    else:
        inserted.update((key, time) for _, time, key in folded_inserted)
    return inserted
