"""Ingest benchmark: sustained OTLP/HTTP span ingest by `meshlens serve`, and its COPY ceiling.

    python bench/ingest.py [--seconds 120] [--connections 8] [--spans-per-request 1000]
                           [--database-url URL]

1. Creates an empty database `meshlens_bench_<random>` (on the machine's PostgreSQL, on the
   server of --database-url, or on a throwaway embedded PostgreSQL) and starts `meshlens serve`
   on it as a subprocess.
2. From this process, sends OTLP/HTTP protobuf requests of realistic spans over keep-alive
   connections; warms up, then measures for --seconds: acknowledged spans/s, request latency,
   server RSS and CPU, PostgreSQL CPU.
3. Stops the server and checks that the `spans` table holds exactly the acknowledged spans.
4. COPYs the same spans straight into the same table from two connections (no HTTP, no
   decoding): the ceiling the ingest path is compared with.
5. Prints a summary, writes bench/results/ingest-<timestamp>.json and drops the database.

The load generator is kept cheap so it leaves the CPU to the server: a few requests are
serialized once, every trace id in them starts with the same 8-byte placeholder, and each send
is one `bytes.replace` of the placeholder with a fresh 8-byte prefix.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import json
import math
import os
import platform
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from collector.decode import OtlpDecoder, TimeWindow
from collector.rows import SPAN_COLUMNS
from meshlens.settings import Settings

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
MACHINE_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
HOST = "127.0.0.1"  # meshlens serve's default listen address

TEMPLATES = 4  # distinct pre-serialized requests, sent in turn
SPANS_PER_TRACE = 10
TOKEN_LENGTH = 8  # placeholder = the first 8 bytes of every trace id in a template
MIX = 0x9E3779B97F4A7C15  # odd, so multiplying by it permutes the 64-bit integers
CEILING_COUNTER_BASE = 1 << 62  # ceiling id prefixes never meet the HTTP run's
CEILING_BATCH_ROWS = 10_000
CEILING_MAX_RATE = 300_000  # spans/s: how many ceiling batches to prepare for --ceiling-seconds
REQUEST_TIMEOUT = 60.0
READY_TIMEOUT = 60.0
PROGRESS_EVERY = 10  # seconds
FINAL_SECONDS = 30  # the summary also shows the mean rate of the run's last seconds
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024


# -- options --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    """What to run; see `parse_args`."""

    seconds: int
    warmup: int
    connections: int
    spans_per_request: int
    ceiling_seconds: int
    database_url: str | None
    embedded: bool


def parse_args(argv: Sequence[str] | None) -> Options:
    """The command line as Options."""
    parser = argparse.ArgumentParser(
        description="Measure sustained OTLP/HTTP span ingest of `meshlens serve` against the "
        "COPY ceiling of the same spans.",
    )
    add = parser.add_argument
    add("--seconds", type=_positive, default=120, help="measured run (%(default)s)")
    add("--warmup", type=_non_negative, default=5, help="uncounted load first (%(default)s s)")
    add("--connections", type=_positive, default=8, help="keep-alive connections (%(default)s)")
    add("--spans-per-request", type=_positive, default=1000, help="spans per request (%(default)s)")
    add("--ceiling-seconds", type=_positive, default=25, help="COPY ceiling run (%(default)s s)")
    add(
        "--database-url",
        help="PostgreSQL server to create the throwaway database on (the URL's database is only "
        f"used to connect); unset: {MACHINE_POSTGRES}, else an embedded PostgreSQL",
    )
    add(
        "--embedded",
        action="store_true",
        help="use a throwaway embedded PostgreSQL even when the machine's one answers",
    )
    args = parser.parse_args(argv)
    if args.embedded and args.database_url:
        parser.error("--embedded and --database-url exclude each other")
    return Options(
        seconds=args.seconds,
        warmup=args.warmup,
        connections=args.connections,
        spans_per_request=args.spans_per_request,
        ceiling_seconds=args.ceiling_seconds,
        database_url=args.database_url,
        embedded=args.embedded,
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


# -- the spans: a small service mesh --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Service:
    """One workload of the mesh: its name, namespace and the routes it serves."""

    name: str
    namespace: str
    routes: tuple[tuple[str, str], ...]  # (method, route template)
    protocol: str  # network.protocol.version

    @property
    def address(self) -> str:
        return f"{self.name}.{self.namespace}.svc.cluster.local"


SERVICES = (  # the first one is the ingress-facing frontend: every trace starts there
    Service(
        "frontend",
        "web",
        (("GET", "/"), ("GET", "/products/{id}"), ("POST", "/cart"), ("GET", "/checkout")),
        "1.1",
    ),
    Service("checkout", "shop", (("POST", "/api/checkout"), ("GET", "/api/orders/{id}")), "2"),
    Service(
        "cart",
        "shop",
        (
            ("GET", "/api/carts/{id}"),
            ("POST", "/api/carts/{id}/items"),
            ("DELETE", "/api/carts/{id}"),
        ),
        "2",
    ),
    Service(
        "catalog",
        "shop",
        (("GET", "/api/products"), ("GET", "/api/products/{id}"), ("GET", "/api/categories/{id}")),
        "1.1",
    ),
    Service("payments", "billing", (("POST", "/api/payments"), ("GET", "/api/payments/{id}")), "2"),
    Service("shipping", "shop", (("POST", "/api/quotes"), ("GET", "/api/shipments/{id}")), "1.1"),
    Service("users", "identity", (("GET", "/api/users/{id}"), ("POST", "/api/sessions")), "2"),
    Service("recommendations", "shop", (("GET", "/api/recommendations"),), "1.1"),
)
BROWSERS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148 Safari/604.1",
)
# (http.response.status_code, weight): mostly fine, some not found, some server errors
STATUS_CODES = ((200, 93), (404, 3), (500, 2), (503, 2))
UPSTREAM_ERROR = "upstream connect error or disconnect/reset before headers"
SCOPE = InstrumentationScope(name="io.opentelemetry.instrumentation.http", version="2.9.0")


@dataclass(frozen=True, slots=True)
class Pod:
    """The one pod of a service: its resource attributes and address."""

    service: Service
    resource: Resource
    ip: str
    user_agent: str  # what its HTTP client sends


def make_pods(rng: random.Random) -> list[Pod]:
    """One pod per service, with the resource attributes a Kubernetes deployment reports."""
    pods = []
    for number, service in enumerate(SERVICES):
        suffix = "".join(rng.choices("bcdfghjklmnpqrstvwxz2456789", k=5))
        language = "go" if service.protocol == "2" else "java"
        attributes = [
            kv("service.name", service.name),
            kv("service.version", f"1.{number + 3}.{rng.randrange(10)}"),
            kv("service.namespace", service.namespace),
            kv("k8s.namespace.name", service.namespace),
            kv("k8s.deployment.name", service.name),
            kv("k8s.pod.name", f"{service.name}-7c9d{number}f8b6-{suffix}"),
            kv("k8s.node.name", f"node-{number % 3 + 1}"),
            kv("telemetry.sdk.language", language),
        ]
        pod = Pod(
            service,
            Resource(attributes=attributes),
            f"10.42.{number}.{rng.randrange(2, 250)}",
            "Go-http-client/2.0" if language == "go" else "Java-http-client/21.0.4",
        )
        pods.append(pod)
    return pods


def kv(key: str, value: str | int) -> KeyValue:
    """An OTLP attribute."""
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP call between two pods: what both its CLIENT and SERVER span describe."""

    method: str
    route: str
    path: str
    status: int


@dataclass(frozen=True, slots=True)
class Hop:
    """A SERVER span: the pod that handled a call, and when. Further calls hang under it."""

    span_id: bytes
    pod: int
    start: int
    end: int


class RequestBuilder:
    """Builds one OTLP request: traces of a frontend SERVER span and CLIENT/SERVER call pairs."""

    def __init__(self, rng: random.Random, pods: Sequence[Pod], token: bytes, now: int) -> None:
        self._rng = rng
        self._pods = pods
        self._token = token
        self._now = now
        self._spans: list[list[Span]] = [[] for _ in pods]
        self._ids: set[bytes] = set()

    def build(self, spans: int) -> ExportTraceServiceRequest:
        """A request of `spans` spans, SPANS_PER_TRACE to a trace (the last may be shorter)."""
        for first in range(0, spans, SPANS_PER_TRACE):
            self._trace(self._token + self._unique_id(), min(SPANS_PER_TRACE, spans - first))
        return ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(
                    resource=pod.resource, scope_spans=[ScopeSpans(scope=SCOPE, spans=pod_spans)]
                )
                for pod, pod_spans in zip(self._pods, self._spans, strict=True)
                if pod_spans
            ]
        )

    def _trace(self, trace_id: bytes, count: int) -> None:
        """A request entering at the frontend, then calls from random hops to other pods."""
        rng = self._rng
        start = self._now - rng.randrange(2_000_000_000)
        end = start + rng.randrange(20, 400) * 1_000_000
        client_ip = f"203.0.113.{rng.randrange(1, 255)}"
        root = self._server(
            trace_id, b"", 0, self._call(0), start, end, rng.choice(BROWSERS), client_ip
        )
        hops = [root]
        made = 1
        while made < count:
            caller = rng.choice(hops)
            callee = rng.choice([n for n in range(1, len(self._pods)) if n != caller.pod])
            both = made + 2 <= count  # the last span of a trace may be a lone CLIENT span
            hop = self._exchange(trace_id, caller, callee, with_server=both)
            made += 2 if both else 1
            if hop is not None:
                hops.append(hop)

    def _exchange(
        self, trace_id: bytes, caller: Hop, callee: int, *, with_server: bool
    ) -> Hop | None:
        """The CLIENT span of `caller` calling `callee`, and the callee's SERVER span."""
        rng = self._rng
        call = self._call(callee)
        start = caller.start + int((caller.end - caller.start) * rng.uniform(0.05, 0.5))
        end = start + int((caller.end - start) * rng.uniform(0.3, 0.9))
        span_id = self._client(trace_id, caller, callee, call, start, end)
        if not with_server:
            return None
        margin = (end - start) // 20  # the network time on either side
        source = self._pods[caller.pod]
        return self._server(
            trace_id,
            span_id,
            callee,
            call,
            start + margin,
            end - margin,
            source.user_agent,
            source.ip,
        )

    def _client(
        self, trace_id: bytes, caller: Hop, callee: int, call: Call, start: int, end: int
    ) -> bytes:
        source, target = self._pods[caller.pod], self._pods[callee]
        address = target.service.address
        span = Span(
            trace_id=trace_id,
            span_id=self._unique_id(),
            parent_span_id=caller.span_id,
            name=call.method,
            kind=Span.SPAN_KIND_CLIENT,
            start_time_unix_nano=start,
            end_time_unix_nano=end,
            attributes=[
                kv("http.request.method", call.method),
                kv("url.full", f"http://{address}:8080{call.path}"),
                kv("url.template", call.route),
                kv("server.address", address),
                kv("server.port", 8080),
                kv("http.response.status_code", call.status),
                kv("network.protocol.version", target.service.protocol),
                kv("network.peer.address", target.ip),
                kv("network.peer.port", 8080),
                kv("user_agent.original", source.user_agent),
            ],
            # client spans fail on 4xx too
            status=_status(call.status >= 400, UPSTREAM_ERROR if call.status == 503 else ""),
        )
        self._spans[caller.pod].append(span)
        return span.span_id

    def _server(
        self,
        trace_id: bytes,
        parent: bytes,
        pod: int,
        call: Call,
        start: int,
        end: int,
        user_agent: str,
        client_ip: str,
    ) -> Hop:
        service = self._pods[pod].service
        span = Span(
            trace_id=trace_id,
            span_id=self._unique_id(),
            parent_span_id=parent,
            name=f"{call.method} {call.route}",
            kind=Span.SPAN_KIND_SERVER,
            start_time_unix_nano=start,
            end_time_unix_nano=end,
            attributes=[
                kv("http.request.method", call.method),
                kv("http.route", call.route),
                kv("http.response.status_code", call.status),
                kv("url.path", call.path),
                kv("url.scheme", "http"),
                kv("server.address", service.address),
                kv("server.port", 8080),
                kv("network.protocol.version", service.protocol),
                kv("user_agent.original", user_agent),
                kv("client.address", client_ip),
            ],
            status=_status(call.status >= 500, ""),  # server spans fail on 5xx only
        )
        self._spans[pod].append(span)
        return Hop(span.span_id, pod, start, end)

    def _call(self, pod: int) -> Call:
        rng = self._rng
        method, route = rng.choice(self._pods[pod].service.routes)
        path = route
        while "{id}" in path:
            path = path.replace("{id}", str(rng.randrange(1, 100_000)), 1)
        codes, weights = zip(*STATUS_CODES, strict=True)
        return Call(method, route, path, rng.choices(codes, weights)[0])

    def _unique_id(self) -> bytes:
        """8 random bytes, never zero, unique within this request (span ids and id suffixes)."""
        while True:
            value = self._rng.randbytes(8)
            if value != bytes(8) and value not in self._ids:
                self._ids.add(value)
                return value


def _status(failed: bool, message: str) -> Status:
    if failed:
        return Status(code=Status.STATUS_CODE_ERROR, message=message)
    return Status()


# -- templates: pre-serialized requests with a trace id placeholder -------------------------


@dataclass(frozen=True, slots=True)
class Template:
    """A serialized request; every trace id in it is TOKEN + 8 bytes unique in the request."""

    body: bytes
    spans: int


def id_prefix(counter: int) -> bytes:
    """The 8 bytes replacing the token for send number `counter`: unique, and well spread.

    Multiplying by an odd constant modulo 2**64 is a bijection, so distinct counters give
    distinct prefixes, scattered over the index like random trace ids would be.
    """
    return (counter * MIX % (1 << 64)).to_bytes(8, "big")


def build_templates(spans_per_request: int, seed: int = 20261126) -> tuple[bytes, list[Template]]:
    """The placeholder token and TEMPLATES requests of `spans_per_request` spans, timed now."""
    rng = random.Random(seed)
    pods = make_pods(rng)
    now = time.time_ns()
    for _ in range(100):
        token = secrets.token_bytes(TOKEN_LENGTH)
        bodies = [
            RequestBuilder(rng, pods, token, now).build(spans_per_request).SerializeToString()
            for _ in range(TEMPLATES)
        ]
        if all(_token_only_in_trace_ids(body, token, spans_per_request) for body in bodies):
            return token, [Template(body, spans_per_request) for body in bodies]
    raise RuntimeError("could not find a placeholder token that occurs only in trace ids")


def _token_only_in_trace_ids(body: bytes, token: bytes, spans: int) -> bool:
    """True when replacing `token` in `body` changes exactly the trace ids, and nothing else."""
    if body.count(token) != spans:
        return False
    probe = id_prefix(7)
    request = ExportTraceServiceRequest.FromString(body.replace(token, probe))
    ids = [s.trace_id for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    return len(ids) == spans and all(trace_id[:TOKEN_LENGTH] == probe for trace_id in ids)


# -- PostgreSQL: a throwaway database -------------------------------------------------------


def postgres_answers(url: str) -> bool:
    """True when a PostgreSQL server answers at `url`."""
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@contextlib.contextmanager
def postgres_server(options: Options, workdir: Path) -> Iterator[str]:
    """An admin URL of the server to benchmark on (an embedded one is stopped on exit)."""
    if options.database_url is not None:
        if not postgres_answers(options.database_url):
            raise SystemExit(f"no PostgreSQL answers at {_redacted(options.database_url)}")
        yield options.database_url
        return
    if not options.embedded and postgres_answers(MACHINE_POSTGRES):
        yield MACHINE_POSTGRES
        return
    from meshlens.embedded_pg import EmbeddedPostgres  # only needed without a machine server

    print("starting an embedded PostgreSQL for the run", flush=True)
    workdir.chmod(0o711)  # when run as root, the server account must reach its data folder
    with EmbeddedPostgres(workdir / "pg", database="postgres") as server:
        yield server.url


@contextlib.contextmanager
def bench_database(admin_url: str) -> Iterator[str]:
    """A fresh, empty database on the server of `admin_url`; dropped on exit, always."""
    name = f"meshlens_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(drop.format(sql.Identifier(name)))


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` (host:port and unix-socket URLs alike)."""
    scheme, _, rest = url.partition("://")
    authority, _, tail = rest.partition("/")
    query = tail.partition("?")[2]
    return f"{scheme}://{authority}/{name}" + (f"?{query}" if query else "")


def _redacted(url: str) -> str:
    """`url` without its password."""
    params = conninfo_to_dict(url)
    host = params.get("host") or "local socket"
    return f"{params.get('user', '')}@{host}:{params.get('port', 5432)}/{params.get('dbname', '')}"


def count_spans(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM spans").fetchone()
    return int(row[0]) if row else 0


def server_version(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]).split()[0] if row else "?"


# -- /proc: CPU and memory of processes on this machine -------------------------------------


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process `pid` (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime: fields 14, 15


def rss_bytes(pid: int) -> int:
    """Resident memory of process `pid` (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"process {pid} reports no VmRSS")


def own_cpu_seconds() -> float:
    """CPU time of this process (every thread)."""
    times = os.times()
    return times.user + times.system


def machine_cpu_seconds() -> tuple[float, float]:
    """CPU time of the whole machine (every core): busy, and idle waiting for I/O."""
    ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle, iowait = ticks[3], ticks[4]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - idle - iowait) / CLOCK_TICKS, iowait / CLOCK_TICKS


class PostgresCpu:
    """CPU time of the PostgreSQL processes working for the bench database, from /proc.

    Counts the backends connected to the database (the server's writers and API pool) and the
    cluster's WAL writer, checkpointer and background writer, which write what they commit.
    Only possible when PostgreSQL runs on this machine.
    """

    QUERY = (
        "SELECT pid, backend_type FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND "
        "(datname = current_database() "
        " OR backend_type IN ('walwriter', 'checkpointer', 'background writer'))"
    )

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._kind: dict[int, str] = {}
        self._lock = threading.Lock()

    @classmethod
    def attach(cls, url: str) -> PostgresCpu | None:
        """A probe for the database at `url`, or None when its processes are not readable."""
        host = str(conninfo_to_dict(url).get("host") or "")
        if not (host == "" or host.startswith("/") or host in {"127.0.0.1", "localhost", "::1"}):
            return None  # the pids it reports are another machine's
        probe = cls(psycopg.connect(url, autocommit=True))
        if not probe._read():
            probe.close()
            return None
        return probe

    def close(self) -> None:
        self._conn.close()

    def start(self) -> None:
        """Start counting from now."""
        with self._lock:
            self._first, self._last, self._kind = {}, {}, {}
        self.sample()

    def sample(self) -> None:
        """Take a reading; call often enough to see short-lived backends."""
        readings = self._read()
        with self._lock:
            started = bool(self._first)
            for pid, (kind, seconds) in readings.items():
                self._first.setdefault(pid, seconds if not started else 0.0)
                self._last[pid] = seconds
                self._kind[pid] = kind

    def seconds(self) -> dict[str, float]:
        """CPU seconds since start(), as {"backends": .., "background": ..}."""
        totals = {"backends": 0.0, "background": 0.0}
        with self._lock:
            for pid, last in self._last.items():
                totals[self._kind[pid]] += last - self._first[pid]
        return totals

    def _read(self) -> dict[int, tuple[str, float]]:
        readings = {}
        for pid, backend_type in self._conn.execute(self.QUERY).fetchall():
            kind = "backends" if backend_type == "client backend" else "background"
            try:
                if not Path(f"/proc/{pid}/comm").read_text().startswith("postgres"):
                    continue
                readings[pid] = (kind, cpu_seconds(pid))
            except OSError:  # gone meanwhile, or not ours to read
                continue
        return readings


# -- meshlens serve as a subprocess ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Server:
    """A `meshlens serve` subprocess and its ports."""

    process: subprocess.Popen[bytes]
    database_url: str
    otlp_http_port: int
    web_port: int
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(database_url: str, log_path: Path) -> Server:
    """Start `meshlens serve` on free ports and wait until /readyz says ready."""
    otlp_http_port, web_port = free_port(), free_port()
    environment = {
        **os.environ,  # other MESHLENS_* settings reach the server (see server_overrides)
        "MESHLENS_HOST": HOST,
        "MESHLENS_DATABASE_URL": database_url,
        "MESHLENS_OTLP_GRPC_PORT": str(free_port()),
        "MESHLENS_OTLP_HTTP_PORT": str(otlp_http_port),
        "MESHLENS_HTTP_PORT": str(web_port),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "meshlens.cli", "serve"],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    server = Server(process, database_url, otlp_http_port, web_port, log_path)
    try:
        _wait_ready(server)
    except BaseException:
        stop_server(server)
        raise
    return server


def server_writers() -> int:
    """The server's writer connections: MESHLENS_WRITER_CONNECTIONS, or the default."""
    from_environment: dict[str, Any] = {}  # Settings reads MESHLENS_* itself
    return Settings(**from_environment).writer_connections


def server_overrides() -> dict[str, str]:
    """MESHLENS_* settings from the environment that the server runs with, besides ours."""
    ours = {"MESHLENS_HOST", "MESHLENS_DATABASE_URL", "MESHLENS_DATA_DIR"}
    ours |= {f"MESHLENS_{port}_PORT" for port in ("OTLP_GRPC", "OTLP_HTTP", "HTTP")}
    return {
        name: value
        for name, value in sorted(os.environ.items())
        if name.startswith("MESHLENS_") and name not in ours
    }


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"meshlens serve exited early:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{server.web_port}/readyz", timeout=1):
                return  # urlopen raises on a 503 (not ready yet)
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"meshlens serve did not become ready:\n{server.log_tail()}")


def stop_server(server: Server) -> None:
    """SIGTERM (meshlens drains its queue), then SIGKILL after 30 s."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


# -- the load generator: raw HTTP/1.1 over asyncio streams ----------------------------------


class ProtocolError(Exception):
    """An HTTP answer this minimal client does not understand."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    retry_after: float
    close: bool


def request_head(port: int, length: int) -> bytes:
    """The head of an OTLP/HTTP protobuf export of a `length`-byte body."""
    return (
        f"POST /v1/traces HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Content-Type: application/x-protobuf\r\nContent-Length: {length}\r\n\r\n"
    ).encode("ascii")


class HttpConnection:
    """One keep-alive HTTP/1.1 connection; answers need a Content-Length (no chunking)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, port: int) -> HttpConnection:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    def close(self) -> None:
        self._writer.close()

    async def post(self, head: bytes, body: bytes) -> Answer:
        self._writer.write(head)
        self._writer.write(body)
        await self._writer.drain()
        return await self._answer()

    async def _answer(self) -> Answer:
        lines = (await self._reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise ProtocolError(f"bad status line {lines[0]!r}")
        headers = {}
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        length = headers.get(b"content-length")
        if length is None or not length.isdigit():
            raise ProtocolError("the answer has no Content-Length")
        body = await self._reader.readexactly(int(length)) if int(length) else b""
        retry_after = headers.get(b"retry-after", b"")
        return Answer(
            status=int(parts[1]),
            body=body,
            retry_after=float(retry_after) if retry_after.isdigit() else 1.0,
            close=headers.get(b"connection", b"").lower() == b"close",
        )


@dataclass
class LoadStats:
    """What the load generator saw; only answers completed inside the window are measured."""

    spans_per_request: int
    window_start: float
    seconds: int
    per_second: list[int] = field(init=False)  # acknowledged spans by second of the window
    latencies: list[float] = field(default_factory=list)  # seconds, window requests
    acknowledged_total: int = 0  # warm-up and tail included: what the table must hold
    refused: Counter[int] = field(default_factory=Counter)  # non-200 answers by status
    refused_spans: int = 0
    rejected_spans: int = 0  # partial_success in 200 answers
    failures: Counter[str] = field(default_factory=Counter)  # transport errors by type
    messages: list[str] = field(default_factory=list)  # first few distinct error messages

    def __post_init__(self) -> None:
        self.per_second = [0] * self.seconds

    @property
    def window_end(self) -> float:
        return self.window_start + self.seconds

    def record(self, answer: Answer, started: float, done: float) -> None:
        if answer.status != 200:
            self.refused[answer.status] += 1
            self.refused_spans += self.spans_per_request
            self._note(f"HTTP {answer.status}: {answer.body[:200]!r}")
            return
        acknowledged = self.spans_per_request - self._rejected(answer.body)
        self.acknowledged_total += acknowledged
        if self.window_start <= done < self.window_end:
            second = min(int(done - self.window_start), self.seconds - 1)
            self.per_second[second] += acknowledged
            self.latencies.append(done - started)

    def fail(self, exc: BaseException) -> None:
        self.failures[type(exc).__name__] += 1
        self._note(f"{type(exc).__name__}: {exc}")

    def _rejected(self, body: bytes) -> int:
        if not body:  # an empty ExportTraceServiceResponse: nothing rejected
            return 0
        partial = ExportTraceServiceResponse.FromString(body).partial_success
        if partial.rejected_spans:
            self.rejected_spans += partial.rejected_spans
            self._note(f"partial success: {partial.error_message}")
        return partial.rejected_spans

    def _note(self, message: str) -> None:
        if len(self.messages) < 5 and message not in self.messages:
            self.messages.append(message)


class LoadGenerator:
    """Keeps one request in flight per connection until stopped."""

    def __init__(self, token: bytes, templates: Sequence[Template], port: int, stats: LoadStats):
        self._token = token
        self._templates = templates
        self._heads = [request_head(port, len(t.body)) for t in templates]
        self._port = port
        self._stats = stats
        self._counter = itertools.count(1)
        self.stop = asyncio.Event()

    async def connection(self, number: int) -> None:
        """Send requests on one connection, reconnecting after errors, until `stop`."""
        conn: HttpConnection | None = None
        try:
            for turn in itertools.count(number):
                if self.stop.is_set():
                    return
                conn = await self._send(conn, turn % len(self._templates))
        finally:
            if conn is not None:
                conn.close()

    async def _send(self, conn: HttpConnection | None, template: int) -> HttpConnection | None:
        """One request; returns the connection to use next (None: reconnect)."""
        body = self._templates[template].body.replace(self._token, id_prefix(next(self._counter)))
        try:
            if conn is None:
                conn = await HttpConnection.open(self._port)
            started = time.perf_counter()
            async with asyncio.timeout(REQUEST_TIMEOUT):
                answer = await conn.post(self._heads[template], body)
        except (OSError, EOFError, TimeoutError, asyncio.LimitOverrunError, ProtocolError) as exc:
            self._stats.fail(exc)
            if conn is not None:
                conn.close()
            await asyncio.sleep(0.5)
            return None
        self._stats.record(answer, started, time.perf_counter())
        if answer.status != 200:  # back off as an OTLP exporter does
            await asyncio.sleep(answer.retry_after)
        if answer.close:
            conn.close()
            return None
        return conn


# -- the HTTP run: load, sampling, progress -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Usage:
    """Server and client resource use over the measured window."""

    server_cpu_seconds: float
    server_rss_max: int
    server_rss_end: int
    client_cpu_seconds: float
    postgres_cpu_seconds: dict[str, float] | None
    machine_seconds: tuple[float, float]  # busy, iowait


class Monitor:
    """Samples the server's memory every second and its CPU over the measured window."""

    def __init__(self, server: Server, postgres: PostgresCpu | None) -> None:
        self._server = server
        self._postgres = postgres
        self._rss_max = 0

    async def watch(self, stats: LoadStats) -> Usage:
        """Wait out the warm-up and the window, sampling; the usage over the window."""
        while time.perf_counter() < stats.window_start:
            self._sample_memory()
            await _sleep_until(min(stats.window_start, time.perf_counter() + 1))
        server_cpu, client_cpu, machine = self._cpu(), own_cpu_seconds(), machine_cpu_seconds()
        if self._postgres is not None:
            await asyncio.to_thread(self._postgres.start)
        for second in range(1, stats.seconds + 1):
            await _sleep_until(stats.window_start + second)
            self._sample_memory()
            if self._postgres is not None:
                await asyncio.to_thread(self._postgres.sample)
            if second % PROGRESS_EVERY == 0 or second == stats.seconds:
                _progress(stats, second)
        return Usage(
            server_cpu_seconds=self._cpu() - server_cpu,
            server_rss_max=self._rss_max,
            server_rss_end=rss_bytes(self._server.process.pid),
            client_cpu_seconds=own_cpu_seconds() - client_cpu,
            postgres_cpu_seconds=self._postgres.seconds() if self._postgres else None,
            machine_seconds=_minus(machine_cpu_seconds(), machine),
        )

    def _alive(self) -> int:
        if self._server.process.poll() is not None:
            raise RuntimeError(f"meshlens serve died during the run:\n{self._server.log_tail()}")
        return self._server.process.pid

    def _cpu(self) -> float:
        return cpu_seconds(self._alive())

    def _sample_memory(self) -> None:
        self._rss_max = max(self._rss_max, rss_bytes(self._alive()))


def _minus(end: tuple[float, ...], begin: tuple[float, ...]) -> tuple[float, float]:
    busy, iowait = (e - b for e, b in zip(end, begin, strict=True))
    return busy, iowait


async def _sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.perf_counter()))


def _progress(stats: LoadStats, second: int) -> None:
    recent = stats.per_second[max(0, second - PROGRESS_EVERY) : second]
    refused = sum(stats.refused.values())
    extra = f"   {refused} refused" if refused else ""
    print(
        f"  [{second:4d}/{stats.seconds} s]  {sum(recent) / len(recent):>9,.0f} spans/s{extra}",
        flush=True,
    )


async def drive(
    options: Options, token: bytes, templates: Sequence[Template], server: Server
) -> tuple[LoadStats, Usage]:
    """Run the load for warm-up plus --seconds, then let in-flight requests finish."""
    postgres = await asyncio.to_thread(PostgresCpu.attach, server.database_url)
    stats = LoadStats(
        options.spans_per_request, time.perf_counter() + options.warmup, options.seconds
    )
    generator = LoadGenerator(token, templates, server.otlp_http_port, stats)
    connections = [asyncio.create_task(generator.connection(n)) for n in range(options.connections)]
    try:
        usage = await Monitor(server, postgres).watch(stats)
    finally:
        generator.stop.set()
        await asyncio.gather(*connections, return_exceptions=True)
        if postgres is not None:
            postgres.close()
    for task in connections:  # a bug in the generator must not pass silently
        if task.exception() is not None:
            raise RuntimeError("a load connection crashed") from task.exception()
    return stats, usage


def run_async(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run `coroutine` on uvloop when it is installed (as meshlens serve does)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


# -- the ceiling: the same spans COPYed straight into `spans` -------------------------------


@dataclass(frozen=True, slots=True)
class DecodedTemplate:
    """A template's span rows, split so each copy can put fresh trace ids in front."""

    trace_of_row: list[int]  # index into `suffixes`, per row
    rest: list[tuple[Any, ...]]  # each SpanRow without its trace_id
    suffixes: list[bytes]  # the unique 8 bytes after the token, per trace


def decode_template(template: Template, token: bytes) -> DecodedTemplate:
    """Decode `template` as the server does, accepting every time."""
    batch = OtlpDecoder().traces(template.body, TimeWindow(1, 2**63 - 1))
    if batch.rejected or len(batch.spans) != template.spans:
        raise RuntimeError(f"the template does not decode cleanly: {batch.error_message}")
    index: dict[bytes, int] = {}
    trace_of_row = []
    for row in batch.spans:
        if row[0][:TOKEN_LENGTH] != token:
            raise RuntimeError("a decoded trace id does not start with the token")
        trace_of_row.append(index.setdefault(row[0][TOKEN_LENGTH:], len(index)))
    return DecodedTemplate(trace_of_row, [row[1:] for row in batch.spans], list(index))


Chunk = tuple[DecodedTemplate, list[bytes]]  # a template and fresh trace ids for its traces


def _chunks_per_batch(spans_per_request: int) -> int:
    """Templates per ceiling batch: about CEILING_BATCH_ROWS rows."""
    return max(1, round(CEILING_BATCH_ROWS / spans_per_request))


def plan_batches(decoded: Sequence[DecodedTemplate], spans: int, seconds: int) -> list[list[Chunk]]:
    """Enough batches of about CEILING_BATCH_ROWS rows for `seconds` at CEILING_MAX_RATE."""
    chunks_per_batch = _chunks_per_batch(spans)
    batches = math.ceil(seconds * CEILING_MAX_RATE / (chunks_per_batch * spans))
    counter = itertools.count(CEILING_COUNTER_BASE)
    plan = []
    for b in range(batches):
        chunks = []
        for c in range(chunks_per_batch):
            template = decoded[(b * chunks_per_batch + c) % len(decoded)]
            prefix = id_prefix(next(counter))
            chunks.append((template, [prefix + suffix for suffix in template.suffixes]))
        plan.append(chunks)
    return plan


@dataclass(frozen=True, slots=True)
class Ceiling:
    """What the COPY ceiling wrote, how fast, and at what CPU cost."""

    writers: int
    rows: int
    seconds: float
    client_cpu_seconds: float
    postgres_cpu_seconds: dict[str, float] | None
    machine_seconds: tuple[float, float]  # busy, iowait
    exhausted: bool  # every prepared batch was written before the time was up

    @property
    def spans_per_second(self) -> float:
        return self.rows / self.seconds


COPY_SPANS = sql.SQL("COPY spans ({}) FROM STDIN").format(
    sql.SQL(", ").join(map(sql.Identifier, SPAN_COLUMNS))
)


class CeilingClock:
    """Wall time, client CPU, machine and PostgreSQL CPU between the writers' start and finish.

    Its methods are barrier actions: they run once every writer has arrived and before any
    goes on, so copying starts after the readings, and backends are alive for the last one.
    """

    def __init__(self, postgres: PostgresCpu | None) -> None:
        self._postgres = postgres
        self._begin = self._end = (0.0, 0.0, (0.0, 0.0))

    def start(self) -> None:
        if self._postgres is not None:
            self._postgres.start()
        self._begin = self._read()

    def stop(self) -> None:
        self._end = self._read()
        if self._postgres is not None:
            self._postgres.sample()

    def ceiling(self, writers: int, rows: int, exhausted: bool) -> Ceiling:
        (wall_end, client_end, machine_end), (wall, client, machine) = self._end, self._begin
        return Ceiling(
            writers=writers,
            rows=rows,
            seconds=wall_end - wall,
            client_cpu_seconds=client_end - client,
            postgres_cpu_seconds=self._postgres.seconds() if self._postgres else None,
            machine_seconds=_minus(machine_end, machine),
            exhausted=exhausted,
        )

    @staticmethod
    def _read() -> tuple[float, float, tuple[float, float]]:
        return time.perf_counter(), own_cpu_seconds(), machine_cpu_seconds()


def measure_ceiling(
    url: str, token: bytes, templates: Sequence[Template], seconds: int, writers: int
) -> Ceiling:
    """COPY batches from `writers` connections in parallel threads for `seconds`."""
    decoded = [decode_template(t, token) for t in templates]
    plan = plan_batches(decoded, templates[0].spans, seconds)
    prepared = sum(len(template.rest) for batch in plan for template, _ in batch)
    postgres = PostgresCpu.attach(url)
    clock = CeilingClock(postgres)
    started = threading.Barrier(writers, action=clock.start, timeout=60)
    finished = threading.Barrier(writers, action=clock.stop, timeout=seconds + 600)
    interrupted = threading.Event()
    try:
        with ThreadPoolExecutor(writers) as pool:
            futures = [
                pool.submit(
                    _copy_writer,
                    url,
                    plan[n::writers],
                    seconds,
                    (started, finished),
                    interrupted,
                )
                for n in range(writers)
            ]
            try:
                rows = sum(future.result() for future in futures)
            except BaseException:  # Ctrl-C: the writers stop after their current batch
                interrupted.set()
                raise
    finally:
        if postgres is not None:
            postgres.close()
    return clock.ceiling(writers, rows, exhausted=rows == prepared)


def _copy_writer(
    url: str,
    batches: Sequence[list[Chunk]],
    seconds: float,
    barriers: tuple[threading.Barrier, threading.Barrier],
    interrupted: threading.Event,
) -> int:
    """COPY `batches`, one commit each, for `seconds`; the number of rows written."""
    started, finished = barriers
    rows = 0
    try:
        with psycopg.connect(url) as conn:
            started.wait()
            deadline = time.perf_counter() + seconds
            for batch in batches:
                if time.perf_counter() >= deadline or interrupted.is_set():
                    break
                with conn.transaction(), conn.cursor().copy(COPY_SPANS) as copy:
                    for template, trace_ids in batch:
                        for trace, rest in zip(template.trace_of_row, template.rest, strict=True):
                            copy.write_row((trace_ids[trace], *rest))
                        rows += len(template.rest)
            finished.wait()
    except BaseException:
        started.abort()  # the other writer must not wait for this one
        finished.abort()
        raise
    return rows


# -- the report -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Report:
    """Every figure of a run, as printed and as written to JSON. CPU is in % of one core."""

    config: dict[str, Any]
    environment: dict[str, Any]
    acknowledged_spans_per_second: dict[str, Any]
    latency_ms: dict[str, float]
    requests: dict[str, Any]
    server: dict[str, float]
    cpu_percent: dict[str, float | None]
    ceiling: dict[str, Any]
    stored_spans: int
    acknowledged_spans: int

    @property
    def consistent(self) -> bool:
        """No acknowledged span is missing, and none was rejected.

        More stored than acknowledged is possible only when requests were answered 503 after
        their commit timeout, or timed out in the client: those may still have committed.
        """
        unanswered = self.requests["refused"] or self.requests["transport_errors"]
        stored_ok = self.stored_spans == self.acknowledged_spans or (
            self.stored_spans > self.acknowledged_spans and unanswered
        )
        return bool(stored_ok) and self.requests["rejected_spans"] == 0


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of `values` (nan when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def cpu_percent(
    seconds: float,
    machine: tuple[float, float],
    postgres: dict[str, float] | None,
    **processes: float,
) -> dict[str, float | None]:
    """CPU seconds over `seconds` as % of one core, with what the machine spent elsewhere."""
    shares = dict(processes)
    if postgres is not None:
        shares["postgres_backends"] = postgres["backends"]
        shares["postgres_background"] = postgres["background"]
    percent: dict[str, float | None] = {
        name: round(100 * cpu / seconds, 1) for name, cpu in shares.items()
    }
    busy, iowait = machine
    percent["machine_busy"] = round(100 * busy / seconds, 1)
    percent["machine_iowait"] = round(100 * iowait / seconds, 1)
    other = (busy - sum(shares.values())) / seconds
    percent["other_processes"] = round(100 * other, 1) if postgres is not None else None
    return percent


def make_report(
    options: Options,
    templates: Sequence[Template],
    url: str,
    stats: LoadStats,
    usage: Usage,
    stored: int,
    ceiling: Ceiling,
) -> Report:
    """Every figure, rounded for reading."""
    acknowledged = sum(stats.per_second)
    mean = acknowledged / stats.seconds
    final = stats.per_second[-FINAL_SECONDS:]
    per_span_us = 1e6 * usage.server_cpu_seconds / acknowledged if acknowledged else math.nan
    return Report(
        config={
            "seconds": options.seconds,
            "warmup_seconds": options.warmup,
            "connections": options.connections,
            "spans_per_request": options.spans_per_request,
            "request_bytes": len(templates[0].body),
            "templates": len(templates),
            "spans_per_trace": SPANS_PER_TRACE,
            "ceiling_seconds": options.ceiling_seconds,
            "ceiling_writers": ceiling.writers,
            "server_settings": server_overrides(),
            "ceiling_batch_rows": _chunks_per_batch(options.spans_per_request)
            * options.spans_per_request,
        },
        environment=_environment(url),
        acknowledged_spans_per_second={
            "median": statistics.median(stats.per_second),
            "mean": round(mean, 1),
            "final_seconds": len(final),
            "final_mean": round(statistics.mean(final), 1),  # is the rate holding up?
            "min_second": min(stats.per_second),
            "max_second": max(stats.per_second),
            "per_second": stats.per_second,
        },
        latency_ms={
            name: round(1000 * percentile(stats.latencies, fraction), 1)
            for name, fraction in (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("max", 1.0))
        },
        requests={
            "ok_in_window": len(stats.latencies),
            "refused": {str(status): n for status, n in sorted(stats.refused.items())},
            "refused_spans": stats.refused_spans,
            "rejected_spans": stats.rejected_spans,
            "transport_errors": dict(stats.failures),
            "messages": stats.messages,
        },
        server={
            "rss_max_mib": round(usage.server_rss_max / MIB, 1),
            "rss_end_mib": round(usage.server_rss_end / MIB, 1),
            "cpu_us_per_span": round(per_span_us, 2),
        },
        cpu_percent=cpu_percent(
            options.seconds,
            usage.machine_seconds,
            usage.postgres_cpu_seconds,
            meshlens=usage.server_cpu_seconds,
            load_generator=usage.client_cpu_seconds,
        ),
        ceiling={
            "spans_per_second": round(ceiling.spans_per_second, 1),
            "rows": ceiling.rows,
            "seconds": round(ceiling.seconds, 2),
            "ratio": round(mean / ceiling.spans_per_second, 3),
            "cpu_percent": cpu_percent(
                ceiling.seconds,
                ceiling.machine_seconds,
                ceiling.postgres_cpu_seconds,
                copy_client=ceiling.client_cpu_seconds,
            ),
            "batch_budget_exhausted": ceiling.exhausted,
        },
        stored_spans=stored,
        acknowledged_spans=stats.acknowledged_total,
    )


def _environment(url: str) -> dict[str, Any]:
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "postgresql": server_version(url),
        "database": _redacted(url),
        "meshlens_commit": _git("rev-parse", "--short", "HEAD"),
        "worktree_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def summary(report: Report) -> str:
    """The figures as a block fit to paste into a README."""
    c, env = report.config, report.environment
    rate, latency, server = report.acknowledged_spans_per_second, report.latency_ms, report.server
    cpu, ceiling = report.cpu_percent, report.ceiling
    lines = [
        f"ingest benchmark (OTLP/HTTP protobuf, {c['spans_per_request']} spans/request, "
        f"{c['connections']} connections, {c['seconds']} s)",
        f"acknowledged spans/s   median {rate['median']:,.0f}   mean {rate['mean']:,.0f}   "
        f"last {rate['final_seconds']} s {rate['final_mean']:,.0f}",
        f"request latency        p50 {latency['p50']:,.0f} ms   p99 {latency['p99']:,.0f} ms",
        f"server RSS             max {server['rss_max_mib']:,.0f} MiB   "
        f"end {server['rss_end_mib']:,.0f} MiB",
        f"server CPU             {cpu['meshlens']:.0f}% of one core   "
        f"({server['cpu_us_per_span']:.1f} µs per span)",
        f"PostgreSQL CPU         {_postgres_cpu(cpu)}",
        f"load generator CPU     {cpu['load_generator']:.0f}% of one core",
        f"machine CPU            {_machine_cpu(cpu, env['cpus'])}",
        f"COPY ceiling           {ceiling['spans_per_second']:,.0f} spans/s   "
        f"ratio {ceiling['ratio']:.2f}",
        f"stored spans           {report.stored_spans:,} {_stored_note(report)}",
        f"refused requests       {_refusals(report.requests)}",
        f"setup                  {env['cpus']} cores, PostgreSQL {env['postgresql']}, "
        f"Python {env['python']}, meshlens {env['meshlens_commit'] or '?'}"
        + (" (modified)" if env["worktree_dirty"] else ""),
    ]
    return "\n".join(lines)


def warnings(report: Report) -> list[str]:
    """What makes the figures doubtful."""
    found = []
    for phase, cpu in (("load", report.cpu_percent), ("ceiling", report.ceiling["cpu_percent"])):
        other = cpu["other_processes"]
        if other is not None and other > 10:
            found.append(
                f"other processes used {other:.0f}% of one core during the {phase} phase: "
                "the machine was not quiet, the figures are disturbed"
            )
    if report.ceiling["batch_budget_exhausted"]:
        found.append("the COPY ceiling wrote every prepared batch: raise CEILING_MAX_RATE")
    if not report.consistent:
        found.append("stored and acknowledged spans disagree, or spans were rejected")
    return found


def _postgres_cpu(cpu: dict[str, float | None]) -> str:
    backends, background = cpu.get("postgres_backends"), cpu.get("postgres_background")
    if backends is None or background is None:
        return "n/a (PostgreSQL does not run on this machine)"
    return (
        f"{backends + background:.0f}% of one core   (backends {backends:.0f}%, "
        f"WAL writer and checkpointer {background:.0f}%)"
    )


def _machine_cpu(cpu: dict[str, float | None], cores: int) -> str:
    busy = f"{cpu['machine_busy']:.0f}% of {100 * cores}% busy, {cpu['machine_iowait']:.0f}% iowait"
    other = cpu["other_processes"]
    return busy if other is None else f"{busy}   (other processes {max(other, 0):.0f}%)"


def _stored_note(report: Report) -> str:
    if report.stored_spans == report.acknowledged_spans:
        return "(= acknowledged)"
    return f"(acknowledged {report.acknowledged_spans:,}: MISMATCH)"


def _refusals(requests: dict[str, Any]) -> str:
    parts = [f"{n} × HTTP {status}" for status, n in requests["refused"].items()]
    parts += [f"{n} × {kind}" for kind, n in requests["transport_errors"].items()]
    if requests["rejected_spans"]:
        parts.append(f"{requests['rejected_spans']:,} spans rejected in partial success")
    return ", ".join(parts) or "none"


def write_json(report: Report) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"ingest-{stamp}.json"
    path.write_text(json.dumps(asdict(report), indent=2) + "\n")
    return path


# -- main -----------------------------------------------------------------------------------


def benchmark(
    options: Options, token: bytes, templates: Sequence[Template], url: str, workdir: Path
) -> Report:
    """The HTTP run and the ceiling on the empty database at `url`."""
    server = start_server(url, workdir / "meshlens.log")
    print(f"meshlens serve is ready (pid {server.process.pid}); warming up {options.warmup} s")
    try:
        stats, usage = run_async(drive(options, token, templates, server))
    except Exception:
        print(f"meshlens serve log, last lines:\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        stop_server(server)
    stored = count_spans(url)
    print(f"stored {stored:,} spans; COPY ceiling for {options.ceiling_seconds} s", flush=True)
    ceiling = measure_ceiling(url, token, templates, options.ceiling_seconds, server_writers())
    return make_report(options, templates, url, stats, usage, stored, ceiling)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up on SIGTERM as on ^C
    try:
        report = run(options)
    except KeyboardInterrupt:
        print("interrupted; the server was stopped and the database dropped", file=sys.stderr)
        return 130
    print()
    print(summary(report))
    for warning in warnings(report):
        print(f"warning: {warning}")
    print(f"\nfigures written to {write_json(report).relative_to(REPO)}")
    return 0 if report.consistent else 1


def run(options: Options) -> Report:
    """Build the requests, get an empty database, benchmark, clean up."""
    token, templates = build_templates(options.spans_per_request)
    print(
        f"{TEMPLATES} request templates of {options.spans_per_request} spans "
        f"({len(templates[0].body) / 1024:,.0f} KiB each)",
        flush=True,
    )
    with (
        tempfile.TemporaryDirectory(prefix="meshlens-bench-") as tmp,
        postgres_server(options, Path(tmp)) as admin_url,
        bench_database(admin_url) as url,
    ):
        print(f"empty database {_redacted(url)}", flush=True)
        return benchmark(options, token, templates, url, Path(tmp))


if __name__ == "__main__":
    raise SystemExit(main())
