"""Helpers for the alerting scenarios: rules files, traffic with known error ratios, waiting."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.otlp_payloads import SpanSpec, new_ids, spans_request
from tests.support import RunningServer

SERVER, CLIENT = 2, 3
ALERTING_FAST = {
    "MESHLENS_EVAL_INTERVAL": "0.5",
    "MESHLENS_DERIVE_INTERVAL_SECONDS": "0.3",
    "MESHLENS_PAIRING_WINDOW_SECONDS": "3",
    "MESHLENS_WEBHOOK_ALLOWLIST": "127.0.0.1",
}


def write_rules(path: Path, receivers: Sequence[Mapping[str, Any]], rules: Sequence[Any]) -> Path:
    path.write_text(yaml.safe_dump({"receivers": list(receivers), "rules": list(rules)}))
    return path


def error_rule(name: str, service: str, receivers: Sequence[str], **extra: Any) -> dict[str, Any]:
    """Fires when more than half of `service`'s requests fail (at least 10 requests)."""
    return {
        "name": name,
        "signal": "error_rate",
        "scope": "service",
        "matchers": {"service": service},
        "condition": "> 0.5",
        "window": "1m",
        "for": "1s",
        "min_requests": 10,
        "severity": "critical",
        "annotations": {
            "summary": "{{ $labels.service }} fails {{ $value | humanizePercentage }} of requests"
        },
        "receivers": list(receivers),
        "group_by": ["alertname", "service"],
        "group_wait": "0s",
        "group_interval": "1s",
        **extra,
    }


def send_requests(server: RunningServer, service: str, ok: int, failed: int) -> None:
    """`ok` successful and `failed` failing (HTTP 503) SERVER spans of `service`, now."""
    specs = []
    for n in range(ok + failed):
        trace_id, span_id = new_ids()
        status = 503 if n < failed else 200
        specs.append(
            SpanSpec(
                service,
                SERVER,
                trace_id,
                span_id,
                name="GET /pay",
                status_code=2 if status >= 500 else 0,
                attributes={"http.route": "/pay", "http.response.status_code": status},
            )
        )
    _post(server, specs)


def send_plaintext_call(server: RunningServer, source: str, target: str, count: int = 5) -> None:
    """`count` calls source -> target, both halves saying TLS was not established."""
    specs = []
    for _ in range(count):
        trace_id, client_id = new_ids()
        plain = {"tls.established": False}
        specs.append(SpanSpec(source, CLIENT, trace_id, client_id, attributes=plain))
        specs.append(SpanSpec(target, SERVER, trace_id, os.urandom(8), client_id, attributes=plain))
    _post(server, specs)


def _post(server: RunningServer, specs: list[SpanSpec]) -> None:
    body = spans_request(specs).SerializeToString()
    answer = httpx.post(
        f"{server.otlp_http}/v1/traces",
        content=body,
        headers={"Content-Type": "application/x-protobuf"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def history(server: RunningServer, rule: str) -> list[str]:
    rows = server.query("SELECT state FROM alert_history WHERE rule = %s ORDER BY id", (rule,))
    return [row[0] for row in rows]


def rounds(server: RunningServer) -> int:
    """Evaluation rounds this process has run (its /metrics)."""
    for line in httpx.get(f"{server.web}/metrics", timeout=5).text.splitlines():
        if line.startswith("meshlens_alert_rounds_total "):
            return int(float(line.rsplit(" ", 1)[1]))
    raise AssertionError("meshlens_alert_rounds_total is not in /metrics")
