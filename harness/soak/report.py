"""The soak's report: the table over time, the totals, the verdict, and the JSON."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.soak.samples import Sample, Scrape, metric_by, metric_total
from harness.soak.verdict import (
    TOLERANCE_MIB,
    TOLERANCE_SHARE,
    Losses,
    MemoryVerdict,
    judge_memory,
    verdict,
)

ROWS = 12  # the table's rows: 5 minutes each over an hour


@dataclass(frozen=True, slots=True)
class Row:
    """One period of the table; rates and CPU over the period, the rest at its end."""

    end_second: float
    rss_mib: float
    rss_max_mib: float  # the highest sample in the period
    cpu_percent: float  # the server, % of one core
    machine_percent: float  # the whole machine busy, % of one core
    sent_per_second: float
    acknowledged_per_second: float
    refused_requests: int
    dropped_requests: int
    database_mib: float
    queue_items: float  # meshlens_ingest_queue_items: accepted, not yet committed


def row_samples(seconds: int, sample_seconds: int) -> int:
    """Samples per table row: about ROWS rows over the run."""
    return max(1, round(seconds / ROWS / sample_seconds))


def make_rows(samples: Sequence[Sample], per_row: int) -> list[Row]:
    """The table: one row per `per_row` sampling periods (the last row may be shorter)."""
    rows = []
    for first in range(0, len(samples) - 1, per_row):
        begin, end = samples[first], samples[min(first + per_row, len(samples) - 1)]
        inside = samples[first + 1 : first + per_row + 1]
        wall = end.second - begin.second
        rows.append(
            Row(
                end_second=end.second,
                rss_mib=end.rss_mib,
                rss_max_mib=max(s.rss_mib for s in inside),
                cpu_percent=round(100 * (end.cpu_seconds - begin.cpu_seconds) / wall, 1),
                machine_percent=round(
                    100 * (end.machine_busy_seconds - begin.machine_busy_seconds) / wall, 1
                ),
                sent_per_second=round((end.sent_spans - begin.sent_spans) / wall, 1),
                acknowledged_per_second=round(
                    (end.acknowledged_spans - begin.acknowledged_spans) / wall, 1
                ),
                refused_requests=sum(end.refused_requests.values())
                - sum(begin.refused_requests.values()),
                dropped_requests=end.dropped_requests - begin.dropped_requests,
                database_mib=end.database_mib,
                queue_items=metric_total(end.scrape, "meshlens_ingest_queue_items"),
            )
        )
    return rows


@dataclass(frozen=True, slots=True)
class SoakReport:
    """Every figure of a soak, as printed and as written to JSON."""

    config: dict[str, Any]
    environment: dict[str, Any]
    rows: list[Row]
    load: dict[str, Any]  # the load generator's totals
    meshlens: dict[str, Any]  # from /metrics after the load stopped
    web: dict[str, Any]
    stored_spans: int
    span_time_spread_seconds: float  # from the first stored span's start to the last's
    memory: MemoryVerdict | None
    failures: list[str]  # why it fails; empty: PASS
    samples: list[Sample]

    @property
    def passed(self) -> bool:
        return not self.failures


def meshlens_totals(scrape: Scrape) -> dict[str, Any]:
    """What meshlens counted, from one /metrics scrape."""
    return {
        "accepted_spans": metric_total(
            scrape, "meshlens_ingest_accepted_items_total", signal="spans"
        ),
        "rejected_spans": metric_total(
            scrape, "meshlens_ingest_rejected_items_total", signal="spans"
        ),
        "refused_requests": metric_by(scrape, "meshlens_ingest_refused_requests_total", "reason"),
        "refused_spans": metric_by(scrape, "meshlens_ingest_refused_items_total", "reason"),
        "derived_requests": metric_by(scrape, "meshlens_derive_requests_total", "how"),
        "alert_rounds": metric_total(scrape, "meshlens_alert_rounds_total"),
        "alert_notifications": metric_total(scrape, "meshlens_alert_notifications_total"),
        "alert_deliveries": metric_by(scrape, "meshlens_alert_deliveries_total", "outcome"),
    }


def make_report(
    config: dict[str, Any],
    environment: dict[str, Any],
    samples: list[Sample],
    final: Sample,
    web: dict[str, Any],
    stored: tuple[int, float],
) -> SoakReport:
    """The report of `samples` (the run), `final` (read after the load stopped) and `stored`
    (the spans in the table, and the seconds their start times spread over)."""
    stored_spans, spread = stored
    memory = judge_memory(
        [s.second for s in samples], [s.rss_mib for s in samples], config["warmup_seconds"]
    )
    losses = Losses(
        dropped_requests=final.dropped_requests,
        rejected_spans=final.rejected_spans,
        missing_spans=max(0, final.acknowledged_spans - stored_spans),
        web_failures=final.web_failures,
    )
    per_row = row_samples(config["seconds"], config["sample_seconds"])
    return SoakReport(
        config=config | {"row_seconds": per_row * config["sample_seconds"]},
        environment=environment,
        rows=make_rows(samples, per_row),
        load={
            "sent_spans": final.sent_spans,
            "acknowledged_spans": final.acknowledged_spans,
            "refused_requests": {str(k): v for k, v in final.refused_requests.items()},
            "dropped_requests": final.dropped_requests,
            "rejected_spans": final.rejected_spans,
        },
        meshlens=meshlens_totals(final.scrape),
        web=web,
        stored_spans=stored_spans,
        span_time_spread_seconds=spread,
        memory=memory,
        failures=verdict(memory, losses),
        samples=samples,
    )


def to_json(report: SoakReport) -> dict[str, Any]:
    document = {field.name: getattr(report, field.name) for field in dataclasses.fields(SoakReport)}
    document["rows"] = [dataclasses.asdict(row) for row in report.rows]
    document["samples"] = [dataclasses.asdict(sample) for sample in report.samples]
    memory = report.memory
    document["memory"] = None
    if memory is not None:
        document["memory"] = dataclasses.asdict(memory) | {
            "median_rise_mib": memory.median_rise_mib,
            "flat": memory.flat,
        }
    document["verdict"] = "PASS" if report.passed else "FAIL"
    return document


TABLE_HEAD = (
    f"{'time':>7} {'RSS MiB':>8} {'max':>6} {'CPU %':>6} {'machine %':>9} {'sent/s':>8} "
    f"{'acked/s':>8} {'refused':>7} {'dropped':>7} {'queue':>6} {'DB MiB':>7}"
)


def table_line(row: Row) -> str:
    minutes, seconds = divmod(round(row.end_second), 60)
    return (
        f"{minutes:4d}:{seconds:02d} {row.rss_mib:8.1f} {row.rss_max_mib:6.1f} "
        f"{row.cpu_percent:6.1f} {row.machine_percent:9.1f} {row.sent_per_second:8,.0f} "
        f"{row.acknowledged_per_second:8,.0f} {row.refused_requests:7d} "
        f"{row.dropped_requests:7d} {row.queue_items:6.0f} {row.database_mib:7,.0f}"
    )


def summary(report: SoakReport) -> str:
    """The table, the totals and the verdict, fit to paste into a README."""
    c, load, mesh, web = report.config, report.load, report.meshlens, report.web
    env = report.environment
    lines = [
        f"soak: {c['rate']:,} spans/s offered for {c['seconds']:,} s "
        f"({c['spans_per_request']} spans/request, {c['connections']} connections), "
        f"web reads every {c['web_interval']} s, alert rounds every {c['eval_interval']} s; "
        f"one row per {c['row_seconds']} s",
        TABLE_HEAD,
        *(table_line(row) for row in report.rows),
        "",
        f"memory        {_memory(report.memory, c['warmup_seconds'])}",
        f"server CPU    {_cpu(report.rows, env['cpus'])}",
        f"load          sent {load['sent_spans']:,} spans, acknowledged "
        f"{load['acknowledged_spans']:,}; requests refused: "
        f"{_counts(load['refused_requests'], 'HTTP ')}, dropped: {load['dropped_requests']:,}; "
        f"spans rejected: {load['rejected_spans']:,}",
        f"meshlens      accepted {mesh['accepted_spans']:,.0f} spans; requests refused: "
        f"{_counts(mesh['refused_requests'])}; spans rejected: {mesh['rejected_spans']:,.0f}; "
        f"requests derived by the deriver: {_counts(mesh['derived_requests'])}",
        f"alerting      {web['rules_loaded']} rules loaded, alerts at the end: "
        f"{_counts(web['alerts_at_end'])}; {mesh['alert_rounds']:,.0f} rounds, "
        f"{mesh['alert_notifications']:,.0f} "
        f"notifications, deliveries {_counts(mesh['alert_deliveries'])}, "
        f"{web['webhooks_received']} received by the sink",
        f"web port      {web['requests']:,} reads, {sum(web['failures'].values())} failed"
        + (f" ({'; '.join(web['messages'])})" if web["messages"] else ""),
        f"database      {report.stored_spans:,} spans stored "
        + _stored(report.stored_spans, load["acknowledged_spans"])
        + f", their start times spread over {report.span_time_spread_seconds:,.0f} s",
        f"setup         {env['cpus']} cores, PostgreSQL {env['postgresql']}, Python "
        f"{env['python']}, meshlens {env['meshlens_commit'] or '?'}"
        + (" (modified)" if env["worktree_dirty"] else ""),
        "verdict       " + ("PASS" if report.passed else "FAIL: " + "; ".join(report.failures)),
    ]
    return "\n".join(lines)


def _memory(memory: MemoryVerdict | None, warmup: int) -> str:
    if memory is None:
        return f"not judged: too few samples after the {warmup} s warm-up"
    return (
        f"after the {warmup} s warm-up ({memory.samples} samples over "
        f"{memory.measured_seconds:.0f} s): RSS median {memory.early_median_mib:.1f} -> "
        f"{memory.late_median_mib:.1f} MiB (first -> last third, {memory.median_rise_mib:+.1f}),"
        f" slope {memory.slope_mib_per_hour:+.1f} MiB/h (fitted {memory.fitted_rise_mib:+.1f}"
        f" MiB); flat within {memory.tolerance_mib:.1f} MiB "
        f"(max of {TOLERANCE_MIB:.0f} MiB and {TOLERANCE_SHARE:.0%}): "
        + ("yes" if memory.flat else "NO")
    )


def _cpu(rows: Sequence[Row], cores: int) -> str:
    if not rows:
        return "n/a"
    cpu = [row.cpu_percent for row in rows]
    machine = statistics.mean(row.machine_percent for row in rows)
    return (
        f"mean {statistics.mean(cpu):.1f}% of one core (rows {min(cpu):.1f} to {max(cpu):.1f}); "
        f"the machine was {machine:.0f}% busy (of {100 * cores}% on {cores} cores)"
    )


def _counts(counts: dict[str, float], prefix: str = "") -> str:
    return ", ".join(f"{prefix}{name} {n:,.0f}" for name, n in counts.items() if n) or "none"


def _stored(stored: int, acknowledged: int) -> str:
    if stored == acknowledged:
        return "(= acknowledged)"
    if stored > acknowledged:
        return f"({stored - acknowledged:,} more than acknowledged: answered 503 or dropped)"
    return f"({acknowledged - stored:,} acknowledged spans MISSING)"
