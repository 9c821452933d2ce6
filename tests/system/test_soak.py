"""The soak script's short version: 20 s of steady load on a real `meshlens serve`, every figure
reported and a PASS verdict (the hour-long run is `python bench/soak.py`, see bench/README.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from harness.postgres import DatabaseFactory
from harness.repo import REPO
from harness.soak.report import TABLE_HEAD, Row
from harness.soak.traffic import RETIME_SECONDS

# 2 requests a second over 12 connections: each is idle 6 s between requests, longer than the
# server keeps an idle connection open (uvicorn: 5 s), as at any low rate
RATE, SPANS_PER_REQUEST, CONNECTIONS = 200, 100, 12
COMMAND = [
    *("--seconds", "20", "--sample-seconds", "1", "--rate", str(RATE)),
    *("--spans-per-request", str(SPANS_PER_REQUEST), "--connections", str(CONNECTIONS)),
    *("--web-interval", "2", "--eval-interval", "2", "--json"),
]
SUMMARY_LABELS = ("memory", "server CPU", "load", "meshlens", "alerting", "web port", "database")


@pytest.fixture(scope="module")
def soak(databases: DatabaseFactory) -> tuple[dict[str, Any], str]:
    """The JSON report and the printed summary of one short soak."""
    done = subprocess.run(
        [sys.executable, "bench/soak.py", *COMMAND, "--database-url", databases.admin_url],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout), done.stderr


@pytest.mark.slow
def test_a_short_soak_passes_with_flat_memory(soak: tuple[dict[str, Any], str]) -> None:
    report, printed = soak
    assert report["verdict"] == "PASS"
    assert report["failures"] == []
    memory = report["memory"]
    assert memory["flat"]
    assert memory["samples"] >= 15  # one a second after the 5 s warm-up
    assert memory["early_median_mib"] > 0
    assert printed.splitlines()[-1] == "verdict       PASS"


@pytest.mark.slow
def test_the_report_holds_every_figure(soak: tuple[dict[str, Any], str]) -> None:
    report, printed = soak
    rows = report["rows"]
    assert len(rows) == 10  # 2 s each
    assert all(set(row) == set(Row.__dataclass_fields__) for row in rows)
    assert all(row["rss_mib"] > 0 for row in rows)
    assert sum(row["cpu_percent"] for row in rows) > 0
    assert sum(row["acknowledged_per_second"] for row in rows) > 0
    assert TABLE_HEAD in printed
    for label in SUMMARY_LABELS:
        assert any(line.startswith(f"{label:<14}") for line in printed.splitlines()), label
    load, meshlens = report["load"], report["meshlens"]
    assert load["acknowledged_spans"] > 0
    assert report["stored_spans"] == load["acknowledged_spans"] == meshlens["accepted_spans"]
    assert load["dropped_requests"] == load["rejected_spans"] == 0
    assert report["samples"][-1]["database_mib"] > 0


@pytest.mark.slow
def test_spans_are_timed_as_they_are_sent(soak: tuple[dict[str, Any], str]) -> None:
    """The requests are built afresh every RETIME_SECONDS, so rollups of now keep growing
    (one build's spans start within about 2 s of each other)."""
    report, _ = soak
    assert report["span_time_spread_seconds"] >= RETIME_SECONDS / 2


@pytest.mark.slow
def test_the_load_is_paced_to_the_rate(soak: tuple[dict[str, Any], str]) -> None:
    """A slow machine can only send less: at most one request per connection ahead of it."""
    report, _ = soak
    last = report["samples"][-1]["second"]
    assert report["load"]["sent_spans"] <= RATE * (last + 1) + SPANS_PER_REQUEST * (CONNECTIONS + 1)


@pytest.mark.slow
def test_the_web_port_and_alerting_ran(soak: tuple[dict[str, Any], str]) -> None:
    report, _ = soak
    web, meshlens = report["web"], report["meshlens"]
    assert web["requests"] > 0
    assert web["failures"] == {}
    assert web["rules_loaded"] == 3
    assert meshlens["alert_rounds"] >= 1
