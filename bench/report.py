"""The report: every figure of a run, its printed summary and warnings, and its JSON file."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.ceiling import Ceiling, templates_per_batch
from bench.database import redacted, server_version
from bench.http_run import Usage
from bench.loadgen import LoadStats
from bench.options import Options
from bench.server import server_overrides
from bench.templates import TemplateSet
from harness.repo import REPO

RESULTS_DIR = REPO / "bench" / "results"
FINAL_SECONDS = 30  # the summary also shows the mean rate of the run's last seconds
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Report:
    """Every figure of a run, as printed and as written to JSON. CPU is in % of one core."""

    config: dict[str, Any]
    environment: dict[str, Any]
    acknowledged_spans_per_second: dict[str, Any]
    latency_ms: dict[str, float]
    requests: dict[str, Any]
    server: dict[str, Any]
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
    workload: TemplateSet,
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
    templates = workload.templates
    return Report(
        config={
            "workload": workload.name,
            "seconds": options.seconds,
            "warmup_seconds": options.warmup,
            "connections": options.connections,
            "spans_per_request": options.spans_per_request,
            "mean_spans_per_request": round(workload.spans / len(templates), 1),
            "request_bytes": round(sum(len(t.body) for t in templates) / len(templates)),
            "templates": len(templates),
            "spans_per_trace": round(workload.spans / workload.traces, 1),
            "ceiling_seconds": options.ceiling_seconds,
            "ceiling_writers": ceiling.writers,
            "server_settings": server_overrides(),
            "ceiling_batch_rows": templates_per_batch(options.spans_per_request)
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
            "derivation_lag": usage.lag,
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
        "database": redacted(url),
        "meshlens_commit": _git("rev-parse", "--short", "HEAD"),
        "worktree_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def _lag(lag: object) -> str:
    if not isinstance(lag, dict) or not lag.get("probes"):
        return "not measured"
    if lag.get("median_s") is None:
        return f"no probe became visible ({lag['missing']} of {lag['probes']})"
    missing = f", {lag['missing']} never visible" if lag["missing"] else ""
    paired = (
        f"median {lag['median_s']} s   p95 {lag.get('p95_s')} s   max {lag['max_s']} s "
        f"(server half acknowledged -> edge in the API; {lag['probes']} probes{missing})"
    )
    passes = lag.get("derive_passes")
    if isinstance(passes, dict) and passes.get("passes"):
        paired += f"; {passes['passes']} derivation passes of {passes['mean_s']} s on average"
    alone = lag.get("client_only")
    if not isinstance(alone, dict) or not alone.get("probes"):
        return paired
    if alone.get("median_s") is None:
        return f"{paired}; client-only: none visible ({alone['missing']} of {alone['probes']})"
    gone = f", {alone['missing']} never visible" if alone["missing"] else ""
    return (
        f"{paired}; client-only edge: median {alone['median_s']} s   p95 {alone['p95_s']} s   "
        f"max {alone['max_s']} s (call acknowledged -> edge in the API; {alone['probes']} "
        f"probes{gone})"
    )


def summary(report: Report) -> str:
    """The figures as a block fit to paste into a README."""
    c, env = report.config, report.environment
    rate, latency, server = report.acknowledged_spans_per_second, report.latency_ms, report.server
    cpu, ceiling = report.cpu_percent, report.ceiling
    lines = [
        f"ingest benchmark ({c['workload']} workload, OTLP/HTTP protobuf, "
        f"{c['mean_spans_per_request']:,.0f} spans/request on average, "
        f"{c['connections']} connections, {c['seconds']} s)",
        f"acknowledged spans/s   median {rate['median']:,.0f}   mean {rate['mean']:,.0f}   "
        f"last {rate['final_seconds']} s {rate['final_mean']:,.0f}",
        f"request latency        p50 {latency['p50']:,.0f} ms   p99 {latency['p99']:,.0f} ms",
        f"server RSS (all procs) max {server['rss_max_mib']:,.0f} MiB   "
        f"end {server['rss_end_mib']:,.0f} MiB",
        f"server CPU (all procs) {cpu['meshlens']:.0f}% of one core   "
        f"({server['cpu_us_per_span']:.1f} µs per span)",
        f"PostgreSQL CPU         {_postgres_cpu(cpu)}",
        f"load generator CPU     {cpu['load_generator']:.0f}% of one core",
        f"machine CPU            {_machine_cpu(cpu, env['cpus'])}",
        f"COPY ceiling           {ceiling['spans_per_second']:,.0f} spans/s   "
        f"ratio {ceiling['ratio']:.2f}",
        f"derivation lag         {_lag(report.server.get('derivation_lag'))}",
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
