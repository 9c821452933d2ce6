"""The cardinality budget of the derived dimensions: services, operations and edges.

Raw spans are stored as they came; what they derive is keyed by names the senders choose
(a service per pod name, an operation per unnormalised URL path, an external node per host),
and every distinct name is a row per minute, 10 minutes and hour in the rollups forever after.
So the deriver admits names up to a cap per kind, and folds whatever comes after into one
explicit bucket, `meshlens.overflow`, so that totals still add up:

- a node (service, database, broker, external host, `user`) over `Caps.services` counts as
  the node `meshlens.overflow` (type service); its operations and versions as the operation
  and version `meshlens.overflow`;
- an operation of a known service over `Caps.operations_per_service` counts as its service's
  operation `meshlens.overflow`;
- an edge source -> target over `Caps.edges` counts as `meshlens.overflow -> target`: the
  target's inbound totals (the signals of a database or external node) still hold. Edges to
  or from `meshlens.overflow` are not capped: there is at most one per node each way.
Known names keep being accepted as themselves after a cap is reached; 0 means no cap. The name
`meshlens.overflow` is reserved: a service that calls itself so is counted with the overflow.

`DimensionBudget` is the pure decision; `collector.derive.cardinality_store` keeps what it admitted
in PostgreSQL (`cardinality_known`), so restarts and other meshlens processes share it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

OVERFLOW = "meshlens.overflow"
OVERFLOW_NODE_TYPE = "service"


class Kind(StrEnum):
    """What a cap bounds (the `kind` label of the cardinality metrics)."""

    SERVICE = "service"
    OPERATION = "operation"
    EDGE = "edge"
    SERIES = "series"


@dataclass(frozen=True, slots=True)
class Caps:
    """The most distinct values admitted per kind; 0 is no cap."""

    services: int = 0
    operations_per_service: int = 0
    edges: int = 0
    series: int = 0

    def of(self, kind: Kind) -> int:
        """The cap of `kind` (per service for operations)."""
        return {
            Kind.SERVICE: self.services,
            Kind.OPERATION: self.operations_per_service,
            Kind.EDGE: self.edges,
            Kind.SERIES: self.series,
        }[kind]


# A row of `cardinality_known`: kind, a, b (service: name, ""; operation: service, operation;
# edge: source, target)
KnownRow = tuple[str, str, str]
FirstFold = Callable[[Kind], None]


class DimensionBudget:
    """Which services, operations and edges are admitted, and what folds into the overflow.

    Decisions of one deriver pass are pending until `commit` (after the pass's transaction
    committed) or `rollback` (it failed: they are forgotten, the database never saw them).
    """

    def __init__(self, caps: Caps, on_first_fold: FirstFold | None = None) -> None:
        self.caps = caps
        self.services: set[str] = set()
        self.operations: dict[str, set[str]] = {}
        self.edges: set[tuple[str, str]] = set()
        self.pending: list[KnownRow] = []
        self.folded: Counter[Kind] = Counter()  # requests folded in this pass
        self._on_first_fold = on_first_fold
        self._warned: set[Kind] = set()

    # --- what the database says is known -------------------------------------------------

    def learn(self, rows: Iterable[KnownRow]) -> None:
        """Add values admitted earlier (by this process or another)."""
        for kind, a, b in rows:
            if kind == Kind.SERVICE:
                self.services.add(a)
            elif kind == Kind.OPERATION:
                self.operations.setdefault(a, set()).add(b)
            elif kind == Kind.EDGE:
                self.edges.add((a, b))

    def known(self, kind: Kind) -> int:
        """How many distinct values of `kind` are admitted (operations: of all services)."""
        if kind == Kind.SERVICE:
            return len(self.services)
        if kind == Kind.OPERATION:
            return sum(len(names) for names in self.operations.values())
        if kind == Kind.EDGE:
            return len(self.edges)
        return 0

    # --- decisions -------------------------------------------------------------------------

    def service(self, name: str) -> str:
        """`name`, or OVERFLOW once the node cap is reached and `name` is not known."""
        if name in self.services:
            return name
        if name == OVERFLOW or _full(self.caps.services, len(self.services)):
            self._fold(Kind.SERVICE)
            return OVERFLOW
        self.services.add(name)
        self.pending.append((Kind.SERVICE, name, ""))
        return name

    def operation(self, service: str, name: str) -> str:
        """`name` as an operation of `service` (already through `service`), or OVERFLOW."""
        if service == OVERFLOW or name == OVERFLOW:
            return OVERFLOW
        names = self.operations.setdefault(service, set())
        if name in names:
            return name
        if _full(self.caps.operations_per_service, len(names)):
            self._fold(Kind.OPERATION)
            return OVERFLOW
        names.add(name)
        self.pending.append((Kind.OPERATION, service, name))
        return name

    def edge(self, source: str, target: str) -> tuple[str, str]:
        """The edge source -> target (nodes already through `service`), or
        OVERFLOW -> target once the edge cap is reached and the edge is not known."""
        if (source, target) in self.edges or OVERFLOW in (source, target):
            return source, target
        if _full(self.caps.edges, len(self.edges)):
            self._fold(Kind.EDGE)
            return OVERFLOW, target
        self.edges.add((source, target))
        self.pending.append((Kind.EDGE, source, target))
        return source, target

    def count_folded(self, kind: Kind, requests: int) -> None:
        """Count `requests` that went to the overflow bucket because of `kind`'s cap."""
        self.folded[kind] += requests

    def _fold(self, kind: Kind) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            if self._on_first_fold is not None:
                self._on_first_fold(kind)

    # --- the pass's outcome ------------------------------------------------------------------

    def commit(self) -> tuple[list[KnownRow], Counter[Kind]]:
        """The pass committed: its admissions stand. Returns them and the requests folded."""
        admitted, folded = self.pending, self.folded
        self.pending, self.folded = [], Counter()
        return admitted, folded

    def rollback(self) -> None:
        """The pass failed: forget what it admitted and folded."""
        for kind, a, b in self.pending:
            if kind == Kind.SERVICE:
                self.services.discard(a)
            elif kind == Kind.OPERATION:
                self.operations.get(a, set()).discard(b)
            else:
                self.edges.discard((a, b))
        self.pending, self.folded = [], Counter()


def _full(cap: int, known: int) -> bool:
    return cap > 0 and known >= cap
