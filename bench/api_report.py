"""The API benchmark's figures: one Phase per database size, the summary, and the JSON file."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.api_http import Timing
from bench.api_load import LoadStats
from bench.database import redacted, server_version
from bench.report import RESULTS_DIR
from harness.repo import REPO

TARGETS_MS = {"15m": 50.0, "24h": 250.0}  # p95 targets of issue 3, for /services and /graph
TARGET_CASES = ("/services", "/graph")
PAGE_TARGET_MS = 300.0  # issue 4: pages over 24 h, server-side p95
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Phase:
    """The database after loading a share of the spans, and the API timed on it."""

    label: str  # "10%" or "100%"
    load: LoadStats
    vacuum_seconds: float
    database: dict[str, Any]
    timings: list[Timing]
    answers: dict[str, Any]
    problems: list[str]

    @property
    def stored_spans(self) -> int:
        return int(self.database["spans"]["rows"])

    def figures(self) -> dict[str, dict[str, float]]:
        return {timing.case.key: timing.figures() for timing in self.timings}


def verdicts(phases: list[Phase]) -> list[str]:
    """Whether each target case met its p95 target in every phase."""
    lines = []
    for phase in phases:
        for timing in phase.timings:
            if timing.case.page:
                server = timing.figures().get("server_p95", 0.0)
                if server > PAGE_TARGET_MS:
                    lines.append(
                        f"MISSED at {phase.label}: {timing.case.key} server-side p95 "
                        f"{server:.1f} ms > {PAGE_TARGET_MS:.0f} ms"
                    )
                continue
            target = TARGETS_MS.get(timing.case.window)
            if timing.case.label not in TARGET_CASES or target is None:
                continue
            p95 = timing.figures()["p95"]
            if p95 > target:
                lines.append(
                    f"MISSED at {phase.label}: {timing.case.key} p95 {p95:.1f} ms > {target:.0f} ms"
                )
    return lines


def summary(config: dict[str, Any], environment: dict[str, Any], phases: list[Phase]) -> str:
    """The figures side by side per phase, fit to paste into a README."""
    first, last = phases[0], phases[-1]
    width = 24
    lines = [
        f"API query benchmark: {config['services']} services, {config['service_edges']} "
        f"service-to-service edges, spans over the 24 h before {config['end']}",
        f"client-side time over one keep-alive HTTP connection (no Server-Timing header), "
        f"{config['requests']} requests per row after 3 warm-ups, end={config['end_unix']} "
        f"({config['end_minute']} min past the hour)",
        "",
        _row("stored spans", [f"{p.stored_spans:,}" for p in phases], width),
        _row("load spans/s (+derive)", [f"{p.load.spans_per_second:,.0f}" for p in phases], width),
        _row("load minutes", [f"{_load_minutes(p):.1f}" for p in phases], width),
        _row(
            "rollup rows svc / edge",
            [f"{_rows(p, 'service_rollups'):,} / {_rows(p, 'edge_rollups'):,}" for p in phases],
            width,
        ),
        _row(
            "rollups / spans MiB",
            [f"{_rollup_mib(p):,.0f} / {p.database['spans']['bytes'] / MIB:,.0f}" for p in phases],
            width,
        ),
        _row("rows read 15m svc / edge", [_read(p, "15m") for p in phases], width),
        _row("rows read 24h svc / edge", [_read(p, "24h") for p in phases], width),
        _row("histogram buckets 15m", [_buckets(p, "15m") for p in phases], width),
        _row("histogram buckets 24h", [_buckets(p, "24h") for p in phases], width),
        _row("ms: p50 / p95 / max", ["" for _ in phases], width) + "  target p95",
    ]
    for n, timing in enumerate(last.timings):
        cells = []
        for phase in phases:
            f = phase.timings[n].figures()
            cells.append(f"{f['p50']:.1f} / {f['p95']:.1f} / {f['max']:.1f}")
        target = TARGETS_MS.get(timing.case.window) if timing.case.label in TARGET_CASES else None
        label = f"GET {timing.case.label} {timing.case.window}"
        if timing.case.page:
            servers = " / ".join(
                f"{phase.timings[n].figures().get('server_p95', 0):.1f}" for phase in phases
            )
            note = f"  server p95 {servers}; target {PAGE_TARGET_MS:.0f} ms server-side"
            lines.append(_row(label, cells, width) + note)
            continue
        lines.append(_row(label, cells, width) + (f"  {target:.0f} ms" if target else "  -"))
    answers = last.answers
    lines += [
        "",
        f"answers at {last.label}, 24 h: {answers['services_24h']} services, "
        f"{answers['service_requests_24h']:,} service requests (= SERVER spans loaded), "
        f"{answers['edges_24h']} edges, {answers['edge_requests_24h']:,} edge requests, "
        f"nodes {_types(answers['nodes_24h'])}, mTLS coverage {answers['mtls_coverage_24h']:.3f}",
        f"answers at {last.label}, 15 m: {answers['services_15m']} services, "
        f"{answers['edges_15m']} edges, {answers['edge_requests_15m']:,} edge requests",
        f"growth {first.label} -> {last.label} (p95): " + _growth(first, last),
        f"setup: {environment['cpus']} cores (shared), PostgreSQL {environment['postgresql']}, "
        f"Python {environment['python']}, meshlens {environment['meshlens_commit'] or '?'}"
        + (" (modified)" if environment["worktree_dirty"] else ""),
    ]
    return "\n".join(lines)


def _row(label: str, cells: list[str], width: int) -> str:
    return f"{label:<26}" + "".join(f"{cell:>{width}}" for cell in cells)


def _read(phase: Phase, window: str) -> str:
    read = phase.database["rows_read"][window]
    return f"{read['service_rollups']:,} / {read['edge_rollups']:,}"


def _buckets(phase: Phase, window: str) -> str:
    return f"{phase.database['rows_read'][window]['latency_buckets']:,}"


def _rows(phase: Phase, table: str) -> int:
    return int(phase.database[table]["rows"])


def _load_minutes(phase: Phase) -> float:
    return (phase.load.seconds + phase.load.drain_seconds) / 60


def _rollup_mib(phase: Phase) -> float:
    tables = ("service_rollups", "edge_rollups")
    return sum(int(phase.database[t]["bytes"]) for t in tables) / MIB


def _types(types: dict[str, int]) -> str:
    return ", ".join(f"{count} {name}" for name, count in sorted(types.items()))


def _growth(first: Phase, last: Phase) -> str:
    parts = []
    for a, b in zip(first.timings, last.timings, strict=True):
        if a.case.label in TARGET_CASES:
            ratio = b.figures()["p95"] / a.figures()["p95"]
            parts.append(f"{a.case.label} {a.case.window} x{ratio:.2f}")
    return ", ".join(parts)


def environment(url: str) -> dict[str, Any]:
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "postgresql": server_version(url),
        "database": redacted(url),
        "meshlens_commit": _git("rev-parse", "--short", "HEAD"),
        "worktree_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "modified_files": (_git("diff", "--name-only", "HEAD") or "").split(),
    }


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def write_json(config: dict[str, Any], env: dict[str, Any], phases: list[Phase]) -> Path:
    """Every figure, the per-request times included, to bench/results/api-<timestamp>.json."""
    document = {
        "config": config,
        "environment": env,
        "phases": [
            {
                "label": phase.label,
                "stored_spans": phase.stored_spans,
                "load": {
                    **dataclasses.asdict(phase.load),
                    "spans_per_second": round(phase.load.spans_per_second, 1),
                },
                "vacuum_seconds": round(phase.vacuum_seconds, 2),
                "database": phase.database,
                "latency_ms": phase.figures(),
                "requests_ms": {
                    t.case.key: [round(ms, 2) for ms in t.milliseconds] for t in phase.timings
                },
                "body_bytes": {t.case.key: t.body_bytes for t in phase.timings},
                "answers": phase.answers,
                "problems": phase.problems,
            }
            for phase in phases
        ],
        "verdicts": verdicts(phases),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"api-{stamp}.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path
