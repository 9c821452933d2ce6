"""The soak's command line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from harness.argtypes import non_negative, positive
from harness.postgres import MACHINE_POSTGRES
from harness.soak.verdict import MIN_MEASURED_SAMPLES

PAIRING_WINDOW_SECONDS = 300  # meshlens's default: halves wait this long for their other half


@dataclass(frozen=True, slots=True)
class SoakOptions:
    """What to run; see `parse_args`."""

    seconds: int
    rate: int  # spans per second offered
    sample_seconds: int
    warmup: int
    spans_per_request: int
    connections: int
    web_interval: int
    eval_interval: int
    database_url: str | None
    embedded: bool
    json: bool

    @property
    def request_interval(self) -> float:
        """Seconds between two requests at the offered rate."""
        return self.spans_per_request / self.rate


def default_warmup(seconds: int) -> int:
    """The longer of 10 % of the run and the pairing window, at most a quarter of the run.

    During the pairing window the halves inbox fills and the 5-minute windows of the API reads
    and alert rules fill with data; memory growth then is expected, not a leak.
    """
    return max(seconds // 10, min(PAIRING_WINDOW_SECONDS, seconds // 4))


def parse_args(argv: Sequence[str] | None) -> SoakOptions:
    """The command line as SoakOptions."""
    parser = argparse.ArgumentParser(
        description="Run `meshlens serve` at a steady load and check that its memory stays flat.",
    )
    add = parser.add_argument
    add("--seconds", type=positive, default=3600, help="length of the run (%(default)s)")
    add("--rate", type=positive, default=2000, help="spans per second offered (%(default)s)")
    add("--sample-seconds", type=positive, default=10, help="sampling period (%(default)s s)")
    add(
        "--warmup",
        type=non_negative,
        help="seconds left out of the memory verdict (default: the longer of 10%% of the run "
        "and 5 minutes, at most a quarter of the run)",
    )
    add("--spans-per-request", type=positive, default=200, help="spans per export (%(default)s)")
    add("--connections", type=positive, default=8, help="keep-alive connections (%(default)s)")
    add("--web-interval", type=positive, default=10, help="web-port reads every (%(default)s s)")
    add("--eval-interval", type=positive, default=10, help="alert rounds every (%(default)s s)")
    add(
        "--database-url",
        help="PostgreSQL server to create the throwaway database on; unset: "
        f"{MACHINE_POSTGRES}, else an embedded PostgreSQL",
    )
    add("--embedded", action="store_true", help="use a throwaway embedded PostgreSQL")
    add("--json", action="store_true", help="print the report as JSON (the table goes to stderr)")
    args = parser.parse_args(argv)
    if args.embedded and args.database_url:
        parser.error("--embedded and --database-url exclude each other")
    warmup = default_warmup(args.seconds) if args.warmup is None else args.warmup
    measured = (args.seconds - warmup) // args.sample_seconds
    if measured < MIN_MEASURED_SAMPLES:
        parser.error(
            f"only {measured} samples after the {warmup} s warm-up: the verdict needs "
            f"{MIN_MEASURED_SAMPLES}; raise --seconds or lower --sample-seconds or --warmup"
        )
    return SoakOptions(
        seconds=args.seconds,
        rate=args.rate,
        sample_seconds=args.sample_seconds,
        warmup=warmup,
        spans_per_request=args.spans_per_request,
        connections=args.connections,
        web_interval=args.web_interval,
        eval_interval=args.eval_interval,
        database_url=args.database_url,
        embedded=args.embedded,
        json=args.json,
    )
