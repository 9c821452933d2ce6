"""A known mesh written straight into the rollup tables, and the answers expected from it.

Requests are listed one by one (`Request`), then summed into rows at every resolution the
deriver writes (`meshlens.timeunits.RESOLUTIONS`: minute, 10-minute and hour rows), all from
that one list, so a query reading two resolutions for the same time, or missing some, gets
numbers that differ from what the tests compute from the list itself. Utilization readings
(`Reading`) become saturation rows the same way.

The mesh, every minute from 08:00 to 12:09 UTC on 2026-11-26 (minute index i from 0):
- user -> checkout (traces; root spans): 10, 20 or 30 requests; versions v1/v2 90/10,
  operations POST /pay and GET /cart 60/40; v2 slow, failing on even minutes.
- checkout -> cart: every cart request in mesh metrics, every other one in traces as well.
- cart -> redis (database, traces, plaintext); checkout -> inventory (mesh metrics only: no
  entry spans, mutual); checkout -> payments.example.com (external, traces, one-way TLS);
  inventory -> queue/orders (messaging, traces, even minutes, state unknown).
- The plaintext half of checkout -> cart in mesh metrics gives Linkerd reasons, mostly
  `no_identity`, some `not_provided_by_remote`, some none.
- Utilization: checkout and cart every minute; `batch` (gauges only, no requests) every
  minute; inventory none.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import psycopg
from psycopg.types.json import Jsonb

from meshlens.signals.histogram import LatencyHistogram
from meshlens.timeunits import RESOLUTIONS

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
    reason: str = ""  # why a plaintext request is plaintext, where the mesh says
    unknown_rate: bool = False  # counted from a span sampled at a rate nobody declared


@dataclass(frozen=True)
class Reading:
    """The highest utilization of a service's gauges in one minute."""

    minute: int
    service: str
    value: float


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
        reason = ""
        if j % 4 == 1 or (j % 4 == 3 and i % 3 == 0):
            reason = "no_identity"
        elif j % 4 == 3 and i % 3 == 1:
            reason = "not_provided_by_remote"
        yield Request(
            **{
                **_edge(request, "checkout", "service", "mesh-metrics").__dict__,
                "reason": reason,
            }
        )
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


def readings() -> list[Reading]:
    found = []
    for i in range(MINUTES):
        minute = FIRST_MINUTE + 60 * i
        found.append(Reading(minute, "checkout", (i * 37 % 100) / 100))
        found.append(Reading(minute, "cart", 0.2 + (i % 7) / 10))
        found.append(Reading(minute, "batch", 0.05 + (i % 11) / 100))
    return found


def highest(items: Iterable[Reading], service: str, lo: int, hi: int) -> float | None:
    """The saturation expected of `service` over the minutes `[lo, hi)`."""
    values = [r.value for r in items if r.service == service and lo <= r.minute < hi]
    return max(values) if values else None


def reasons(items: Iterable[Request]) -> dict[str, int]:
    """Plaintext requests by reason, of the requests that give one."""
    counted: dict[str, int] = defaultdict(int)
    for request in items:
        if request.mtls == PLAINTEXT and request.reason:
            counted[request.reason] += 1
    return dict(counted)


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
    unknown_rate: int = 0

    def __post_init__(self) -> None:
        self.latency = LatencyHistogram()
        self.reasons: dict[str, int] = {}

    def add(self, request: Request) -> None:
        self.requests += 1
        self.errors += request.error
        self.unknown_rate += request.unknown_rate
        self.latency.add(request.duration_ns)
        state = ("unknown", "plaintext", "tls", "mutual")[request.mtls]
        setattr(self, state, getattr(self, state) + 1)
        if request.mtls == PLAINTEXT and request.reason:
            self.reasons[request.reason] = self.reasons.get(request.reason, 0) + 1

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
            self.unknown_rate,
        )


_SIGNAL_NAMES = (
    "requests", "errors", "latency_keys", "latency_counts", "mtls_mutual", "mtls_tls",
    "mtls_plaintext", "mtls_unknown", "unknown_rate",
)  # fmt: skip


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


def insert(
    url: str,
    items: Iterable[Request],
    utilization: Iterable[Reading] = (),
    resolutions: Iterable[int] = RESOLUTIONS,
) -> None:
    """Rows of `items` and `utilization` at every resolution, as the deriver writes them
    (`resolutions`: as an older deriver did). `unknown_rate` (revision 0009) is written only
    when a request has it, so rows fit older schemas too."""
    items, utilization = list(items), list(utilization)
    width = 9 if any(request.unknown_rate for request in items) else 8  # signal columns
    service: dict[tuple[object, ...], Summed] = defaultdict(Summed)
    edge: dict[tuple[object, ...], Summed] = defaultdict(Summed)
    saturation: dict[tuple[int, int, str], float] = {}
    for resolution in resolutions:
        for request in items:
            table = edge if request.source else service
            bucket = request.minute // resolution * resolution
            for key in _keys(request):
                table[(resolution, bucket, *key)].add(request)
        for reading in utilization:
            at = (resolution, reading.minute // resolution * resolution, reading.service)
            saturation[at] = max(reading.value, saturation.get(at, reading.value))
    with psycopg.connect(url) as conn, conn.cursor() as cursor:
        names = ", ".join(_SIGNAL_NAMES[:width])
        cursor.executemany(
            f"INSERT INTO service_rollups (resolution, bucket_unix, service, operation, version,"
            f" {names}) VALUES ({', '.join(['%s'] * (5 + width))})",
            [(*key, *signals.columns()[:width]) for key, signals in service.items()],
        )
        cursor.executemany(
            f"INSERT INTO edge_rollups (resolution, bucket_unix, source, source_type, target,"
            f" target_type, source_kind, {names}, plaintext_reasons)"
            f" VALUES ({', '.join(['%s'] * (8 + width))})",
            [
                (*key, *signals.columns()[:width], Jsonb(signals.reasons))
                for key, signals in edge.items()
            ],
        )
        cursor.executemany(
            "INSERT INTO saturation_rollups VALUES (%s, %s, %s, %s)",
            [(*key, value) for key, value in saturation.items()],
        )


def latency_ms(items: Iterable[Request]) -> dict[str, float | None]:
    return summed(items).latency.quantiles_ms()
