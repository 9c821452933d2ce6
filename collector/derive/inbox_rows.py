"""From stored metric points to what the deriver needs: rows of `metric_points_inbox`.

After a batch's points are written, each point of a mesh series (`DecodedBatch.edge_series`)
that was really inserted (not a resend) becomes one inbox row: the point's reading (counter
value or histogram count, bucket counts, bounds in nanoseconds) with the edge its series
describes. The deriver turns cumulative readings into deltas in order (`derive.cumulative`)
and counts them on the edge. Utilization maxima go to `saturation_inbox` as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from collector.derive.mesh_metrics import EdgeSeries
from collector.rows import PointRow, SeriesRow

METRIC_INBOX_COLUMNS = (
    "series_id",
    "resource_id",
    "cumulative",
    "start_unix_nano",
    "time_unix_nano",
    "value",
    "bucket_counts",
    "explicit_bounds",
    "role",
    "source",
    "source_type",
    "target",
    "target_type",
    "error",
    "mtls",
    "plaintext_reason",
)
SATURATION_INBOX_COLUMNS = ("minute_unix", "service", "value")
TEMPORALITY_DELTA, TEMPORALITY_CUMULATIVE = 1, 2


def metric_inbox_rows(
    points: Iterable[PointRow],
    series: Mapping[int, SeriesRow],
    edges: Mapping[int, EdgeSeries],
    inserted: set[tuple[Any, Any]] | None,
) -> list[tuple[Any, ...]]:
    """Inbox rows of the mesh-series points among `points` that were inserted.

    `inserted`: the `(series_id, time_unix_nano)` the write inserted, None when all were.
    """
    rows = []
    seen: set[tuple[int, int]] = set()
    for point in points:
        edge = edges.get(point[0])
        if edge is None:
            continue
        key = (point[0], point[2])
        if inserted is not None and (key not in inserted or key in seen):
            continue  # a resend; or twice in this batch, stored once
        seen.add(key)
        row = _row(point, series[point[0]], edge)
        if row is not None:
            rows.append(row)
    return rows


def _row(point: PointRow, series: SeriesRow, edge: EdgeSeries) -> tuple[Any, ...] | None:
    if series.temporality not in (TEMPORALITY_DELTA, TEMPORALITY_CUMULATIVE):
        return None
    if point[9] is not None:  # histogram: count, buckets, bounds in nanoseconds
        value: float = float(point[5] or 0)
        bounds: list[float] | None = [b * edge.bound_ns for b in point[10] or ()]
    else:
        value = point[3] if point[3] is not None else float(point[4] or 0)
        bounds = None
    return (
        point[0],
        series.resource_id,
        series.temporality == TEMPORALITY_CUMULATIVE,
        point[1],
        point[2],
        value,
        point[9],
        bounds,
        edge.role,
        edge.source,
        edge.source_type,
        edge.target,
        edge.target_type,
        edge.error,
        edge.mtls,
        edge.plaintext_reason,
    )


def saturation_inbox_rows(readings: Mapping[tuple[int, str], float]) -> list[tuple[Any, ...]]:
    """Rows of `saturation_inbox`: minute, service, highest utilization."""
    return [(minute, service, value) for (minute, service), value in readings.items()]
