"""The cardinality budget wired for `meshlens serve`: its caps, /metrics and warnings."""

from __future__ import annotations

import logging
from collections import Counter as Counts

from prometheus_client import CollectorRegistry, Counter, Gauge
from psycopg import AsyncConnection

from collector.derive.cardinality import Caps, DimensionBudget, Kind
from collector.series_budget import SeriesBudget

log = logging.getLogger("meshlens.collector")
SETTINGS = {
    Kind.SERVICE: "MESHLENS_MAX_SERVICES",
    Kind.OPERATION: "MESHLENS_MAX_OPERATIONS_PER_SERVICE",
    Kind.EDGE: "MESHLENS_MAX_EDGES",
    Kind.SERIES: "MESHLENS_MAX_METRIC_SERIES",
}


class CardinalityBudget:
    """The deriver's and the writers' budgets, counted on /metrics:
    `meshlens_cardinality_overflow_total`, `meshlens_cardinality_known` and
    `meshlens_cardinality_limit`, each per kind."""

    def __init__(self, caps: Caps, registry: CollectorRegistry) -> None:
        self.overflow = Counter(
            "meshlens_cardinality_overflow",
            "Requests (kind service, operation, edge) and metric points (kind series) counted "
            "under the overflow bucket meshlens.overflow because a cardinality cap was reached.",
            ["kind"],
            registry=registry,
        )
        self.known = Gauge(
            "meshlens_cardinality_known",
            "Distinct values admitted within the budget, per kind (operations: of all "
            "services), as this process last saw them.",
            ["kind"],
            registry=registry,
        )
        limit = Gauge(
            "meshlens_cardinality_limit",
            "The cap per kind (operations: per service); 0 is no cap.",
            ["kind"],
            registry=registry,
        )
        for kind in Kind:
            self.overflow.labels(kind.value)
            limit.labels(kind.value).set(caps.of(kind))
        self.dimensions = DimensionBudget(caps, warn_first_fold)
        self.series = SeriesBudget(caps.series, warn_first_fold, self._points_folded)
        self.known.labels(Kind.SERIES.value).set_function(lambda: self.series.used)

    async def load(self, conninfo: str) -> None:
        """Recount the admitted series (at start: the count survives restarts)."""
        async with await AsyncConnection.connect(conninfo) as conn:
            await self.series.load(conn)

    def observe_derivation(self, folded: Counts[Kind]) -> None:
        """Count one deriver pass's folds, and the values now known."""
        for kind, requests in folded.items():
            self.overflow.labels(kind.value).inc(requests)
        for kind in (Kind.SERVICE, Kind.OPERATION, Kind.EDGE):
            self.known.labels(kind.value).set(self.dimensions.known(kind))

    def _points_folded(self, points: int) -> None:
        self.overflow.labels(Kind.SERIES.value).inc(points)


def warn_first_fold(kind: Kind) -> None:
    """Say once per kind and process that a cap was reached (no names: they may be secrets)."""
    log.warning(
        "cardinality cap reached for %s (%s): new values now count under meshlens.overflow "
        "(see meshlens_cardinality_overflow_total on /metrics)",
        kind.value,
        SETTINGS[kind],
    )
