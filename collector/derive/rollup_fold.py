"""RollupFold: signals gathered by one deriver pass, added into the rollups at every resolution.

Every source of signals (paired halves, expired halves, the writers' `rollup_inbox`, mesh-metric
deltas) adds to one fold; `write` then reads the rows the pass touches (locked until commit),
adds them in, and upserts the sums. Edges also count plaintext requests per reason. With a
`DimensionBudget`, every key goes through it first: names over a cap count under the overflow
bucket (`collector.derive.cardinality`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from collector.derive.batch import RollupSignals
from collector.derive.cardinality import OVERFLOW, OVERFLOW_NODE_TYPE, DimensionBudget, Kind
from meshlens.schema import SIGNAL_COLUMNS
from meshlens.signals.histogram import LatencyHistogram
from meshlens.timeunits import RESOLUTIONS

# (table, resolution, bucket, key...) -> signals; the key columns depend on the table:
# service, operation, version, "", "" or source, source type, target, target type, source kind
FoldKey = tuple[str, int, int, str, str, str, str, str]


@dataclass(slots=True)
class RollupFold:
    """RollupSignals per rollup row, at every resolution."""

    signals: dict[FoldKey, RollupSignals] = field(default_factory=dict)
    reasons: dict[FoldKey, Counter[str]] = field(default_factory=dict)
    budget: DimensionBudget | None = None

    def add(
        self,
        kind: str,
        minute: int,
        key: tuple[str, str, str, str],
        signals: RollupSignals,
        source_kind: str,
        reasons: Mapping[str, int] | None = None,
    ) -> None:
        """Add `signals` of `minute` to a service (key: service, operation, version, "") or
        an edge (key: source, source type, target, target type) at every resolution. A node
        is its name and its type: a service and a virtual node of one name are two edge rows."""
        if self.budget is not None:
            key = _within_budget(self.budget, kind, key, signals.requests)
        for resolution in RESOLUTIONS:
            bucket = minute // resolution * resolution
            if kind == "service":
                fold_key: FoldKey = ("service", resolution, bucket, *key[:3], "", "")
            else:
                fold_key = ("edge", resolution, bucket, *key, source_kind)
                if reasons:
                    self.reasons.setdefault(fold_key, Counter()).update(reasons)
            target = self.signals.get(fold_key)
            if target is None:
                target = self.signals[fold_key] = RollupSignals()
            target.merge(signals)

    async def write(self, conn: AsyncConnection) -> int:
        """Add everything into the rollup tables; returns the rows written."""
        services = [k for k in self.signals if k[0] == "service"]
        edges = [k for k in self.signals if k[0] == "edge"]
        await self._merge_existing(conn, services, edges)
        gone = [k for k in self.signals if self.signals[k].is_empty()]
        if gone:  # every request of the row moved elsewhere: no row (no node of 0 requests)
            services = [k for k in services if not self.signals[k].is_empty()]
            edges = [k for k in edges if not self.signals[k].is_empty()]
            for kind, delete, width in (("service", _DELETE_SERVICE, 5), ("edge", _DELETE_EDGE, 7)):
                keys = [k for k in gone if k[0] == kind]
                if keys:
                    await conn.execute(delete, _columns_of(keys, width))
        async with conn.cursor() as cursor:
            await cursor.executemany(
                _UPSERT_SERVICE, [k[1:6] + self.signals[k].columns() for k in services]
            )
            await cursor.executemany(_UPSERT_EDGE, [self._edge_row(k) for k in edges])
        return len(services) + len(edges)

    def _edge_row(self, k: FoldKey) -> tuple[Any, ...]:
        reasons = Jsonb(dict(self.reasons.get(k) or {}))
        return (*k[1:], reasons, *self.signals[k].columns())

    async def _merge_existing(
        self, conn: AsyncConnection, services: list[FoldKey], edges: list[FoldKey]
    ) -> None:
        """Add the rows already in the rollups for the keys this pass touches (locked)."""
        if services:
            cursor = await conn.execute(_EXISTING_SERVICE, _columns_of(services, 5))
            for row in await cursor.fetchall():
                key: FoldKey = ("service", *row[:5], "", "")
                self.signals[key].merge(signals_from_columns(row[5:]))
        if edges:
            cursor = await conn.execute(_EXISTING_EDGE, _columns_of(edges, 7))
            for row in await cursor.fetchall():
                key = ("edge", *row[:7])
                self.signals[key].merge(signals_from_columns(row[8:]))
                if row[7]:
                    self.reasons.setdefault(key, Counter()).update(row[7])


def _within_budget(
    budget: DimensionBudget, kind: str, key: tuple[str, str, str, str], requests: int
) -> tuple[str, str, str, str]:
    """`key` with the names over a cap replaced by the overflow bucket; counts what folded."""
    if kind == "service":
        service, operation, version, _ = key
        admitted = budget.service(service)
        if admitted == OVERFLOW:
            if not operation and not version:  # the service's total row: count it once
                budget.count_folded(Kind.SERVICE, requests)
            return OVERFLOW, OVERFLOW if operation else "", OVERFLOW if version else "", ""
        if operation:
            within = budget.operation(admitted, operation)
            if within != operation:
                budget.count_folded(Kind.OPERATION, requests)
            return admitted, within, version, ""
        return key
    source, source_type, target, target_type = key
    edge = budget.edge(budget.service(source), budget.service(target))
    if edge == (source, target):
        return key
    budget.count_folded(Kind.EDGE, requests)
    return (
        edge[0],
        OVERFLOW_NODE_TYPE if edge[0] == OVERFLOW else source_type,
        edge[1],
        OVERFLOW_NODE_TYPE if edge[1] == OVERFLOW else target_type,
    )


def signals_from_columns(columns: tuple[Any, ...]) -> RollupSignals:
    """RollupSignals from the signal columns of a rollup row, in their order."""
    requests, errors, keys, counts, mutual, tls, plaintext, unknown, unknown_rate = columns
    return RollupSignals(
        requests,
        errors,
        LatencyHistogram.from_arrays(keys, counts),
        [unknown, plaintext, tls, mutual],
        unknown_rate,
    )


def _columns_of(keys: list[FoldKey], width: int) -> list[list[Any]]:
    """The first `width` key columns of `keys`, one list per column."""
    return [[key[n] for key in keys] for n in range(1, width + 1)]


_SIGNAL_NAMES = ", ".join(SIGNAL_COLUMNS)
_SIGNAL_UPDATES = ", ".join(f"{name} = EXCLUDED.{name}" for name in SIGNAL_COLUMNS)
_EXISTING_SERVICE = f"""
    SELECT resolution, bucket_unix, service, operation, version, {_SIGNAL_NAMES}
    FROM service_rollups
    WHERE (resolution, bucket_unix, service, operation, version) IN (
        SELECT * FROM unnest(%s::int[], %s::bigint[], %s::text[], %s::text[], %s::text[]))
    FOR UPDATE
"""
_EXISTING_EDGE = f"""
    SELECT resolution, bucket_unix, source, source_type, target, target_type, source_kind,
        plaintext_reasons, {_SIGNAL_NAMES}
    FROM edge_rollups
    WHERE (resolution, bucket_unix, source, source_type, target, target_type, source_kind) IN (
        SELECT * FROM unnest(%s::int[], %s::bigint[], %s::text[], %s::text[], %s::text[],
            %s::text[], %s::text[]))
    FOR UPDATE
"""
_DELETE_SERVICE = """
    DELETE FROM service_rollups
    WHERE (resolution, bucket_unix, service, operation, version) IN (
        SELECT * FROM unnest(%s::int[], %s::bigint[], %s::text[], %s::text[], %s::text[]))
"""
_DELETE_EDGE = """
    DELETE FROM edge_rollups
    WHERE (resolution, bucket_unix, source, source_type, target, target_type, source_kind) IN (
        SELECT * FROM unnest(%s::int[], %s::bigint[], %s::text[], %s::text[], %s::text[],
            %s::text[], %s::text[]))
"""
_UPSERT_SERVICE = f"""
    INSERT INTO service_rollups (resolution, bucket_unix, service, operation, version,
        {_SIGNAL_NAMES})
    VALUES ({", ".join(["%s"] * (5 + len(SIGNAL_COLUMNS)))})
    ON CONFLICT (resolution, bucket_unix, service, operation, version)
    DO UPDATE SET {_SIGNAL_UPDATES}
"""
_UPSERT_EDGE = f"""
    INSERT INTO edge_rollups (resolution, bucket_unix, source, source_type, target, target_type,
        source_kind, plaintext_reasons, {_SIGNAL_NAMES})
    VALUES ({", ".join(["%s"] * (8 + len(SIGNAL_COLUMNS)))})
    ON CONFLICT (resolution, bucket_unix, source, source_type, target, target_type, source_kind)
    DO UPDATE SET {_SIGNAL_UPDATES}, plaintext_reasons = EXCLUDED.plaintext_reasons
"""
