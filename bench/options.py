"""The benchmark's command line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from bench.templates import WORKLOADS
from harness.argtypes import non_negative, positive
from harness.postgres import MACHINE_POSTGRES


@dataclass(frozen=True, slots=True)
class Options:
    """What to run; see `parse_args`."""

    seconds: int
    warmup: int
    connections: int
    spans_per_request: int
    workload: str
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
    add("--seconds", type=positive, default=120, help="measured run (%(default)s)")
    add("--warmup", type=non_negative, default=5, help="uncounted load first (%(default)s s)")
    add("--connections", type=positive, default=8, help="keep-alive connections (%(default)s)")
    add("--spans-per-request", type=positive, default=1000, help="spans per request (%(default)s)")
    add(
        "--workload",
        choices=WORKLOADS,
        default="sdk",
        help="sdk: SDK-instrumented services; proxy: Istio sidecars, gateway and Linkerd "
        "proxies around SDK apps, each emitter in requests of its own (%(default)s)",
    )
    add("--ceiling-seconds", type=positive, default=25, help="COPY ceiling run (%(default)s s)")
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
        workload=args.workload,
        ceiling_seconds=args.ceiling_seconds,
        database_url=args.database_url,
        embedded=args.embedded,
    )
