"""Ingest benchmark: sustained OTLP/HTTP span ingest by `meshlens serve`, and its COPY ceiling.

    python bench/ingest.py [--seconds 120] [--connections 8] [--spans-per-request 1000]
                           [--workload sdk|proxy] [--database-url URL]

1. Creates an empty database `meshlens_bench_<random>` (on the machine's PostgreSQL, on the
   server of --database-url, or on a throwaway embedded PostgreSQL) and starts `meshlens serve`
   on it as a subprocess.
2. From this process, sends OTLP/HTTP protobuf requests of realistic spans over keep-alive
   connections (--workload: `sdk`, SDK-instrumented services; `proxy`, Istio sidecars, the
   ingress gateway and Linkerd proxies around SDK apps, each emitter in requests of its own);
   warms up, then measures for --seconds: acknowledged spans/s, request latency, server RSS
   and CPU, PostgreSQL CPU.
3. Stops the server and checks that the `spans` table holds exactly the acknowledged spans.
4. COPYs the same spans straight into the same table from two connections (no HTTP, no
   decoding): the ceiling the ingest path is compared with.
5. Prints a summary, writes bench/results/ingest-<timestamp>.json and drops the database.

The load generator is kept cheap so it leaves the CPU to the server: a few requests are
serialized once, every trace id in them starts with the same 8-byte placeholder, and each send
is one `bytes.replace` of the placeholder with a fresh 8-byte prefix.

The parts live beside this entry point: `options` (the command line), `mesh`, `proxy_mesh`,
`proxy_traces` and `templates` (the requests), `database` and `server` (PostgreSQL and
`meshlens serve`), `loadgen` and `http_run` (the load and its measurement), `procstat` (CPU
and memory from /proc), `ceiling` (the COPY ceiling) and `report` (the figures, printed and
as JSON).
"""

from __future__ import annotations

import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

if not __package__:  # run as `python bench/ingest.py`: import `bench` from the repository root
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.ceiling import measure_ceiling
from bench.database import count_spans, postgres_server, redacted
from bench.http_run import drive, run_async
from bench.options import Options, parse_args
from bench.report import Report, make_report, summary, warnings, write_json
from bench.server import server_writers, start_server, stop_server
from bench.templates import TemplateSet, build_workload
from harness.postgres import throwaway_database
from harness.repo import REPO


def benchmark(options: Options, workload: TemplateSet, url: str, workdir: Path) -> Report:
    """The HTTP run and the ceiling on the empty database at `url`."""
    server = start_server(url, workdir / "meshlens.log")
    print(f"meshlens serve is ready (pid {server.process.pid}); warming up {options.warmup} s")
    try:
        stats, usage = run_async(drive(options, workload, server))
    except Exception:
        print(f"meshlens serve log, last lines:\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        stop_server(server)
    stored = count_spans(url)
    print(f"stored {stored:,} spans; COPY ceiling for {options.ceiling_seconds} s", flush=True)
    ceiling = measure_ceiling(
        url, workload.token, workload.templates, options.ceiling_seconds, server_writers()
    )
    return make_report(options, workload, url, stats, usage, stored, ceiling)


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
    workload = build_workload(options.workload, options.spans_per_request)
    templates = workload.templates
    size = sum(len(t.body) for t in templates) / len(templates)
    print(
        f"{options.workload} workload: {len(templates)} request templates of "
        f"{workload.spans / len(templates):,.0f} spans on average ({size / 1024:,.0f} KiB), "
        f"{workload.traces:,} traces",
        flush=True,
    )
    with (
        tempfile.TemporaryDirectory(prefix="meshlens-bench-") as tmp,
        postgres_server(options, Path(tmp)) as admin_url,
        throwaway_database(admin_url) as url,
    ):
        print(f"empty database {redacted(url)}", flush=True)
        return benchmark(options, workload, url, Path(tmp))


if __name__ == "__main__":
    raise SystemExit(main())
