"""The deriver's share of metrics: mesh-series points as edge deltas, utilization maxima.

Runs inside the deriver's pass (one transaction, one process at a time under its lock):
1. takes the points writers queued (`metric_points_inbox`: inserted points of Istio / Linkerd
   series, each with the edge its series describes), per series in time order;
2. turns cumulative points into deltas against the series' cursor (`series_cursors`, its
   newest point; rules in `collector.derive.cumulative`) and saves the new cursors;
3. counts the deltas on their edges, in the minute of the point's time, with source_kind
   'mesh-metrics': counters as requests (errors, mTLS state, plaintext reason), histograms as
   latency (`meshlens.signals.explicit_buckets`);
4. keeps the highest utilization per service and bucket (`saturation_inbox` ->
   `saturation_rollups`, at every resolution of `RESOLUTIONS`: 60 s, 600 s and 3600 s).
Cursors live in PostgreSQL, so a restart or another meshlens process continues each series
where it was; a point older than its series' cursor is ignored (counted as out_of_order).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any, NamedTuple

from psycopg import AsyncConnection

from collector.derive.batch import RollupSignals
from collector.derive.cardinality import DimensionBudget
from collector.derive.classify import MTLS_PLAINTEXT
from collector.derive.cumulative import Reading, advance
from collector.derive.mesh_metrics import REQUESTS
from collector.derive.rollup_fold import RollupFold
from meshlens.signals.explicit_buckets import from_explicit_buckets
from meshlens.signals.histogram import LatencyHistogram
from meshlens.timeunits import MINUTE, NANOS_PER_MINUTE, RESOLUTIONS

MESH_METRICS = "mesh-metrics"
DELTA_TEMPORALITY = "delta_temporality"


class InboxPoint(NamedTuple):
    """A row of `metric_points_inbox`, in its column order."""

    series_id: int
    resource_id: int
    cumulative: bool
    start_unix_nano: int
    time_unix_nano: int
    value: float
    bucket_counts: list[int] | None
    explicit_bounds: list[float] | None
    role: str
    source: str
    source_type: str
    target: str
    target_type: str
    error: bool
    mtls: int
    plaintext_reason: str

    def reading(self) -> Reading:
        buckets = tuple(self.bucket_counts) if self.bucket_counts is not None else None
        bounds = tuple(self.explicit_bounds) if self.explicit_bounds is not None else None
        return Reading(self.start_unix_nano, self.time_unix_nano, self.value, buckets, bounds)


async def fold_mesh_points(conn: AsyncConnection, fold: RollupFold) -> Counter[str]:
    """Take the queued mesh points, count their deltas into `fold`; returns outcome counts."""
    cursor = await conn.execute(f"DELETE FROM metric_points_inbox RETURNING {_INBOX}")
    by_series: dict[int, list[InboxPoint]] = defaultdict(list)
    for row in await cursor.fetchall():
        by_series[row[0]].append(InboxPoint(*row))
    outcomes: Counter[str] = Counter()
    if not by_series:
        return outcomes
    for points in by_series.values():
        points.sort(key=lambda p: p.time_unix_nano)
    cumulative = {sid: points for sid, points in by_series.items() if points[0].cumulative}
    cursors = await _cursors(conn, list(cumulative))
    first_seen = await _resources_first_seen(conn, cumulative, cursors)
    saved = []
    for series_id, points in by_series.items():
        if series_id not in cumulative:
            for point in points:
                _count(fold, point, point.reading())
            outcomes[DELTA_TEMPORALITY] += len(points)
            continue
        last = cursors.get(series_id)
        first = points[0]
        appeared = last is None and first_seen[first.resource_id] < first.time_unix_nano
        for point in points:
            step = advance(last, point.reading(), appeared=appeared)
            outcomes[step.outcome.value] += 1
            if step.counted:
                _count(fold, point, Reading(0, 0, step.value, step.buckets, step.cursor.bounds))
            last = step.cursor
        if last is not None and last is not cursors.get(series_id):
            saved.append(_cursor_row(series_id, first, last))
    await _save_cursors(conn, saved)
    return outcomes


def _count(fold: RollupFold, point: InboxPoint, delta: Reading) -> None:
    """Add one delta of `point`'s series to its edge, in the minute of the point's time."""
    minute = point.time_unix_nano // NANOS_PER_MINUTE * MINUTE
    key = (point.source, point.source_type, point.target, point.target_type)
    reasons = None
    if point.role == REQUESTS:
        n = round(delta.value)
        if n <= 0:
            return
        mtls = [0, 0, 0, 0]
        mtls[point.mtls] = n
        signals = RollupSignals(n, n if point.error else 0, LatencyHistogram(), mtls)
        if point.mtls == MTLS_PLAINTEXT and point.plaintext_reason:
            reasons = {point.plaintext_reason: n}
    else:
        latency = from_explicit_buckets(delta.bounds or (), delta.buckets or ())
        if not latency.counts:
            return
        signals = RollupSignals(latency=latency)
    fold.add("edge", minute, key, signals, MESH_METRICS, reasons)


async def _cursors(conn: AsyncConnection, series_ids: list[int]) -> dict[int, Reading]:
    if not series_ids:
        return {}
    cursor = await conn.execute(
        "SELECT series_id, start_unix_nano, time_unix_nano, value, bucket_counts,"
        " explicit_bounds FROM series_cursors WHERE series_id = ANY(%s)",
        (series_ids,),
    )
    return {
        row[0]: Reading(row[1], row[2], row[3], _tuple(row[4]), _tuple(row[5]))
        for row in await cursor.fetchall()
    }


async def _resources_first_seen(
    conn: AsyncConnection, series: dict[int, list[InboxPoint]], cursors: dict[int, Reading]
) -> dict[int, int]:
    """Per resource of a new series: the time of the first point of any of its series."""
    first: dict[int, int] = {}
    for series_id, points in series.items():
        if series_id not in cursors:
            resource, time = points[0].resource_id, points[0].time_unix_nano
            first[resource] = min(time, first.get(resource, time))
    if first:
        cursor = await conn.execute(
            "SELECT resource_id, min(first_unix_nano) FROM series_cursors"
            " WHERE resource_id = ANY(%s) GROUP BY resource_id",
            (list(first),),
        )
        for resource, time in await cursor.fetchall():
            first[resource] = min(time, first[resource])
    return first


def _cursor_row(series_id: int, first: InboxPoint, last: Reading) -> tuple[Any, ...]:
    return (
        series_id,
        first.resource_id,
        first.time_unix_nano,
        last.start_unix_nano,
        last.time_unix_nano,
        last.value,
        list(last.buckets) if last.buckets is not None else None,
        list(last.bounds) if last.bounds is not None else None,
    )


async def _save_cursors(conn: AsyncConnection, rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    async with conn.cursor() as cursor:
        await cursor.executemany(
            "INSERT INTO series_cursors (series_id, resource_id, first_unix_nano,"
            " start_unix_nano, time_unix_nano, value, bucket_counts, explicit_bounds)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (series_id) DO UPDATE SET"
            " start_unix_nano = EXCLUDED.start_unix_nano, time_unix_nano = EXCLUDED.time_unix_nano,"
            " value = EXCLUDED.value, bucket_counts = EXCLUDED.bucket_counts,"
            " explicit_bounds = EXCLUDED.explicit_bounds",
            rows,
        )


def _tuple(values: Iterable[Any] | None) -> tuple[Any, ...] | None:
    return tuple(values) if values is not None else None


async def fold_saturation(conn: AsyncConnection, budget: DimensionBudget | None = None) -> int:
    """Keep the highest queued utilization per service and bucket; returns rows written.
    A service over the budget's cap counts as the overflow node."""
    cursor = await conn.execute(
        "DELETE FROM saturation_inbox RETURNING minute_unix, service, value"
    )
    highest: dict[tuple[int, int, str], float] = {}
    for minute, name, value in await cursor.fetchall():
        service = budget.service(name) if budget is not None else name
        for resolution in RESOLUTIONS:
            key = (resolution, minute // resolution * resolution, service)
            highest[key] = max(value, highest.get(key, value))
    if not highest:
        return 0
    keys = sorted(highest)
    await conn.execute(
        "INSERT INTO saturation_rollups (resolution, bucket_unix, service, value)"
        " SELECT * FROM unnest(%s::int[], %s::bigint[], %s::text[], %s::float8[])"
        " ON CONFLICT (resolution, bucket_unix, service)"
        " DO UPDATE SET value = GREATEST(saturation_rollups.value, EXCLUDED.value)",
        (
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            [highest[k] for k in keys],
        ),
    )
    return len(keys)


_INBOX = (
    "series_id, resource_id, cumulative, start_unix_nano, time_unix_nano, value, bucket_counts,"
    " explicit_bounds, role, source, source_type, target, target_type, error, mtls,"
    " plaintext_reason"
)
