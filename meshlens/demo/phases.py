"""The demo's two phases: the backfill of past traffic, then the live stream.

The backfill sends the last `--backfill` minutes at `--backfill-rate` requests per second of
simulated time (past timestamps, generated as fast as the SDK exports them); the stream sends
`--rate` requests per second in real time until Ctrl-C or `--duration` seconds. Both scrape the
proxies' metrics as time passes, simulated or real (`Pipelines.scrape`).
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING

from meshlens.demo.arrivals import Arrivals
from meshlens.demo.console import complain, say
from meshlens.demo.options import DemoOptions
from meshlens.demo.stop_signal import StopSignal

if TYPE_CHECKING:
    from meshlens.demo.pipelines import Pipelines
    from meshlens.demo.traffic import Traffic

NANOS_PER_SECOND = 1_000_000_000
BACKFILL_CHUNK_NS = 300 * NANOS_PER_SECOND  # flush the pipelines every 5 simulated minutes
BACKFILL_GAUGE_STEP_NS = 30 * NANOS_PER_SECOND
REPORT_SECONDS = 10.0
GIVE_UP_REPORTS = 3
TICK_SECONDS = 0.05


def backfill(
    traffic: Traffic,
    pipelines: Pipelines,
    rng: random.Random,
    options: DemoOptions,
    anchor: int,
    stop: StopSignal,
) -> None:
    """Past traffic up to `anchor`, then the utilization gauges over the same minutes."""
    minutes = options.backfill
    start = anchor - int(minutes * 60 * NANOS_PER_SECOND)
    say(f"backfilling the last {minutes:g} minutes at {options.backfill_rate:g} requests/s ...")
    began = time.monotonic()
    flush_at = start + BACKFILL_CHUNK_NS
    for at in Arrivals(rng, options.backfill_rate, start).until(anchor):
        if stop.is_set():
            return
        if at >= flush_at:  # bounded queues: each 5 simulated minutes is exported before more
            pipelines.flush()
            flush_at += BACKFILL_CHUNK_NS
        traffic.request(at)
        pipelines.scrape(at)  # the scrapes due by then, each once
    pipelines.scrape(anchor)
    pipelines.flush()
    gauges_ok = pipelines.send_past_utilization(
        range(start + BACKFILL_GAUGE_STEP_NS, anchor, BACKFILL_GAUGE_STEP_NS)
    )
    say(
        f"  done: {traffic.requests:,} requests, {traffic.spans:,} spans in "
        f"{time.monotonic() - began:.1f} s" + ("" if gauges_ok else " (utilization not sent)")
    )


def stream(
    traffic: Traffic,
    pipelines: Pipelines,
    rng: random.Random,
    options: DemoOptions,
    anchor: int,
    stop: StopSignal,
) -> None:
    """Live traffic from `anchor` on (time the backfill took is caught up at once).

    Stops by itself when nothing could be delivered for `GIVE_UP_REPORTS` reports in a row
    (meshlens went away).
    """
    until = "" if options.duration is None else f" for {options.duration:g} s"
    say(f"streaming about {options.rate:g} requests/s{until} (Ctrl-C to stop)")
    arrivals = Arrivals(rng, options.rate, anchor)
    began = time.monotonic()
    deadline = None if options.duration is None else began + options.duration
    next_report = began + REPORT_SECONDS
    counts = pipelines.counts
    sent, failed, undelivered_reports = counts.sent, counts.failed, 0
    while not stop.is_set():
        wall = time.time_ns()
        for at in arrivals.until(wall):
            traffic.request(at)
            if stop.is_set():
                return
        pipelines.scrape(wall)
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            return
        if now >= next_report:
            next_report += REPORT_SECONDS
            say(
                f"  {now - began:5.0f} s: {traffic.requests:,} requests, "
                f"{counts.sent:,} spans delivered"
            )
            if counts.failed > failed:
                complain(f"{counts.failed - failed:,} spans could not be delivered")
                undelivered_reports = 0 if counts.sent > sent else undelivered_reports + 1
            else:
                undelivered_reports = 0
            sent, failed = counts.sent, counts.failed
            if undelivered_reports >= GIVE_UP_REPORTS:
                complain(
                    f"nothing delivered for {GIVE_UP_REPORTS * REPORT_SECONDS:g} s: is meshlens "
                    "still running? Stopping."
                )
                return
        stop.wait(TICK_SECONDS)
