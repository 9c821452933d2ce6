"""API query benchmark: /api/v1 answer times over 24 hours of spans, at 10 % and 100 % of N.

    python bench/api_queries.py [--spans 10000000] [--services 50] [--requests 50]

1. Creates a throwaway database (dropped at the end, always) and migrates it.
2. Loads 10 % of `--spans` spans, spread evenly over the 24 hours before `end`, through
   meshlens's own decode, writer and deriver code in this process (`bench.api_load`), until the
   deriver's inboxes are empty; then VACUUM ANALYZE of the rollups (autovacuum's work).
3. Starts `meshlens serve` on the database and times /api/v1 answers (`bench.api_http`) with
   an `end` that is not on an hour boundary; checks what they hold against what was loaded.
4. Stops the server, loads the other 90 % over the same 24 hours, and does 2. and 3. again.
5. Prints both side by side and writes bench/results/api-<timestamp>.json.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if not __package__:  # run as `python bench/api_queries.py`: import `bench` from the repository root
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench import api_load
from bench.api_http import sanity, time_cases
from bench.api_mesh import Mesh, make_mesh
from bench.api_report import Phase, environment, summary, verdicts, write_json
from bench.api_traces import TraceBuilder
from bench.database import redacted
from bench.server import HOST, start_server, stop_server
from collector.writer import KnownRows
from harness.postgres import MACHINE_POSTGRES, postgres_answers, throwaway_database
from meshlens.database import Database
from meshlens.migrations import upgrade_to_head

SPANS_PER_REQUEST = 1000
TEMPLATES = 24
FIRST_SHARE = 0.1
SEED = 20261126
DAY = 86_400
NANOS = 1_000_000_000


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time /api/v1/services and /api/v1/graph (and more) over 24 h of spans "
        "derived by meshlens's own ingest code, at 10 %% and 100 %% of --spans.",
    )
    add = parser.add_argument
    add("--spans", type=_at_least(20_000), default=10_000_000, help="spans (%(default)s)")
    add("--services", type=_at_least(6), default=50, help="services (%(default)s)")
    add("--requests", type=_at_least(1), default=50, help="timed calls per row (%(default)s)")
    add("--database-url", default=MACHINE_POSTGRES, help="server for the throwaway database")
    return parser.parse_args(argv)


def _at_least(low: int) -> Any:
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}")
        return value

    return parse


def end_of_data(now: float) -> int:
    """The end of the 24 h: the last whole minute, never on an hour boundary."""
    end = int(now) // 60 * 60
    return end - 60 if end % 3600 == 0 else end


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up on SIGTERM as on ^C
    try:
        return run(args)
    except KeyboardInterrupt:
        print("interrupted; the server was stopped and the database dropped", file=sys.stderr)
        return 130


def run(args: argparse.Namespace) -> int:
    if not postgres_answers(args.database_url):
        raise SystemExit(f"no PostgreSQL answers at {redacted(args.database_url)}")
    end_unix = end_of_data(time.time())
    start_ns, end_ns = (end_unix - DAY) * NANOS, end_unix * NANOS
    rng = random.Random(SEED)
    mesh = make_mesh(args.services, rng)
    builder = TraceBuilder(mesh, rng, start_ns)
    templates = api_load.decode_templates(
        [builder.template(SPANS_PER_REQUEST) for _ in range(TEMPLATES)], start_ns
    )
    mean_spans = sum(t.template.spans for t in templates) / len(templates)
    total = max(2, round(args.spans / mean_spans))
    shares = [("10%", max(1, round(total * FIRST_SHARE)))]
    shares.append(("100%", total - shares[0][1]))
    config = _config(args, mesh, end_unix, templates)
    print(
        f"{args.services} services, {config['service_edges']} service edges; loading "
        f"{args.spans:,} spans in {total:,} requests of ~{mean_spans:,.0f} over the 24 h before "
        f"{config['end']}",
        flush=True,
    )
    phases = []
    with tempfile.TemporaryDirectory() as workdir, throwaway_database(args.database_url) as url:
        env = environment(url)
        _migrate(url)
        known = KnownRows()
        asyncio.run(api_load.create_day_partitions(url, start_ns, end_ns, known))
        loaded = api_load.LoadStats()
        counter = 0
        for label, requests in shares:
            print(f"loading to {label}: {requests:,} requests", flush=True)
            plan = api_load.Plan(templates, requests, start_ns, end_ns, counter)
            stats = asyncio.run(api_load.load(url, plan, known))
            counter += requests
            loaded.servers += stats.servers
            loaded.edge_requests += stats.edge_requests
            print(
                f"  loaded {stats.spans:,} spans in {stats.seconds:.0f} s + "
                f"{stats.drain_seconds:.0f} s draining the deriver: "
                f"{stats.spans_per_second:,.0f} spans/s",
                flush=True,
            )
            vacuum = api_load.vacuum_rollups(url)
            figures = api_load.database_figures(url, end_unix)
            server = start_server(url, Path(workdir) / f"serve-{label[:-1]}.log")
            try:
                base = f"http://{HOST}:{server.web_port}"
                timings = time_cases(base, end_unix, args.requests, config["detail_service"])
            except Exception:
                print(f"meshlens serve's log ends:\n{server.log_tail(40)}", file=sys.stderr)
                raise
            finally:
                stop_server(server)
            answers, problems = sanity(timings, args.services, loaded.servers, loaded.edge_requests)
            phase = Phase(label, stats, vacuum, figures, timings, answers, problems)
            phases.append(phase)
            for problem in problems:
                print(f"  WRONG ANSWER: {problem}", flush=True)
    print()
    print(summary(config, env, phases))
    for line in verdicts(phases):
        print(line)
    path = write_json(config, env, phases)
    print(f"\nresults: {path}")
    return 1 if any(phase.problems for phase in phases) else 0


def _migrate(url: str) -> None:
    engine = Database(url).sync_engine()
    try:
        upgrade_to_head(engine)
    finally:
        engine.dispose()


def _config(
    args: argparse.Namespace,
    mesh: Mesh,
    end_unix: int,
    templates: list[api_load.DecodedTemplate],
) -> dict[str, Any]:
    detail = next(s.name for s in mesh.services if s.layer == 1)
    return {
        "spans": args.spans,
        "services": args.services,
        "requests": args.requests,
        "service_edges": mesh.edge_count(),
        "virtual_calls": sorted({v.name for s in mesh.services for v in s.virtual}),
        "templates": len(templates),
        "spans_per_template": [t.template.spans for t in templates],
        "end_unix": end_unix,
        "end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end_unix)),
        "end_minute": end_unix % 3600 // 60,
        "detail_service": detail,
        "writers": api_load.WRITERS,
        "requests_per_batch": api_load.REQUESTS_PER_BATCH,
        "derive_interval_seconds": api_load.DERIVE_INTERVAL,
        "pairing_window_seconds": api_load.PAIRING_WINDOW,
    }


if __name__ == "__main__":
    sys.exit(main())
