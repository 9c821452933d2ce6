"""A known mesh written straight into the rollup tables, and the answers expected from it.

Requests are listed one by one (`Request`), then summed into minute rows *and* hour rows, as the
deriver keeps them, so a query reading both resolutions for the same time, or missing some,
gets numbers that differ from what `expected` computes from the list itself.

The mesh, every minute from 08:00 to 12:09 UTC on 2026-11-26 (minute index i from 0):
- user -> checkout (traces; root spans): 10, 20 or 30 requests; versions v1/v2 90/10,
  operations POST /pay and GET /cart 60/40; v2 slow, failing on even minutes.
- checkout -> cart: every cart request in mesh metrics, every other one in traces as well.
- cart -> redis (database, traces, plaintext); checkout -> inventory (mesh metrics only: no
  entry spans, mutual); checkout -> payments.example.com (external, traces, one-way TLS);
  inventory -> queue/orders (messaging, traces, even minutes, state unknown).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import psycopg

from meshlens.signals.histogram import LatencyHistogram

T = int(dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC).timestamp())  # 12:00, an hour start
FIRST_MINUTE = T - 4 * 3600  # 08:00
MINUTES = 250  # through 12:09
MS = 1_000_000
UNKNOWN, PLAINTEXT, TLS, MUTUAL = range(4)


@dataclass(frozen=True)
class Request:
    """One request: a service's entry span (`target` only) or an edge (source -> target)."""

    minute: int
    target: str
    duration_ns: int
    error: bool
    mtls: int
    operation: str = ""
    version: str = ""
    source: str = ""
    source_type: str = ""
    target_type: str = "service"
    kind: str = "traces"


def _checkout(i: int, minute: int) -> Iterator[Request]:
    for j in range(10 * (1 + i % 3)):
        canary = j % 10 == 9
        yield Request(
            minute=minute,
            target="checkout",
            duration_ns=(300 + j if canary else 5 + (i * 7 + j * 13) % 200) * MS,
            error=(canary and i % 2 == 0) or (j == 0 and i % 5 == 0),
            mtls=UNKNOWN if j % 4 == 3 else MUTUAL,
            operation="POST /pay" if j % 5 < 3 else "GET /cart",
            version="v2" if canary else "v1",
        )


def _cart(i: int, minute: int) -> Iterator[Request]:
    for j in range(4 + i % 5):
        yield Request(
            minute=minute,
            target="cart",
            duration_ns=(2 + (i + j) % 30) * MS,
            error=(i + j) % 17 == 0,
            mtls=PLAINTEXT if j % 2 else MUTUAL,
            operation="GET /items",
            version="1.4.2",
        )


def _edge(entry: Request, source: str, source_type: str, kind: str, **changes: int) -> Request:
    fields = {**entry.__dict__, "source": source, "source_type": source_type, "kind": kind}
    fields.update(operation="", version="", **changes)
    return Request(**fields)


def _minute(i: int) -> Iterator[Request]:
    minute = FIRST_MINUTE + 60 * i
    for request in _checkout(i, minute):
        yield request
        yield _edge(request, "user", "client", "traces")
    for j, request in enumerate(_cart(i, minute)):
        yield request
        yield _edge(request, "checkout", "service", "mesh-metrics")
        if j % 2 == 0:
            yield _edge(
                request, "checkout", "service", "traces", duration_ns=request.duration_ns + MS
            )
        yield Request(
            minute,
            "redis",
            MS,
            False,
            PLAINTEXT,
            source="cart",
            source_type="service",
            target_type="database",
        )
    for k in range(3):
        yield Request(
            minute,
            "inventory",
            (10 + 10 * k) * MS,
            k == 0 and i % 4 == 0,
            MUTUAL,
            source="checkout",
            source_type="service",
            kind="mesh-metrics",
        )
    yield Request(
        minute,
        "payments.example.com",
        120 * MS,
        False,
        TLS,
        source="checkout",
        source_type="service",
        target_type="external",
    )
    if i % 2 == 0:
        yield Request(
            minute,
            "queue/orders",
            3 * MS,
            False,
            UNKNOWN,
            source="inventory",
            source_type="service",
            target_type="messaging",
        )


def requests() -> list[Request]:
    return [request for i in range(MINUTES) for request in _minute(i)]


# --- rollup rows --------------------------------------------------------------------------------


@dataclass
class Summed:
    """Signals of some requests, summed the way the rollups sum them."""

    requests: int = 0
    errors: int = 0
    mutual: int = 0
    tls: int = 0
    plaintext: int = 0
    unknown: int = 0

    def __post_init__(self) -> None:
        self.latency = LatencyHistogram()

    def add(self, request: Request) -> None:
        self.requests += 1
        self.errors += request.error
        self.latency.add(request.duration_ns)
        state = ("unknown", "plaintext", "tls", "mutual")[request.mtls]
        setattr(self, state, getattr(self, state) + 1)

    def columns(self) -> tuple[object, ...]:
        keys, counts = self.latency.to_arrays()
        return (
            self.requests,
            self.errors,
            keys,
            counts,
            self.mutual,
            self.tls,
            self.plaintext,
            self.unknown,
        )


def summed(requests: Iterable[Request]) -> Summed:
    total = Summed()
    for request in requests:
        total.add(request)
    return total


def _keys(request: Request) -> list[tuple[str, ...]]:
    if not request.source:
        service = request.target
        return [(service, "", ""), (service, request.operation, ""), (service, "", request.version)]
    return [
        (request.source, request.source_type, request.target, request.target_type, request.kind)
    ]


def insert(url: str, items: Iterable[Request]) -> None:
    """Minute and hour rows of `items`, as the deriver writes them."""
    service: dict[tuple[object, ...], Summed] = defaultdict(Summed)
    edge: dict[tuple[object, ...], Summed] = defaultdict(Summed)
    for request in items:
        table = edge if request.source else service
        for key in _keys(request):
            table[(60, request.minute, *key)].add(request)
            table[(3600, request.minute // 3600 * 3600, *key)].add(request)
    with psycopg.connect(url) as conn, conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO service_rollups VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
            "%s)",
            [(*key, *signals.columns()) for key, signals in service.items()],
        )
        cursor.executemany(
            "INSERT INTO edge_rollups VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
            "%s, %s)",
            [(*key, *signals.columns()) for key, signals in edge.items()],
        )


def latency_ms(items: Iterable[Request]) -> dict[str, float | None]:
    return summed(items).latency.quantiles_ms()
