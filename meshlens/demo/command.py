"""`meshlens demo` on the command line: its subcommand and flags.

The demo first checks that meshlens answers at the OTLP/HTTP endpoint (an empty export must
be accepted), then backfills the last `--backfill` minutes at `--backfill-rate` requests per
second of simulated time (past timestamps, generated as fast as the SDK exports them), then
streams `--rate` requests per second in real time until Ctrl-C or `--duration` seconds
(`run`, `phases`). The OpenTelemetry SDK (and httpx) are imported only when the demo runs, so
`meshlens serve` does not pay for them.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from meshlens.demo.options import DemoOptions
from meshlens.demo.run import run_demo
from meshlens.settings import Settings

MAX_BACKFILL_MINUTES = 24 * 60


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
        "its traces, its proxies' request metrics and utilization gauges to a running "
        "meshlens through the OpenTelemetry SDK over OTLP/HTTP: first the last --backfill "
        "minutes, then live traffic until "
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
        "repeat the same traffic (routes, latencies, errors, canary picks); span ids and "
        "pods stay fresh, so a rerun is not taken for a resend [default: random]",
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
# argparse names a parser in its "invalid <name> value" error when it raises ValueError.


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
