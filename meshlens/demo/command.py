"""`meshlens demo`: its flags, the reachability check, the backfill and the live stream.

The demo first checks that meshlens answers at the OTLP/HTTP endpoint (an empty export must
be accepted), then backfills the last `--backfill` minutes at `--backfill-rate` requests per
second of simulated time (past timestamps, generated as fast as the SDK exports them), then
streams `--rate` requests per second in real time until Ctrl-C or `--duration` seconds.
The OpenTelemetry SDK (and httpx) are imported only when the demo runs, so `meshlens serve`
does not pay for them.
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from meshlens.demo.topology import Mesh, shop
from meshlens.demo.utilization import UtilizationModel, gauge_name
from meshlens.settings import Settings

if TYPE_CHECKING:
    from meshlens.demo.pipelines import Pipelines
    from meshlens.demo.traffic import Traffic

NANOS_PER_SECOND = 1_000_000_000
CHECK_TIMEOUT_SECONDS = 5.0
BACKFILL_CHUNK_NS = 300 * NANOS_PER_SECOND  # flush the pipelines every 5 simulated minutes
BACKFILL_GAUGE_STEP_NS = 30 * NANOS_PER_SECOND
MAX_BACKFILL_MINUTES = 24 * 60
REPORT_SECONDS = 10.0
GIVE_UP_REPORTS = 3
TICK_SECONDS = 0.05


@dataclass(frozen=True)
class DemoOptions:
    """The demo's own flags (the MESHLENS_* settings come as `Settings`)."""

    endpoint: str | None = None
    rate: float = 20.0
    backfill: float = 30.0
    backfill_rate: float = 2.0
    duration: float | None = None
    seed: int | None = None


class DemoRun:
    """`args.run` of `meshlens demo`: argparse puts the demo's flags into `options`."""

    def __init__(self) -> None:
        self.options = DemoOptions()

    def __call__(self, settings: Settings) -> int:
        return run_demo(self.options, settings)


class _Option(argparse.Action):
    """Stores a demo flag into the `DemoRun` the subcommand set as its `run` default."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        run = getattr(namespace, "run", None)
        if not isinstance(run, DemoRun):
            parser.error(f"{option_string} belongs to `meshlens demo`")
        run.options = replace(run.options, **{self.dest: values})


def add_demo_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `meshlens demo` to the `meshlens` command's subcommands."""
    defaults = DemoOptions()
    demo = commands.add_parser(
        "demo",
        help="feed the running meshlens a simulated mesh",
        description="Simulate a web shop of a dozen services (a PostgreSQL database, a Kafka "
        "queue, an external API, a canary, a plaintext edge, a failing dependency) and send "
        "its traces and utilization gauges to a running meshlens through the OpenTelemetry "
        "SDK over OTLP/HTTP: first the last --backfill minutes, then live traffic until "
        "Ctrl-C or --duration. The endpoint defaults to MESHLENS_HOST and "
        "MESHLENS_OTLP_HTTP_PORT.",
    )
    demo.set_defaults(run=DemoRun())
    _flag(
        demo,
        "--endpoint",
        _endpoint,
        "URL",
        "OTLP/HTTP endpoint of meshlens [default: http://MESHLENS_HOST:MESHLENS_OTLP_HTTP_PORT, "
        "http://127.0.0.1:4318]",
    )
    _flag(
        demo,
        "--rate",
        _positive,
        "N",
        f"live requests per second into the mesh [default: {defaults.rate:g}]",
    )
    _flag(
        demo,
        "--backfill",
        _backfill_minutes,
        "MINUTES",
        "first send this many minutes of past traffic, so every page has history (0: none) "
        f"[default: {defaults.backfill:g}]",
    )
    _flag(
        demo,
        "--backfill-rate",
        _positive,
        "N",
        "requests per second of simulated time in the backfill "
        f"[default: {defaults.backfill_rate:g}]",
    )
    _flag(
        demo,
        "--duration",
        _not_negative,
        "SECONDS",
        "stop after streaming live traffic this long [default: until Ctrl-C]",
    )
    _flag(
        demo,
        "--seed",
        int,
        "N",
        "repeat the same traffic (routes, latencies, errors, canary picks); span ids stay "
        "fresh, so a rerun is not taken for a resend [default: random]",
    )
    demo.add_argument(
        "--http-port",
        dest="http_port",
        default=None,
        metavar="HTTP_PORT",
        help="meshlens's web port, for the dashboard link [env MESHLENS_HTTP_PORT; default: "
        f"{Settings.model_fields['http_port'].default}]",
    )


def _flag(
    parser: argparse.ArgumentParser,
    name: str,
    parse: Callable[[str], object],
    metavar: str,
    help_text: str,
) -> None:
    """A demo flag: parsed by `parse`, stored into the `DemoRun` options when given."""
    parser.add_argument(
        name, type=parse, metavar=metavar, help=help_text, action=_Option, default=argparse.SUPPRESS
    )


# --- flag values ------------------------------------------------------------------------


def _positive(text: str) -> float:
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


def _not_negative(text: str) -> float:
    value = _number(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def _backfill_minutes(text: str) -> float:
    value = _not_negative(text)
    if value > MAX_BACKFILL_MINUTES:
        raise argparse.ArgumentTypeError(f"at most {MAX_BACKFILL_MINUTES} minutes (a day)")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a number: {text}")
    return value


def _endpoint(text: str) -> str:
    url = text.strip().rstrip("/")
    for signal_path in ("/v1/traces", "/v1/metrics"):
        url = url.removesuffix(signal_path)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"not an http:// or https:// URL: {text}")
    return url


# --- where meshlens is --------------------------------------------------------------------


def _connect_host(host: str) -> str:
    """A host to connect to for a listener bound to `host` (wildcards mean this machine)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def otlp_endpoint(options: DemoOptions, settings: Settings) -> str:
    """The OTLP/HTTP base URL: --endpoint, else MESHLENS_HOST and MESHLENS_OTLP_HTTP_PORT."""
    if options.endpoint:
        return options.endpoint
    return f"http://{_connect_host(settings.host)}:{settings.otlp_http_port}"


def dashboard_url(endpoint: str, settings: Settings) -> str:
    """The dashboards: the endpoint's host, meshlens's web port."""
    host = urlsplit(endpoint).hostname or "127.0.0.1"
    return f"http://{_connect_host(host)}:{settings.http_port}/"


def check_endpoint(endpoint: str) -> str | None:
    """None when an empty OTLP export to `endpoint` is accepted; else what went wrong."""
    import httpx

    url = f"{endpoint}/v1/traces"
    headers = {"Content-Type": "application/x-protobuf"}
    try:
        answer = httpx.post(url, content=b"", headers=headers, timeout=CHECK_TIMEOUT_SECONDS)
    except httpx.ConnectError:
        return f"nothing answers at {endpoint} (connection refused or host unreachable)"
    except httpx.TimeoutException:
        return f"{endpoint} did not answer within {CHECK_TIMEOUT_SECONDS:g} s"
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return f"cannot reach {endpoint}: {exc}"
    if answer.status_code == 200:
        return None
    if answer.status_code in (429, 503):
        return (
            f"{url} answered HTTP {answer.status_code}: meshlens is up but cannot store data "
            "right now (is its database up?)"
        )
    return (
        f"{url} answered HTTP {answer.status_code}: is this the OTLP/HTTP port of meshlens "
        "(MESHLENS_OTLP_HTTP_PORT, 4318 by default)?"
    )


# --- the run ----------------------------------------------------------------------------


def run_demo(options: DemoOptions, settings: Settings) -> int:
    """Run the demo; 0 when everything sent was delivered."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    if settings.log_level != "debug":  # the demo reports failed deliveries itself, once
        logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)
    endpoint = otlp_endpoint(options, settings)
    problem = check_endpoint(endpoint)
    if problem is not None:
        print(
            f"meshlens demo: {problem}.\nStart meshlens first (`meshlens serve`, in another "
            "terminal), or point --endpoint at its OTLP/HTTP port.",
            file=sys.stderr,
        )
        return 1
    from meshlens.demo.pipelines import Pipelines
    from meshlens.demo.traffic import Traffic

    mesh = shop()
    gauge = gauge_name(settings.saturation_metrics)
    _introduce(mesh, endpoint, dashboard_url(endpoint, settings), gauge)
    rng = random.Random(options.seed)
    pipelines = Pipelines(mesh, endpoint, gauge, UtilizationModel(options.seed))
    traffic = Traffic(mesh, pipelines.tracer, rng)
    with _StopSignal() as stop:
        try:
            try:
                anchor = time.time_ns()
                if options.backfill > 0:
                    _backfill(traffic, pipelines, rng, options, anchor, stop)
                if not stop.is_set():
                    pipelines.start_gauges()
                    _stream(traffic, pipelines, rng, options, anchor, stop)
            finally:
                if not stop.interrupted_twice:
                    _say("stopping: sending what is left ...")
                    pipelines.shutdown()
        except KeyboardInterrupt:  # a second Ctrl-C: leave without waiting for exports
            print("\nmeshlens demo: interrupted, unsent spans are dropped", file=sys.stderr)
            return 130
    return _summary(traffic, pipelines, endpoint)


def _introduce(mesh: Mesh, endpoint: str, dashboard: str, gauge: str | None) -> None:
    services = ", ".join(mesh.services)
    externals = ", ".join(mesh.external_hosts())
    plaintext = ", ".join(f"{a} -> {b}" for a, b in mesh.plaintext_edges())
    _say(f"meshlens demo: a simulated web shop, sent over OTLP/HTTP to {endpoint}")
    _say(f"  {len(mesh.services)} services: {services}")
    _say(
        f"  also: user (the client), {mesh.database} ({mesh.database_system} database), "
        f"{mesh.broker} ({mesh.broker_system} broker), {externals} (external API)"
    )
    _say(f"  every call between services is mutual TLS except {plaintext}")
    _say("  look for:")
    width = max(len(h.title) for h in mesh.highlights)
    for highlight in mesh.highlights:
        _say(f"    {highlight.title:<{width}}  {highlight.detail}")
    if gauge is None:
        _say("  saturation: not sent (MESHLENS_SATURATION_METRICS names no gauge)")
    else:
        _say(f"  saturation: every workload reports {gauge}")
    window = Settings.model_fields["pairing_window_seconds"].default
    _say(
        f"  note: calls to {mesh.broker} and {externals} have no server half; meshlens draws "
        "them once they have waited out its pairing window (MESHLENS_PAIRING_WINDOW_SECONDS, "
        f"{window:g} s by default)"
    )
    _say(f"  dashboard: {dashboard}")


def _backfill(
    traffic: Traffic,
    pipelines: Pipelines,
    rng: random.Random,
    options: DemoOptions,
    anchor: int,
    stop: _StopSignal,
) -> None:
    from meshlens.demo.traffic import Arrivals

    minutes = options.backfill
    start = anchor - int(minutes * 60 * NANOS_PER_SECOND)
    _say(f"backfilling the last {minutes:g} minutes at {options.backfill_rate:g} requests/s ...")
    began = time.monotonic()
    flush_at = start + BACKFILL_CHUNK_NS
    for at in Arrivals(rng, options.backfill_rate, start).until(anchor):
        if stop.is_set():
            return
        if at >= flush_at:  # bounded queues: each 5 simulated minutes is exported before more
            pipelines.flush()
            flush_at += BACKFILL_CHUNK_NS
        traffic.request(at)
    pipelines.flush()
    gauges_ok = pipelines.send_past_utilization(
        range(start + BACKFILL_GAUGE_STEP_NS, anchor, BACKFILL_GAUGE_STEP_NS)
    )
    _say(
        f"  done: {traffic.requests:,} requests, {traffic.spans:,} spans in "
        f"{time.monotonic() - began:.1f} s" + ("" if gauges_ok else " (utilization not sent)")
    )


def _stream(
    traffic: Traffic,
    pipelines: Pipelines,
    rng: random.Random,
    options: DemoOptions,
    anchor: int,
    stop: _StopSignal,
) -> None:
    """Live traffic from `anchor` on (time the backfill took is caught up at once).

    Stops by itself when nothing could be delivered for `GIVE_UP_REPORTS` reports in a row
    (meshlens went away).
    """
    from meshlens.demo.traffic import Arrivals

    until = "" if options.duration is None else f" for {options.duration:g} s"
    _say(f"streaming about {options.rate:g} requests/s{until} (Ctrl-C to stop)")
    arrivals = Arrivals(rng, options.rate, anchor)
    began = time.monotonic()
    deadline = None if options.duration is None else began + options.duration
    next_report = began + REPORT_SECONDS
    counts = pipelines.counts
    sent, failed, undelivered_reports = counts.sent, counts.failed, 0
    while not stop.is_set():
        for at in arrivals.until(time.time_ns()):
            traffic.request(at)
            if stop.is_set():
                return
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            return
        if now >= next_report:
            next_report += REPORT_SECONDS
            _say(
                f"  {now - began:5.0f} s: {traffic.requests:,} requests, "
                f"{counts.sent:,} spans delivered"
            )
            if counts.failed > failed:
                _complain(f"{counts.failed - failed:,} spans could not be delivered")
                undelivered_reports = 0 if counts.sent > sent else undelivered_reports + 1
            else:
                undelivered_reports = 0
            sent, failed = counts.sent, counts.failed
            if undelivered_reports >= GIVE_UP_REPORTS:
                _complain(
                    f"nothing delivered for {GIVE_UP_REPORTS * REPORT_SECONDS:g} s: is meshlens "
                    "still running? Stopping."
                )
                return
        stop.wait(TICK_SECONDS)


def _complain(line: str) -> None:
    print(f"meshlens demo: {line}", file=sys.stderr, flush=True)


def _summary(traffic: Traffic, pipelines: Pipelines, endpoint: str) -> int:
    counts = pipelines.counts
    _say(f"meshlens demo: sent {traffic.requests:,} requests ({counts.sent:,} spans) to {endpoint}")
    if counts.failed:
        _complain(f"{counts.failed:,} spans could not be delivered to {endpoint}")
        return 1
    return 0


def _say(line: str) -> None:
    print(line, flush=True)


class _StopSignal:
    """Ctrl-C (SIGINT) or SIGTERM asks the run to stop; a second Ctrl-C interrupts at once.

    Handlers are installed only in the main thread (Python allows no other) and restored on
    exit.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}
        self.interrupted_twice = False

    def __enter__(self) -> _StopSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._event.is_set() and signum == signal.SIGINT:
            self.interrupted_twice = True
            raise KeyboardInterrupt
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> None:
        self._event.wait(seconds)
