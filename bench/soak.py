"""Soak: `meshlens serve` at a steady load for an hour; its memory must stay flat.

    python bench/soak.py [--seconds 3600] [--rate 2000] [--sample-seconds 10] [--json]

1. Creates an empty database `meshlens_bench_<random>` (as the other benches do), writes an
   alert rules file whose receiver is a webhook sink in this process, and starts `meshlens
   serve` from this checkout on it, alert rounds every --eval-interval seconds.
2. Offers a steady --rate of spans over OTLP/HTTP (the ingest benchmark's generator, paced;
   client/server pairs of 8 services, timed afresh every 10 s so derivation and rollups run as
   with live traffic) and reads the API and the dashboards every --web-interval seconds.
3. Every --sample-seconds, records the server's RSS and CPU (from /proc), the database size,
   meshlens's counters from `/metrics`, and what the load generator saw: spans sent,
   acknowledged, requests refused (429/503) and dropped (no answer).
4. Stops the load, then the server, and counts the `spans` table against the acknowledged.
5. Prints the table over time and the verdict (`harness.soak.verdict`): PASS when the memory is
   flat after the warm-up and nothing was dropped, rejected, lost or failed on the web port.
   The exit status is 1 on FAIL. The figures go to bench/results/soak-<timestamp>.json, or
   to stdout with --json.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import psycopg

if not __package__:  # run as `python bench/soak.py`: import `bench` from the repository root
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.api_report import environment
from bench.database import postgres_server, redacted
from bench.http_run import run_async
from bench.loadgen import LoadStats
from bench.report import RESULTS_DIR
from bench.server import Server, server_overrides, start_server, stop_server
from bench.soak_sampler import Sampler
from bench.soak_traffic import SteadyLoad, WebReader
from harness.postgres import throwaway_database
from harness.repo import REPO
from harness.soak.options import SoakOptions, parse_args
from harness.soak.report import (
    TABLE_HEAD,
    SoakReport,
    make_report,
    make_rows,
    row_samples,
    summary,
    table_line,
    to_json,
)
from harness.soak.samples import Sample
from harness.soak.traffic import RETIME_SECONDS, RULES, WEB_PATHS, rules_file_text
from harness.soak.verdict import TOLERANCE_MIB, TOLERANCE_SHARE
from harness.webhook_sink import WebhookSink


class Progress:
    """Prints a table row as soon as its samples are in."""

    def __init__(self, options: SoakOptions, out: TextIO) -> None:
        self._per_row = row_samples(options.seconds, options.sample_seconds)
        self._out = out
        self._samples: list[Sample] = []

    def add(self, sample: Sample) -> None:
        self._samples.append(sample)
        if len(self._samples) == 1:
            print(TABLE_HEAD, file=self._out, flush=True)
        elif (len(self._samples) - 1) % self._per_row == 0:
            row = make_rows(self._samples[-self._per_row - 1 :], self._per_row)[0]
            print(table_line(row), file=self._out, flush=True)


async def soak(
    options: SoakOptions, server: Server, out: TextIO
) -> tuple[list[Sample], Sample, dict[str, Any]]:
    """The load, the web reads and the samples for --seconds; then one more sample once every
    request in flight is answered. Returns the samples, that last one and the web figures."""
    stats = LoadStats(options.spans_per_request, time.perf_counter(), options.seconds)
    load = SteadyLoad(options, server, stats)
    reader = WebReader(server, options.web_interval)
    sampler = Sampler(server, stats, reader.stats, time.perf_counter())
    try:
        load.start()
        reading = asyncio.create_task(reader.run(load.generator.stop))
        try:
            await sampler.run(options.seconds, options.sample_seconds, Progress(options, out).add)
        finally:
            await load.stop()  # also stops the reader
            await asyncio.gather(reading, return_exceptions=True)
        if reading.exception() is not None:
            raise RuntimeError("the web reader crashed") from reading.exception()
        alerting = await reader.alerting_state()
        final = await sampler.sample()
    finally:
        await sampler.close()
    failures = Counter(reader.stats.failures)
    failures.update(sampler.scrape_failures)
    web = {
        "requests": reader.stats.requests,
        "failures": dict(failures),
        "messages": reader.stats.messages + sampler.scrape_failures[:5],
        **alerting,
    }
    return sampler.samples, final, web


def run(options: SoakOptions, out: TextIO) -> SoakReport:
    """A throwaway database, the webhook sink, the server, the soak; cleaned up always."""
    with (
        tempfile.TemporaryDirectory(prefix="meshlens-soak-") as tmp,
        postgres_server(options, Path(tmp)) as admin_url,
        throwaway_database(admin_url) as url,
        WebhookSink() as sink,
    ):
        rules = Path(tmp) / "rules.yaml"
        rules.write_text(rules_file_text(sink.url))
        settings = {
            "MESHLENS_RULES_FILE": str(rules),
            "MESHLENS_EVAL_INTERVAL": str(options.eval_interval),
            "MESHLENS_WEBHOOK_ALLOWLIST": sink.host,
        }
        server = start_server(url, Path(tmp) / "meshlens.log", **settings)
        print(
            f"meshlens serve is ready (pid {server.process.pid}) on {redacted(url)}; "
            f"{options.rate:,} spans/s for {options.seconds:,} s, memory judged after "
            f"{options.warmup} s",
            file=out,
            flush=True,
        )
        try:
            samples, final, web = run_async(soak(options, server, out))
        except Exception:
            print(f"meshlens serve log, last lines:\n{server.log_tail()}", file=sys.stderr)
            raise
        finally:
            stop_server(server)
        web["webhooks_received"] = len(sink.requests)
        config = _config(options, settings)
        return make_report(config, environment(url), samples, final, web, stored_spans(url))


def stored_spans(url: str) -> tuple[int, float]:
    """The spans in the table, and the seconds from the first one's start to the last one's
    (about the run's length: the requests are timed afresh as they are sent)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*), coalesce(max(start_unix_nano) - min(start_unix_nano), 0) FROM spans"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]) / 1e9


def write_json(report: SoakReport) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"soak-{stamp}.json"
    path.write_text(json.dumps(to_json(report), indent=2) + "\n")
    return path


def _config(options: SoakOptions, settings: dict[str, str]) -> dict[str, Any]:
    return {
        "seconds": options.seconds,
        "rate": options.rate,
        "sample_seconds": options.sample_seconds,
        "warmup_seconds": options.warmup,
        "spans_per_request": options.spans_per_request,
        "connections": options.connections,
        "web_interval": options.web_interval,
        "web_paths": list(WEB_PATHS),
        "eval_interval": options.eval_interval,
        "rules": RULES,
        "retime_seconds": RETIME_SECONDS,
        "tolerance_mib": TOLERANCE_MIB,
        "tolerance_share": TOLERANCE_SHARE,
        "server_settings": server_overrides() | settings,
    }


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up on SIGTERM as on ^C
    out = sys.stderr if options.json else sys.stdout
    try:
        report = run(options, out)
    except KeyboardInterrupt:
        print("interrupted; the server was stopped and the database dropped", file=sys.stderr)
        return 130
    print(file=out)
    print(summary(report), file=out)
    if options.json:
        print(json.dumps(to_json(report), indent=2))
    else:
        print(f"\nfigures written to {write_json(report).relative_to(REPO)}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
