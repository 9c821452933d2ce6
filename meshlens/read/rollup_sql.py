"""The SQL the query layer runs: which rollup rows a window or a series reads, summed.

Every statement reads the rows of some `BucketRange`s (from `meshlens.read.windows`): one
`resolution = ? AND bucket_unix >= ? AND bucket_unix < ?` per range, OR-ed, so PostgreSQL reads
index ranges (the primary key's, or for one name the `*_by_*` indexes that start with the name)
and never two resolutions for the same time. A condition on names with alternatives (a
service's edges: `source = ?` or `target = ?`) is repeated inside each range's term, so that
each alternative reads its own index within the range, not every row of the name since
retention. (Joining to an `unnest` of the ranges instead lets the planner hash-join a
sequential scan of the table.)

Rows are summed here, one result row per key (and series point): counts with `sum`, and the
histograms concatenated, not merged, into one text, `[{keys},{counts},{keys},...]`, one pair
of array literals per rollup row, which `meshlens.read.results.Latency` adds up when a percentile is
asked. Measured on a 24 h graph of 50 services and 150 edges (7,600 rollup rows): merging the
histograms in SQL too (unnesting every (key, count) pair, grouping by key) took three times
as long for the edges (184 ms against 60 ms); returning every row took 180 ms of CPU per
request against 130 ms, mostly for parsing and keeping thousands of rows of arrays on the
client, whose allocations also set off Python's garbage collector (the slowest requests).
Histograms nobody needs are left out: the traces rows of an edge that has mesh-metrics rows in
the window (`counted` false), and for `/services` the edges into services with entry spans.

Statements are assembled from the constant fragments below only; values are bound parameters.
Result columns come in the order each function's docstring gives, which `meshlens.read.queries`
unpacks."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import TextClause, text

from meshlens.read.windows import BucketRange, Series, bucket_ranges
from meshlens.schema import LATENCY_COLUMNS, MTLS_COLUMNS, REQUEST_COLUMNS, SAMPLING_COLUMNS
from meshlens.timeunits import HOUR, RESOLUTIONS

MAX_RANGES = 48
"""A series whose points need more ranges than this (an odd step) leaves out the coarsest
resolution, then the next: at worst it reads minute rows for the whole window, one range."""

SERVICE_TOTALS = "t.operation = '' AND t.version = ''"
ONE_SERVICE = "t.service = :name"
ONE_SERVICE_TOTAL = f"{ONE_SERVICE} AND {SERVICE_TOTALS}"

Where = str | tuple[str, ...]
"""A condition on alias t, or alternatives of which a row meets at least one."""

EDGE_ANY = "TRUE"
EDGE_OF = ("t.source = :name", "t.target = :name")
"""The edges of a name, whatever the type of its end: every node of the name."""
METERED = "t.target_type = 'service' AND t.source_kind = 'mesh-metrics' AND t.requests > 0"
"""Mesh-metrics rows that count requests into services: where they exist in a window, they
count a service's requests (`meshlens.read.queries`). A caller's latency histogram alone (its
sidecar's, when the callee has none) counts no request and decides nothing."""
METERED_INTO = f"t.target = :name AND {METERED}"

SATURATION_ANY = "TRUE"
SATURATION_OF = "t.service = :name"

_NO_POINT = "0"
_POINT = "t.bucket_unix / :step - :first_index"


@dataclass(frozen=True)
class Query:
    """A statement and its bind parameters."""

    statement: TextClause
    parameters: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Rows:
    """Which rows: bucket ranges, and points of a series (`step`) or one sum (`step` None)."""

    ranges: list[BucketRange]
    step: int | None = None
    first_index: int = 0

    @classmethod
    def window(cls, lo: int, hi: int) -> Rows:
        """The rows of `[lo, hi)` summed into one (at most 5 ranges)."""
        return cls(bucket_ranges(lo, hi))

    @classmethod
    def series(cls, series: Series) -> Rows:
        """The rows of every point of `series`, each row inside one point."""
        for coarsest in range(len(RESOLUTIONS)):
            ranges = series.ranges(RESOLUTIONS[coarsest:])
            if len(ranges) <= MAX_RANGES:
                break
        return cls(ranges, series.step_seconds, series.first_index)

    def predicate(self, where: Where = "TRUE") -> str:
        """Rows of the ranges that meet `where` (each alternative in each range's term)."""
        alternatives = (where,) if isinstance(where, str) else where
        parts = [
            f"({condition} AND t.resolution = :r{n} AND t.bucket_unix >= :lo{n}"
            f" AND t.bucket_unix < :hi{n})"
            for condition in alternatives
            for n in range(len(self.ranges))
        ]
        return f"({' OR '.join(parts)})" if parts else "FALSE"

    def point(self) -> str:
        return _NO_POINT if self.step is None else _POINT

    def parameters(self) -> dict[str, object]:
        bound: dict[str, object] = {}
        for n, r in enumerate(self.ranges):
            bound.update({f"r{n}": r.resolution, f"lo{n}": r.lo, f"hi{n}": r.hi})
        if self.step is not None:
            bound.update(step=self.step, first_index=self.first_index)
        return bound


def _summed(columns: tuple[str, ...]) -> str:
    return ",\n       ".join(f"sum(t.{name})::bigint AS {name}" for name in columns)


_MTLS_SUMS = _summed(MTLS_COLUMNS)
_SUMS = f"""{_summed(REQUEST_COLUMNS)},
       {{latency}} AS latency,
       {_MTLS_SUMS},
       {_summed(SAMPLING_COLUMNS)}"""
"""The signal columns (`meshlens.schema.SIGNAL_COLUMNS`) summed, in their order, the latency
histograms as one text (`_latency`) in place of their two columns."""


def _summed_where(columns: tuple[str, ...], wanted: str) -> str:
    return ",\n       ".join(
        f"coalesce(sum(t.{name}) FILTER (WHERE {wanted}), 0)::bigint AS {name}" for name in columns
    )


def _latency(wanted: str) -> str:
    """The histograms of the rows meeting `wanted`, as `[{keys},{counts},{keys},...]` (array
    literals: JSON once braces become brackets; NULL when no row has a bucket)."""
    keys, counts = LATENCY_COLUMNS
    pairs = f"t.{keys}::text || ',' || t.{counts}::text"
    only = f"{wanted} AND cardinality(t.{keys}) > 0"
    return f"'[' || string_agg({pairs}, ',') FILTER (WHERE {only}) || ']'"


def services(rows: Rows, where: Where, name: str | None = None) -> Query:
    """Service rows (`where` on alias t) summed per service, operation, version and point:
    service, operation, version, point, requests, errors, latency, mTLS mutual, tls,
    plaintext and unknown, unknown_rate."""
    statement = f"""
SELECT t.service, t.operation, t.version, {rows.point()} AS point,
       {_SUMS.format(latency=_latency("TRUE"))}
FROM service_rollups t
WHERE {rows.predicate(where)}
GROUP BY 1, 2, 3, 4
"""
    return Query(text(statement), _with_name(rows.parameters(), name))


def mesh_services(rows: Rows) -> Query:
    """Every service's entry-span rows summed per point (the mesh-wide series), their counts
    only for services without `METERED` rows among `rows` (`metered` counts those):
    point, requests, errors, latency, mTLS mutual, tls, plaintext and unknown, unknown_rate."""
    counted = "m.target IS NULL"
    statement = f"""WITH metered AS (
    SELECT DISTINCT t.target FROM edge_rollups t WHERE {rows.predicate(METERED)})
SELECT {rows.point()} AS point,
       {_summed_where(REQUEST_COLUMNS, counted)},
       {_latency("TRUE")} AS latency,
       {_summed_where((*MTLS_COLUMNS, *SAMPLING_COLUMNS), counted)}
FROM service_rollups t LEFT JOIN metered m ON m.target = t.service
WHERE {rows.predicate(SERVICE_TOTALS)}
GROUP BY 1
"""
    return Query(text(statement), rows.parameters())


def metered(rows: Rows, where: Where = METERED, name: str | None = None) -> Query:
    """`METERED` rows (mesh metrics into services; `where` picks some: `METERED_INTO` one
    service's) summed per point, without histograms: point, requests, errors, latency (NULL),
    mTLS mutual, tls, plaintext and unknown, unknown_rate."""
    statement = f"""
SELECT {rows.point()} AS point, {_SUMS.format(latency="NULL::text")}
FROM edge_rollups t
WHERE {rows.predicate(where)}
GROUP BY 1
"""
    return Query(text(statement), _with_name(rows.parameters(), name))


def _metered(rows: Rows, where: Where) -> str:
    """The edges (`where` on alias t) with mesh-metrics rows that count requests among `rows`: a
    row counts when it is of mesh metrics or its edge (both ends' names and types) has no such
    row (`_COUNTED`, with `_JOIN_METERED`): a latency histogram alone decides nothing."""
    return f"""
metered AS (
    SELECT DISTINCT t.source, t.source_type, t.target, t.target_type FROM edge_rollups t
    WHERE {rows.predicate(where)} AND t.source_kind = 'mesh-metrics' AND t.requests > 0)"""


_COUNTED = "(t.source_kind = 'mesh-metrics' OR m.source IS NULL)"
_JOIN_METERED = (
    "LEFT JOIN metered m ON m.source = t.source AND m.source_type = t.source_type"
    " AND m.target = t.target AND m.target_type = t.target_type"
)
_SERVED = """,
served AS (
    SELECT DISTINCT t.service FROM service_rollups t WHERE {rows})"""
_JOIN_SERVED = "LEFT JOIN served s ON s.service = t.target AND t.target_type = 'service'"


def edges(
    rows: Rows, where: Where, name: str | None = None, *, served_latency: bool = True
) -> Query:
    """Edge rows (`where` on alias t) summed per edge (source, source type, target, target
    type), kind and point: source, source type, target, target type, kind (source_kind),
    counted, point, requests, errors, latency, mTLS mutual, tls, plaintext and unknown,
    unknown_rate, plaintext reasons (an array of the rows' non-empty {reason: requests}, or NULL).

    Kinds that do not count come without histograms and reasons. With `served_latency` false,
    neither come for edges into a service with entry-span rows among `rows` either (whose node
    does not sum its edges)."""
    wanted = _COUNTED
    with_served, join_served = "", ""
    if not served_latency:
        wanted = f"({_COUNTED} AND s.service IS NULL)"
        with_served = _SERVED.format(rows=rows.predicate(SERVICE_TOTALS))
        join_served = _JOIN_SERVED
    statement = f"""WITH {_metered(rows, where)}{with_served}
SELECT t.source, t.source_type, t.target, t.target_type, t.source_kind AS kind,
       bool_or({_COUNTED}) AS counted, {rows.point()} AS point,
       {_SUMS.format(latency=_latency(wanted))},
       jsonb_agg(t.plaintext_reasons)
           FILTER (WHERE {wanted} AND t.plaintext_reasons <> '{{}}'::jsonb) AS plaintext_reasons
FROM edge_rollups t {_JOIN_METERED} {join_served}
WHERE {rows.predicate(where)}
GROUP BY t.source, t.source_type, t.target, t.target_type, t.source_kind, 7
"""
    return Query(text(statement), _with_name(rows.parameters(), name))


def mtls_points(rows: Rows) -> Query:
    """mTLS states per edge, kind and point (the coverage series): source, source type,
    target, target type, kind, counted, point, mTLS mutual, tls, plaintext and unknown."""
    statement = f"""WITH {_metered(rows, EDGE_ANY)}
SELECT t.source, t.source_type, t.target, t.target_type, t.source_kind AS kind,
       {_COUNTED} AS counted, {rows.point()} AS point,
       {_MTLS_SUMS}
FROM edge_rollups t {_JOIN_METERED}
WHERE {rows.predicate()}
GROUP BY 1, 2, 3, 4, 5, 6, 7
"""
    return Query(text(statement), rows.parameters())


def saturation(rows: Rows, where: Where, name: str | None = None) -> Query:
    """The highest utilization per service (`where` on alias t) and point: service, point,
    saturation."""
    statement = f"""
SELECT t.service, {rows.point()} AS point, max(t.value) AS saturation
FROM saturation_rollups t
WHERE {rows.predicate(where)}
GROUP BY 1, 2
"""
    return Query(text(statement), _with_name(rows.parameters(), name))


NODE_TYPE = text(
    f"""
(SELECT 'service' FROM service_rollups WHERE service = :name AND resolution = {HOUR} LIMIT 1)
UNION ALL
(SELECT 'service' FROM saturation_rollups WHERE service = :name AND resolution = {HOUR} LIMIT 1)
UNION ALL
(SELECT source_type FROM edge_rollups WHERE source = :name AND resolution = {HOUR}
 ORDER BY source_type <> 'service' LIMIT 1)
UNION ALL
(SELECT target_type FROM edge_rollups WHERE target = :name AND resolution = {HOUR}
 ORDER BY target_type <> 'service' LIMIT 1)
LIMIT 1
"""
)
"""A type `name` had in any rollup row, `service` when it ever was one (none: never seen); a
name with utilization gauges only is a service. Each part reads an index that starts with the
name (the edges' parts every hour row of the name); it runs only for a name with no row in the
window."""

NODE_SEEN = text(
    f"""
(SELECT 1 FROM service_rollups
 WHERE :type = 'service' AND service = :name AND resolution = {HOUR} LIMIT 1)
UNION ALL
(SELECT 1 FROM saturation_rollups
 WHERE :type = 'service' AND service = :name AND resolution = {HOUR} LIMIT 1)
UNION ALL
(SELECT 1 FROM edge_rollups
 WHERE source = :name AND source_type = :type AND resolution = {HOUR} LIMIT 1)
UNION ALL
(SELECT 1 FROM edge_rollups
 WHERE target = :name AND target_type = :type AND resolution = {HOUR} LIMIT 1)
LIMIT 1
"""
)
"""1 when the node (`name`, `type`) is in any rollup row, none when it never was (as
`NODE_TYPE`)."""


def _with_name(parameters: dict[str, object], name: str | None) -> dict[str, object]:
    return parameters if name is None else {**parameters, "name": name}
