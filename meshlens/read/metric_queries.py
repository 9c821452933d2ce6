"""Raw metric points (`metric_series` joined with `metric_points`), for alert rules on a metric
(`signal: metric`): the points of one metric name in a time range, oldest first."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_METRIC_POINTS = text(
    """
SELECT s.service, s.attributes, p.time_unix_nano, coalesce(p.as_double, p.as_int::float8)
FROM metric_series s JOIN metric_points p ON p.series_id = s.id
WHERE s.name = :name AND p.time_unix_nano >= :lo AND p.time_unix_nano < :hi
ORDER BY p.time_unix_nano
"""
)


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One point: its series' service and attributes (as stored: a JSON object), its time and
    its value (None when it has none)."""

    service: str
    attributes: object
    time_unix_nano: int
    value: float | None


async def metric_points(
    conn: AsyncConnection, name: str, start_unix_nano: int, end_unix_nano: int
) -> list[MetricPoint]:
    """The points of the metric `name` with `start_unix_nano <= time < end_unix_nano`."""
    result = await conn.execute(
        _METRIC_POINTS, {"name": name, "lo": start_unix_nano, "hi": end_unix_nano}
    )
    return [MetricPoint(*row) for row in result]
