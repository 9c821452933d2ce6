"""What a written batch queues for the deriver, in the writer's transaction.

The writer writes what it is handed and knows nothing of derivation: after it has stored a
batch's spans or points, it asks this module for the inbox rows of what was really inserted
(resends are not) and COPYs them in the same transaction, so a committed span or point is
derived exactly once.
- spans (`span_inbox`): the batch's derivation (`batch.BatchDerivation`): request halves for
  `edge_halves_inbox` and pre-aggregated signals for `rollup_inbox`. A decode worker derives
  its request ahead (`derive_ahead`); when some of its spans were resends, that derivation is
  dropped and the request's facts derived again without them.
- metric points (`point_inbox`): each point of a mesh series (`DecodedBatch.edge_series`)
  becomes one `metric_points_inbox` row: the point's reading (counter value or histogram count,
  bucket counts, bounds in nanoseconds) with the edge its series describes; the deriver turns
  cumulative readings into deltas in order (`cumulative`) and counts them on the edge.
  Utilization maxima go to `saturation_inbox` as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from collector.derive.batch import ROLLUP_INBOX_COLUMNS, BatchDerivation
from collector.derive.halves import HALF_COLUMNS
from collector.derive.mesh_metrics import EdgeSeries
from collector.derive.span_facts import SpanFacts
from collector.rows import PointRow, PreparedSpans, SeriesRow


class InboxRows(NamedTuple):
    """Rows to COPY into one inbox table."""

    table: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]


def derive_ahead(facts: Iterable[SpanFacts]) -> BatchDerivation:
    """A decode worker's derivation of its request's spans, before it knows which are new."""
    return BatchDerivation().add_all(facts)


def span_inbox(
    facts: list[SpanFacts],
    prepared: Sequence[PreparedSpans],
    inserted: set[tuple[Any, ...]] | None,
) -> list[InboxRows]:
    """Inbox rows of the spans a write inserted: `facts` (decoded inline) and the spans
    `prepared` by decode workers. `inserted`: the `(trace_id, span_id)` the write inserted,
    None when all were."""
    if inserted is None:  # every span was new: the workers' derivations hold
        derived = BatchDerivation().add_all(facts)
        for ready in prepared:
            derived.merge(ready.derivation)
    else:
        every = facts + [fact for ready in prepared for fact in ready.facts]
        derived = BatchDerivation().add_all(_inserted_once(every, inserted))
    inbox = []
    if derived.halves:
        inbox.append(InboxRows("edge_halves_inbox", HALF_COLUMNS, derived.halves))
    if derived.rollups:
        inbox.append(InboxRows("rollup_inbox", ROLLUP_INBOX_COLUMNS, derived.rollup_rows()))
    return inbox


def _inserted_once(facts: list[SpanFacts], inserted: set[tuple[Any, ...]]) -> list[SpanFacts]:
    """The facts of inserted spans, each once even if sent twice in the batch."""
    pending = set(inserted)
    kept = []
    for fact in facts:
        key = (fact.trace_id, fact.span_id)
        if key in pending:
            pending.discard(key)
            kept.append(fact)
    return kept


def point_inbox(
    points: Iterable[PointRow],
    series: Mapping[int, SeriesRow],
    edges: Mapping[int, EdgeSeries],
    saturation: Mapping[tuple[int, str], float],
    inserted: set[tuple[Any, Any]] | None,
) -> list[InboxRows]:
    """Inbox rows of the mesh-series points a write inserted, and the utilization maxima."""
    inbox = []
    if edges:
        rows = metric_inbox_rows(points, series, edges, inserted)
        if rows:
            inbox.append(InboxRows("metric_points_inbox", METRIC_INBOX_COLUMNS, rows))
    if saturation:  # a maximum: resends change nothing
        rows = saturation_inbox_rows(saturation)
        inbox.append(InboxRows("saturation_inbox", SATURATION_INBOX_COLUMNS, rows))
    return inbox


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
