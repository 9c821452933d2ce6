"""The SQL the query layer runs: which rollup rows a window or a series reads.

Every statement reads the rows of some `BucketRange`s (from `api.windows`): one
`resolution = ? AND bucket_unix >= ? AND bucket_unix < ?` per range, OR-ed, so PostgreSQL reads
primary-key index ranges and never both resolutions for the same time. (Joining to an
`unnest` of the ranges instead lets the planner hash-join a sequential scan of the table.)

Rows with histograms come back as they are and `api.queries` sums them, histograms included.
Measured with 50 services and 150 edges (30 buckets a row) over 24 h, that is faster than
summing in SQL, where merging histograms means unnesting every (key, count) pair and grouping
by key: 15 m of service totals 18 ms against 44 ms, 24 h 96 ms against 135 ms (see the
README). Only the mTLS coverage series, which has no histograms, is summed here.

Statements are assembled from the constant fragments below only; values are bound parameters."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import TextClause, text

from api.windows import MINUTE, BucketRange, Series

MAX_RANGES = 48
"""More ranges than this (a series with an odd step) read minute rows for the whole window."""

SIGNAL_COLUMNS = """
    t.requests, t.errors, t.latency_keys, t.latency_counts,
    t.mtls_mutual, t.mtls_tls, t.mtls_plaintext, t.mtls_unknown"""

SERVICE_TOTALS = "t.operation = '' AND t.version = ''"
ONE_SERVICE = "t.service = :name"
ONE_SERVICE_TOTAL = f"{ONE_SERVICE} AND {SERVICE_TOTALS}"

EDGE_ANY = "TRUE"
EDGE_OF = "(t.source = :name OR t.target = :name)"
EDGE_INTO = "t.target = :name"

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
    def window(cls, lo: int, hi: int, ranges: list[BucketRange]) -> Rows:
        return cls(ranges if len(ranges) <= MAX_RANGES else [BucketRange(MINUTE, lo, hi)])

    @classmethod
    def series(cls, series: Series) -> Rows:
        window = series.window
        ranges = cls.window(window.start_unix, window.end_unix, series.ranges()).ranges
        return cls(ranges, series.step_seconds, series.first_index)

    def predicate(self) -> str:
        parts = [
            f"(t.resolution = :r{n} AND t.bucket_unix >= :lo{n} AND t.bucket_unix < :hi{n})"
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


def services(rows: Rows, where: str, name: str | None = None) -> Query:
    """Service rows (`where` on alias t) with their point."""
    statement = text(
        f"""
SELECT t.service, t.operation, t.version, {rows.point()} AS point, {SIGNAL_COLUMNS}
FROM service_rollups t
WHERE {rows.predicate()} AND {where}
"""
    )
    return Query(statement, _with_name(rows.parameters(), name))


def edges(rows: Rows, where: str, name: str | None = None) -> Query:
    """Edge rows (`where` on alias t) with their kind (source_kind) and point."""
    statement = text(
        f"""
SELECT t.source, t.source_type, t.target, t.target_type, t.source_kind AS kind,
       {rows.point()} AS point, {SIGNAL_COLUMNS}
FROM edge_rollups t
WHERE {rows.predicate()} AND {where}
"""
    )
    return Query(statement, _with_name(rows.parameters(), name))


def mtls_points(rows: Rows) -> Query:
    """mTLS states per edge, kind and point (no histograms: the coverage series)."""
    statement = text(
        f"""
SELECT t.source, t.target, t.source_kind AS kind, {rows.point()} AS point,
       sum(mtls_mutual)::bigint AS mtls_mutual, sum(mtls_tls)::bigint AS mtls_tls,
       sum(mtls_plaintext)::bigint AS mtls_plaintext, sum(mtls_unknown)::bigint AS mtls_unknown
FROM edge_rollups t
WHERE {rows.predicate()}
GROUP BY 1, 2, 3, 4
"""
    )
    return Query(statement, rows.parameters())


NODE_TYPE = text(
    """
(SELECT 'service' FROM service_rollups WHERE resolution = 3600 AND service = :name LIMIT 1)
UNION ALL (SELECT source_type FROM edge_rollups WHERE resolution = 3600 AND source = :name LIMIT 1)
UNION ALL (SELECT target_type FROM edge_rollups WHERE resolution = 3600 AND target = :name LIMIT 1)
LIMIT 1
"""
)
"""The type `name` had in any rollup row (none: never seen). Hour rows hold the same data as
minute rows and are 60 times fewer to scan: the tables have no index on names, and this runs
only for a name with no row in the window."""


def _with_name(parameters: dict[str, object], name: str | None) -> dict[str, object]:
    return parameters if name is None else {**parameters, "name": name}
