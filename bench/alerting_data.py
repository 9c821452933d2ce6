"""The alerting benchmark's data: a mesh of services and edges, its rollups COPYed into the
three rollup tables, and the rules an operator of that mesh would write.

Rollups: every service has minute rows (total, per operation, and per version for about a
fifth of them) from a whole hour at least 3 hours before `t0` until shortly after the last
round, and the 10-minute and hour rows that sum them (exactly: counts and histograms), as the
deriver writes them. Each minute of a series picks one of `POOL` pre-built minutes of its
cell (requests ~ Poisson of its rate, errors by its error ratio, latencies lognormal into a
`LatencyHistogram`), so building the rows costs dictionary merges, not random draws.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import yaml

from meshlens.signals.histogram import LatencyHistogram

MINUTE, TEN_MINUTES, HOUR = 60, 600, 3600
COARSE = (TEN_MINUTES, HOUR)
POOL = 16
"""Pre-built minutes per cell (one operation and version of a service, or one edge)."""
HISTORY = 3 * HOUR
COPY_CHUNK = 20_000

OPERATIONS = (
    "GET /api/v1/items",
    "GET /api/v1/items/{id}",
    "POST /api/v1/orders",
    "GET /healthz",
    "PUT /api/v1/cart",
)
VERSIONS = (("v1.4.2", 0.9), ("v1.5.0", 0.1))
DATABASES = ("postgres-orders", "postgres-users", "redis-cache", "redis-sessions")
EXTERNAL = ("api.payments.example", "api.maps.example")
MTLS_STATES = (("mutual", 0.9), ("plaintext", 0.05), ("tls", 0.03), ("unknown", 0.02))


@dataclass(frozen=True, slots=True)
class Minute:
    """One pre-built minute of a cell."""

    requests: int
    errors: int
    histogram: dict[int, int]


@dataclass(slots=True)
class Cell:
    """What one series' minutes are drawn from; `incident` replaces `normal` while
    `Incident` says so."""

    normal: list[Minute]
    incident: list[Minute] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Incident:
    """From `start` to `end` (unix seconds), `service` fails `error_ratio` of its requests and
    is `slowdown` times slower."""

    service: str
    start: int
    end: int
    error_ratio: float
    slowdown: float = 1.0


@dataclass(slots=True)
class Service:
    name: str
    rpm: float
    error_ratio: float
    median_ms: float
    sigma: float
    operations: tuple[tuple[str, float], ...]
    versions: tuple[tuple[str, float], ...]
    """() when the service has no per-version rows."""
    mutual_share: float
    saturation: float
    team: int

    @property
    def p95_ms(self) -> float:
        return self.median_ms * math.exp(1.645 * self.sigma)


@dataclass(slots=True)
class EdgeSpec:
    source: str
    source_type: str
    target: str
    target_type: str
    rpm: float
    error_ratio: float
    median_ms: float
    sigma: float
    mtls: str


@dataclass(slots=True)
class Mesh:
    services: list[Service]
    edges: list[EdgeSpec]
    incidents: list[Incident]

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)


def make_mesh(count: int, t0: float, rng: random.Random) -> Mesh:
    """`count` services `svc-000`...: 1-200 requests/min (log-uniform), most failing under 1 %
    and one in twenty 2-20 %; each calls 3 others, some a database or an external API, a tenth
    are called by `user`; and a few incidents around `t0` so that alerts start and resolve
    during the rounds."""
    services = []
    for n in range(count):
        roll = rng.random()
        if roll < 0.85:
            errors = rng.uniform(0.0, 0.01)
        elif roll < 0.95:
            errors = rng.uniform(0.01, 0.02)
        else:
            errors = rng.uniform(0.02, 0.2)
        ops = rng.sample(OPERATIONS, rng.choice((2, 3, 3, 4)))
        weights = [rng.uniform(0.2, 1.0) for _ in ops]
        operations = tuple((op, w / sum(weights)) for op, w in zip(ops, weights, strict=True))
        roll = rng.random()
        mutual = 1.0 if roll < 0.9 else rng.uniform(0.6, 0.95) if roll < 0.97 else 0.0
        roll = rng.random()
        saturation = (
            rng.uniform(0.1, 0.6)
            if roll < 0.85
            else rng.uniform(0.6, 0.85)
            if roll < 0.95
            else rng.uniform(0.86, 0.98)
        )
        services.append(
            Service(
                name=f"svc-{n:03d}",
                rpm=math.exp(rng.uniform(0.0, math.log(200.0))),
                error_ratio=errors,
                median_ms=math.exp(rng.uniform(math.log(2.0), math.log(120.0))),
                sigma=rng.uniform(0.45, 0.8),
                operations=operations,
                versions=VERSIONS if rng.random() < 0.2 else (),
                mutual_share=mutual,
                saturation=saturation,
                team=n // 50,
            )
        )
    return Mesh(services, _edges(services, rng), _incidents(services, t0, rng))


def _edges(services: list[Service], rng: random.Random) -> list[EdgeSpec]:
    edges = []
    for caller in services:
        others = [s for s in services if s is not caller]
        for callee in rng.sample(others, min(3, len(others))):
            mtls = _pick(rng, MTLS_STATES)
            edges.append(
                EdgeSpec(
                    caller.name,
                    "service",
                    callee.name,
                    "service",
                    caller.rpm * rng.uniform(0.2, 1.0),
                    callee.error_ratio,
                    callee.median_ms * 1.1,
                    callee.sigma,
                    mtls,
                )
            )
        if rng.random() < 0.3:
            edges.append(_virtual(caller, rng.choice(DATABASES), "database", "unknown", rng))
        if rng.random() < 0.1:
            edges.append(_virtual(caller, rng.choice(EXTERNAL), "external", "tls", rng))
        if rng.random() < 0.1:
            edges.append(
                EdgeSpec(
                    "user",
                    "client",
                    caller.name,
                    "service",
                    caller.rpm * 0.5,
                    caller.error_ratio,
                    caller.median_ms * 1.2,
                    caller.sigma,
                    "tls",
                )
            )
    return edges


def _virtual(caller: Service, target: str, kind: str, mtls: str, rng: random.Random) -> EdgeSpec:
    return EdgeSpec(
        caller.name,
        "service",
        target,
        kind,
        caller.rpm * rng.uniform(0.5, 2.0),
        rng.uniform(0.0, 0.005),
        rng.uniform(0.5, 8.0),
        0.5,
        mtls,
    )


def _incidents(services: list[Service], t0: float, rng: random.Random) -> list[Incident]:
    """Two services failing until 4 minutes after `t0` (their alerts resolve during the
    rounds), three failing from 2 minutes after it and two getting 5x slower from 3 minutes
    after it (their alerts start)."""
    busy = [s for s in services if s.rpm >= 20 and s.error_ratio < 0.01]
    chosen = rng.sample(busy, min(7, len(busy)))
    start = int(t0)
    incidents = []
    for n, service in enumerate(chosen):
        if n < 2:
            incidents.append(Incident(service.name, start - 20 * MINUTE, start + 4 * MINUTE, 0.3))
        elif n < 5:
            incidents.append(Incident(service.name, start + 2 * MINUTE, start + 10 * HOUR, 0.25))
        else:
            incidents.append(
                Incident(service.name, start + 3 * MINUTE, start + 10 * HOUR, 0.01, 5.0)
            )
    return incidents


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    roll, seen = rng.random(), 0.0
    for name, weight in weighted:
        seen += weight
        if roll < seen:
            return name
    return weighted[-1][0]


# --- rows --------------------------------------------------------------------------------------


def _poisson(rng: random.Random, mean: float) -> int:
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def _minutes(
    rng: random.Random, rpm: float, error_ratio: float, median_ms: float, sigma: float
) -> list[Minute]:
    mu = math.log(median_ms * 1e6)
    pool = []
    for _ in range(POOL):
        requests = _poisson(rng, rpm)
        histogram = LatencyHistogram()
        for _ in range(requests):
            histogram.add(int(rng.lognormvariate(mu, sigma)))
        errors = sum(1 for _ in range(requests) if rng.random() < error_ratio)
        pool.append(Minute(requests, errors, histogram.counts))
    return pool


@dataclass(slots=True)
class _Sum:
    """A row being summed: counts, mTLS states and histogram."""

    requests: int = 0
    errors: int = 0
    mtls: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    histogram: dict[int, int] = field(default_factory=dict)

    def add(self, requests: int, errors: int, mtls: list[int], histogram: dict[int, int]) -> None:
        self.requests += requests
        self.errors += errors
        for n in range(4):
            self.mtls[n] += mtls[n]
        mine = self.histogram
        for key, count in histogram.items():
            mine[key] = mine.get(key, 0) + count


def _arrays(histogram: dict[int, int]) -> str:
    keys = sorted(histogram)
    counts = ",".join(str(histogram[key]) for key in keys)
    return "{" + ",".join(map(str, keys)) + "}\t{" + counts + "}"


@dataclass
class Figures:
    """What was loaded."""

    minutes: int = 0
    start_unix: int = 0
    end_unix: int = 0
    rows: dict[str, dict[int, int]] = field(default_factory=dict)
    buckets_per_row: dict[str, float] = field(default_factory=dict)
    edges: int = 0
    service_edges: int = 0
    virtual_edges: int = 0
    plaintext_edges: int = 0
    versioned_services: int = 0
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "minutes": self.minutes,
            "start_unix": self.start_unix,
            "end_unix": self.end_unix,
            "rows": {t: {str(r): n for r, n in rows.items()} for t, rows in self.rows.items()},
            "histogram_buckets_per_row": {k: round(v, 1) for k, v in self.buckets_per_row.items()},
            "edges": self.edges,
            "service_edges": self.service_edges,
            "virtual_edges": self.virtual_edges,
            "plaintext_edges": self.plaintext_edges,
            "versioned_services": self.versioned_services,
            "load_seconds": round(self.seconds, 1),
        }


class _Table:
    """Rows of one table in COPY text format, with the coarse rows summed from the minutes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: list[str] = []
        self.coarse: dict[tuple[int, int, tuple[str, ...]], _Sum] = {}
        self.rows = {MINUTE: 0, TEN_MINUTES: 0, HOUR: 0}
        self.buckets = 0

    def minute(
        self,
        minute: int,
        key: tuple[str, ...],
        requests: int,
        errors: int,
        mtls: list[int],
        histogram: dict[int, int],
    ) -> None:
        self._line(MINUTE, minute, key, requests, errors, mtls, histogram)
        for resolution in COARSE:
            bucket = minute // resolution * resolution
            found = self.coarse.get((resolution, bucket, key))
            if found is None:
                found = self.coarse[(resolution, bucket, key)] = _Sum()
            found.add(requests, errors, mtls, histogram)

    def _line(
        self,
        resolution: int,
        bucket: int,
        key: tuple[str, ...],
        requests: int,
        errors: int,
        mtls: list[int],
        histogram: dict[int, int],
    ) -> None:
        self.rows[resolution] += 1
        self.buckets += len(histogram)
        fields = "\t".join(key)
        states = "\t".join(map(str, mtls))
        self.lines.append(
            f"{resolution}\t{bucket}\t{fields}\t{requests}\t{errors}\t{_arrays(histogram)}"
            f"\t{states}\n"
        )

    def finish(self) -> None:
        for (resolution, bucket, key), found in self.coarse.items():
            self._line(
                resolution, bucket, key, found.requests, found.errors, found.mtls, found.histogram
            )
        self.coarse.clear()

    def chunks(self) -> Iterator[str]:
        for n in range(0, len(self.lines), COPY_CHUNK):
            yield "".join(self.lines[n : n + COPY_CHUNK])


SERVICE_COLUMNS = (
    "resolution, bucket_unix, service, operation, version, requests, errors, latency_keys,"
    " latency_counts, mtls_mutual, mtls_tls, mtls_plaintext, mtls_unknown"
)
EDGE_COLUMNS = (
    "resolution, bucket_unix, source, source_type, target, target_type, source_kind, requests,"
    " errors, latency_keys, latency_counts, mtls_mutual, mtls_tls, mtls_plaintext, mtls_unknown"
)
_STATE_INDEX = {"mutual": 0, "tls": 1, "plaintext": 2, "unknown": 3}


def load_rollups(url: str, mesh: Mesh, t0: float, end: float, rng: random.Random) -> Figures:
    """COPY the mesh's rollups from a whole hour at least `HISTORY` before `t0` to the minute
    holding `end`, then VACUUM ANALYZE the rollup tables (autovacuum's work)."""
    started = time.perf_counter()
    first = (int(t0) - HISTORY) // HOUR * HOUR
    last = int(end) // MINUTE * MINUTE
    minutes = list(range(first, last + MINUTE, MINUTE))
    incidents = {i.service: i for i in mesh.incidents}
    services, edges = _Table("service_rollups"), _Table("edge_rollups")
    for service in mesh.services:
        _service_rows(services, service, incidents.get(service.name), minutes, rng)
    for edge in mesh.edges:
        _edge_rows(edges, edge, incidents.get(edge.target), minutes, rng)
    services.finish()
    edges.finish()
    saturation = _saturation_lines(mesh, incidents, minutes, rng)
    with psycopg.connect(url) as conn:
        with conn.cursor() as cur:
            for table, columns in ((services, SERVICE_COLUMNS), (edges, EDGE_COLUMNS)):
                with cur.copy(f"COPY {table.name} ({columns}) FROM STDIN") as copy:
                    for chunk in table.chunks():
                        copy.write(chunk)
            with cur.copy(
                "COPY saturation_rollups (resolution, bucket_unix, service, value) FROM STDIN"
            ) as copy:
                copy.write("".join(saturation))
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) service_rollups, edge_rollups, saturation_rollups")
    saturation_rows = {MINUTE: len(minutes) * len(mesh.services)}
    for resolution in COARSE:
        saturation_rows[resolution] = len({m // resolution for m in minutes}) * len(mesh.services)
    return Figures(
        minutes=len(minutes),
        start_unix=first,
        end_unix=last + MINUTE,
        rows={
            "service_rollups": services.rows,
            "edge_rollups": edges.rows,
            "saturation_rollups": saturation_rows,
        },
        buckets_per_row={
            "service_rollups": services.buckets / max(1, sum(services.rows.values())),
            "edge_rollups": edges.buckets / max(1, sum(edges.rows.values())),
        },
        edges=len(mesh.edges),
        service_edges=sum(1 for e in mesh.edges if e.target_type == "service"),
        virtual_edges=sum(1 for e in mesh.edges if e.target_type != "service"),
        plaintext_edges=sum(1 for e in mesh.edges if e.mtls == "plaintext"),
        versioned_services=sum(1 for s in mesh.services if s.versions),
        seconds=time.perf_counter() - started,
    )


def _service_rows(
    table: _Table,
    service: Service,
    incident: Incident | None,
    minutes: list[int],
    rng: random.Random,
) -> None:
    versions = service.versions or (("", 1.0),)
    cells: dict[tuple[str, str], Cell] = {}
    for operation, op_share in service.operations:
        for version, version_share in versions:
            # a canary fails a bit more than the stable version
            ratio = service.error_ratio * (2.0 if version == "v1.5.0" else 1.0)
            rpm = service.rpm * op_share * version_share
            cell = Cell(_minutes(rng, rpm, ratio, service.median_ms, service.sigma))
            if incident is not None:
                median = service.median_ms * incident.slowdown
                cell.incident = _minutes(rng, rpm, incident.error_ratio, median, service.sigma)
            cells[(operation, version)] = cell
    mutual = service.mutual_share
    for minute in minutes:
        failing = incident is not None and incident.start <= minute < incident.end
        total = _Sum()
        by_operation: dict[str, _Sum] = {}
        by_version: dict[str, _Sum] = {}
        for (operation, version), cell in cells.items():
            pool = cell.incident if failing else cell.normal
            drawn = pool[rng.randrange(POOL)]
            if not drawn.requests:
                continue
            plain = drawn.requests - round(drawn.requests * mutual)
            states = [drawn.requests - plain, 0, plain, 0]
            for target, name in ((by_operation, operation), (by_version, version)):
                found = target.get(name)
                if found is None:
                    found = target[name] = _Sum()
                found.add(drawn.requests, drawn.errors, states, drawn.histogram)
            total.add(drawn.requests, drawn.errors, states, drawn.histogram)
        if not total.requests:
            continue
        name = service.name
        table.minute(
            minute, (name, "", ""), total.requests, total.errors, total.mtls, total.histogram
        )
        for operation, found in by_operation.items():
            table.minute(
                minute,
                (name, operation, ""),
                found.requests,
                found.errors,
                found.mtls,
                found.histogram,
            )
        if service.versions:
            for version, found in by_version.items():
                table.minute(
                    minute,
                    (name, "", version),
                    found.requests,
                    found.errors,
                    found.mtls,
                    found.histogram,
                )


def _edge_rows(
    table: _Table,
    edge: EdgeSpec,
    incident: Incident | None,
    minutes: list[int],
    rng: random.Random,
) -> None:
    cell = Cell(_minutes(rng, edge.rpm, edge.error_ratio, edge.median_ms, edge.sigma))
    if incident is not None:
        median = edge.median_ms * incident.slowdown
        cell.incident = _minutes(rng, edge.rpm, incident.error_ratio, median, edge.sigma)
    state = _STATE_INDEX[edge.mtls]
    key = (edge.source, edge.source_type, edge.target, edge.target_type, "traces")
    for minute in minutes:
        failing = incident is not None and incident.start <= minute < incident.end
        drawn = (cell.incident if failing else cell.normal)[rng.randrange(POOL)]
        if not drawn.requests:
            continue
        states = [0, 0, 0, 0]
        states[state] = drawn.requests
        table.minute(minute, key, drawn.requests, drawn.errors, states, drawn.histogram)


def _saturation_lines(
    mesh: Mesh, incidents: dict[str, Incident], minutes: list[int], rng: random.Random
) -> list[str]:
    """Highest utilization per service and minute; coarse rows hold the highest of theirs."""
    lines = []
    for service in mesh.services:
        highest: dict[tuple[int, int], float] = {}
        incident = incidents.get(service.name)
        for minute in minutes:
            base = service.saturation
            if incident is not None and incident.start <= minute < incident.end:
                base = max(base, 0.93)
            value = min(1.0, max(0.0, rng.gauss(base, 0.03)))
            lines.append(f"{MINUTE}\t{minute}\t{service.name}\t{value:.4f}\n")
            for resolution in COARSE:
                row = (resolution, minute // resolution * resolution)
                highest[row] = max(highest.get(row, 0.0), value)
        for (resolution, bucket), value in highest.items():
            lines.append(f"{resolution}\t{bucket}\t{service.name}\t{value:.4f}\n")
    return lines


# --- rules -------------------------------------------------------------------------------------

RECEIVERS = [
    {"name": "oncall", "type": "webhook", "url": "http://127.0.0.1:9/oncall"},
    {"name": "platform", "type": "webhook", "url": "http://127.0.0.1:9/platform"},
]
SUMMARIES = {
    "errors": "{{ $labels.service }} fails {{ $value | humanizePercentage }} of requests",
    "latency": '{{ $labels.service }} {{ $value | printf "%.0f" }} ms',
    "edge": "{{ $labels.source }} -> {{ $labels.target }}: {{ $value | humanize }}",
    "version": "{{ $labels.service }} {{ $labels.version }} fails"
    " {{ $value | humanizePercentage }}",
    "mtls": "{{ $labels.service }} receives {{ $value | humanizePercentage }} over mTLS",
    "count": "{{ $value }} edges carry plaintext requests",
}


# Rules over every service, edge or version (no matchers), and mesh rules. `summary` names one
# of SUMMARIES; `window` is 5m, `group_wait` 0s and `receivers` [platform] unless given.
FLEET_RULES = """
- {name: HighErrorRate, signal: error_rate, scope: service, condition: "> 0.05", for: 2m,
   min_requests: 20, severity: critical, receivers: [oncall, platform],
   group_by: [alertname, service], summary: errors}
- {name: ErrorRate15m, signal: error_rate, scope: service, condition: "> 0.02", window: 15m,
   min_requests: 50, group_by: [alertname, service], summary: errors}
- {name: ErrorBudgetBurn1h, signal: error_rate, scope: service, condition: "> 0.01",
   window: 1h, min_requests: 200, summary: errors}
- {name: SlowP95, signal: latency_p95, scope: service, condition: "> 500", for: 2m,
   min_requests: 20, group_by: [alertname, service], summary: latency}
- {name: SlowP99, signal: latency_p99, scope: service, condition: "> 1500", window: 10m,
   min_requests: 50, summary: latency}
- {name: SlowP99Hour, signal: latency_p99, scope: service, condition: "> 1000", window: 1h,
   min_requests: 100, summary: latency}
- {name: SlowMedian, signal: latency_p50, scope: service, condition: "> 300", window: 15m,
   min_requests: 20}
- {name: TrafficVanished, signal: request_rate, scope: service, condition: "< 0.02",
   window: 15m, severity: info}
- {name: Saturated, signal: saturation, scope: service, condition: ">= 0.9", for: 2m,
   severity: critical, receivers: [oncall, platform], group_by: [alertname, service]}
- {name: RunningHot, signal: saturation, scope: service, condition: ">= 0.8", window: 1h}
- {name: LowMtlsCoverage, signal: mtls_coverage, scope: service, condition: "< 0.9",
   window: 1h, summary: mtls}
- {name: PlaintextEdges, signal: plaintext_edges, scope: mesh, condition: "> 0", window: 15m,
   severity: info, summary: count}
- {name: MeshMtlsCoverage, signal: mtls_coverage, scope: mesh, condition: "< 0.95", window: 1h}
- {name: MeshErrorRate, signal: error_rate, scope: mesh, condition: "> 0.01",
   receivers: [oncall, platform]}
- {name: MeshP99, signal: latency_p99, scope: mesh, condition: "> 1000", window: 10m}
- {name: MeshTrafficDrop, signal: request_rate, scope: mesh, condition: "< 10",
   severity: critical}
- {name: SlowCalls, signal: latency_p99, scope: edge, condition: "> 1000", window: 10m,
   min_requests: 50, summary: edge}
- {name: FailingCalls, signal: error_rate, scope: edge, condition: "> 0.05", for: 2m,
   min_requests: 20, summary: edge}
- {name: SlowDatabase, signal: latency_p95, scope: edge, condition: "> 15",
   matchers: ['target=~"(postgres|redis)-.*"'], min_requests: 20}
- {name: ExternalErrors, signal: error_rate, scope: edge, condition: "> 0.02", window: 15m,
   matchers: ['target=~"api\\\\..*"']}
- {name: PlaintextCall, signal: mtls_coverage, scope: edge, condition: "< 1", window: 1h,
   severity: info, matchers: ['source!="user"', 'target=~"svc-.*"']}
- {name: VersionErrors, signal: error_rate, scope: version, condition: "> 0.02", window: 10m,
   min_requests: 20, summary: version}
- {name: VersionSlowP95, signal: latency_p95, scope: version, condition: "> 800",
   window: 15m, min_requests: 20}
"""

# One team's rules: TEAM is its number, NAMES the regex of its 50 services' names.
TEAM_RULES = """
- {name: TeamTEAMErrors, signal: error_rate, scope: service, condition: "> 0.03", for: 2m,
   matchers: ['service=~"NAMES"'], min_requests: 20, group_by: [alertname, service],
   summary: errors}
- {name: TeamTEAMErrors15m, signal: error_rate, scope: service, condition: "> 0.015",
   window: 15m, matchers: ['service=~"NAMES"'], min_requests: 50}
- {name: TeamTEAMP95, signal: latency_p95, scope: service, condition: "> 400",
   matchers: ['service=~"NAMES"'], min_requests: 20, summary: latency}
- {name: TeamTEAMP99, signal: latency_p99, scope: service, condition: "> 900", window: 15m,
   matchers: ['service=~"NAMES"'], min_requests: 50}
- {name: TeamTEAMTraffic, signal: request_rate, scope: service, condition: "< 0.005",
   window: 10m, matchers: ['service=~"NAMES"'], severity: info}
- {name: TeamTEAMSaturation, signal: saturation, scope: service, condition: "> 0.85",
   matchers: ['service=~"NAMES"']}
- {name: TeamTEAMMtls, signal: mtls_coverage, scope: service, condition: "< 0.99",
   window: 1h, matchers: ['service=~"NAMES"']}
- {name: TeamTEAMCallErrors, signal: error_rate, scope: edge, condition: "> 0.03",
   window: 10m, matchers: ['source=~"NAMES"'], min_requests: 20}
- {name: TeamTEAMCallP99, signal: latency_p99, scope: edge, condition: "> 800", window: 15m,
   matchers: ['source=~"NAMES"'], min_requests: 50}
- {name: TeamTEAMCanary, signal: error_rate, scope: version, condition: "> 0.02",
   window: 15m, matchers: ['service=~"NAMES"', 'version="v1.5.0"'], min_requests: 10}
"""


def _with_defaults(rule: dict[str, Any]) -> dict[str, Any]:
    rule = {"window": "5m", "group_wait": "0s", "receivers": ["platform"], **rule}
    summary = rule.pop("summary", None)
    if summary is not None:
        rule["annotations"] = {"summary": SUMMARIES[summary]}
    return rule


def _fleet_rules() -> list[dict[str, Any]]:
    return [_with_defaults(rule) for rule in yaml.safe_load(FLEET_RULES)]


def _team_rules(team: int, services: list[Service]) -> list[dict[str, Any]]:
    """Rules of one team owning 50 services, by a regex on their names."""
    lo = services[0].name  # svc-050: svc-0[5-9].*
    names = f"svc-{lo[4]}[{lo[5]}-{int(lo[5]) + 4}].*"
    found = yaml.safe_load(TEAM_RULES.replace("TEAM", str(team)).replace("NAMES", names))
    return [_with_defaults({**rule, "labels": {"team": f"team-{team}"}}) for rule in found]


_ONE_SERVICE_KINDS = (
    ("error_rate", 35),
    ("latency_p95", 20),
    ("latency_p99", 10),
    ("request_rate", 10),
    ("saturation", 8),
    ("mtls_coverage", 4),
    ("edge", 8),
    ("version", 5),
)


def _one_service_rule(
    kind: str, service: Service, mesh: Mesh, n: int, rng: random.Random
) -> dict[str, Any]:
    """A rule a service's team writes for that service alone (or one of its calls or
    versions)."""
    rule: dict[str, Any] = {
        "name": f"{service.name}-{kind}-{n}",
        "signal": kind,
        "scope": "service",
        "matchers": {"service": service.name},
        "window": rng.choice(("5m", "5m", "10m", "15m", "1h")),
        "for": rng.choice(("0s", "2m")),
        "labels": {"team": f"team-{service.team}"},
    }
    if kind == "error_rate":
        threshold = rng.choice((0.01, 0.02, 0.03, 0.05))
        rule.update(condition=f"> {threshold}", min_requests=rng.choice((10, 50)))
        rule.update(summary="errors", severity="critical")
    elif kind in ("latency_p95", "latency_p99"):
        quantile = 1.645 if kind == "latency_p95" else 2.326
        typical = service.median_ms * math.exp(quantile * service.sigma)
        threshold = round(typical * rng.uniform(0.9, 3.0), 1)
        rule.update(condition=f"> {threshold}", min_requests=20, summary="latency")
    elif kind == "request_rate":
        rule["condition"] = f"< {round(service.rpm / 60 * rng.uniform(0.2, 0.6), 4)}"
    elif kind == "saturation":
        rule["condition"] = f"> {rng.choice((0.8, 0.85, 0.9))}"
    elif kind == "mtls_coverage":
        rule["condition"] = "< 1"
    elif kind == "edge":
        edge = rng.choice([e for e in mesh.edges if e.source == service.name])
        rule.update(scope="edge", matchers={"source": edge.source, "target": edge.target})
        if rng.random() < 0.5:
            rule.update(signal="error_rate", condition="> 0.02", summary="edge")
        else:
            p99 = edge.median_ms * math.exp(2.326 * edge.sigma)
            rule.update(signal="latency_p99", condition=f"> {round(p99 * rng.uniform(1, 3), 1)}")
        rule["min_requests"] = 20
    else:
        assert kind == "version"
        version = rng.choice(service.versions or (("v1.4.2", 1.0),))[0]
        rule.update(scope="version", matchers={"service": service.name, "version": version})
        rule.update(signal="error_rate", condition="> 0.02", min_requests=10, summary="version")
    return _with_defaults(rule)


def make_rules(mesh: Mesh, count: int, rng: random.Random) -> list[dict[str, Any]]:
    """`count` rules as an operator of `mesh` would write them: fleet-wide rules and mesh
    rules, each team's rules by regex, then rules about one service (or one of its edges or
    versions), round-robin over the services."""
    rules = _fleet_rules()
    for team in range(len(mesh.services) // 50):
        rules.extend(_team_rules(team, mesh.services[team * 50 : team * 50 + 50]))
    kinds = [kind for kind, weight in _ONE_SERVICE_KINDS for _ in range(weight)]
    order = list(mesh.services)
    rng.shuffle(order)
    versioned = [service for service in order if service.versions] or order
    n = 0
    while len(rules) < count:
        service = order[n % len(order)]
        kind = rng.choice(kinds)
        if kind == "version":
            service = versioned[n % len(versioned)]
        rules.append(_one_service_rule(kind, service, mesh, n, rng))
        n += 1
    return rules[:count]
