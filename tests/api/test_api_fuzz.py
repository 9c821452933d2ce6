"""The web port fuzzed from its own OpenAPI description with Schemathesis, against a real
`meshlens serve` holding data (spans, a file rule and receiver, API ones, a silence), with an
admin token so every operation is reached, the writes too.

Schemathesis runs as its command-line tool does (its examples, coverage, fuzzing and stateful
phases: it follows the description's links, so a rule it makes is read, replaced and deleted),
with a fixed seed and number of examples, in about a minute. Checks: no 5xx, every status
code, content type, header and body as the description says, schema-invalid input refused,
and what it made or deleted is (or is no longer) there. Not checked: that every schema-valid
input is accepted (`positive_data_acceptance`): the description cannot say which texts are
durations, times or rules, so valid-looking ones are rightly refused with a 400; and
`unsupported_method`, `allow_header_conformance`: `{name:path}` takes names holding `/`, so
`PUT /receivers/x/test` is a PUT of the receiver named `x/test`, not an undeclared method, and
`Allow` there rightly names PUT and DELETE too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from harness.postgres import DatabaseFactory
from tests.otlp_payloads import SpanSpec, new_ids, spans_request
from tests.support import RunningServer, running_server

ADMIN = "admin-token-for-the-api-fuzz-0123"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "use_after_free",
    "ensure_resource_availability",
)
EXAMPLES = os.environ.get("MESHLENS_FUZZ_EXAMPLES", "100")
RULES_FILE = """
receivers:
  - name: file-receiver
    type: webhook
    url: https://example.com/file-hook
rules:
  - name: FileRule
    signal: error_rate
    scope: service
    condition: "> 0.05"
    receivers: [file-receiver]
"""


@pytest.fixture(scope="module")
def api_server(
    databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """`meshlens serve` with an admin token and a rules file, holding a little of everything."""
    folder = tmp_path_factory.mktemp("api-fuzz")
    rules = folder / "rules.yaml"
    rules.write_text(RULES_FILE)
    env = {"MESHLENS_API_TOKENS": f"admin:{ADMIN}", "MESHLENS_RULES_FILE": str(rules)}
    with running_server(databases.create(), folder / "meshlens.log", **env) as server:
        _fill(server)
        yield server


def _fill(server: RunningServer) -> None:
    specs = []
    for _ in range(5):
        trace_id, client_id = new_ids()
        specs.append(SpanSpec("frontend", 3, trace_id, client_id))
        specs.append(SpanSpec("checkout", 2, trace_id, os.urandom(8), parent_span_id=client_id))
    body = spans_request(specs).SerializeToString()
    headers = {"content-type": "application/x-protobuf"}
    assert httpx.post(server.otlp_http + "/v1/traces", content=body, headers=headers).is_success
    made = [  # the rule of the description's example names the receiver `oncall`
        ("receivers", {"name": "oncall", "type": "webhook", "url": "https://example.com/hook"}),
        ("rules", {"name": "SlowCheckout", "signal": "latency_p95", "scope": "service",
                   "condition": "> 500"}),
        ("silences", {"matchers": ["service=checkout"], "duration": "2h", "created_by": "fuzz",
                      "comment": "seeded"}),
    ]  # fmt: skip
    for what, body_json in made:
        response = httpx.post(f"{server.web}/api/v1/{what}", json=body_json, headers=AUTH)
        assert response.status_code == 201, response.text


def test_schemathesis_finds_nothing(api_server: RunningServer, tmp_path: Path) -> None:
    operations = _operations(api_server)
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{api_server.web}/openapi.json",
        "--header", f"Authorization: Bearer {ADMIN}", "--checks", ",".join(CHECKS),
        "--max-examples", EXAMPLES, "--seed", "1", "--workers", "1", "--request-timeout", "30",
        "--report", "har", "--report-har-path", str(tmp_path / "exchanges.har"),
    ]  # fmt: skip

    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)

    report = run.stdout[-20_000:] + run.stderr[-5_000:]
    assert run.returncode == 0, report
    tested = re.search(r"Tested: (\d+)", run.stdout)
    assert tested is not None, report
    assert int(tested.group(1)) == operations, report
    writes = _successful_writes(tmp_path / "exchanges.har")
    for what in ("rules", "receivers", "silences"):  # past the token, into the database
        assert {"POST", "DELETE"} <= writes[what], (what, writes)
    assert "PUT" in writes["rules"], writes


def _successful_writes(har: Path) -> dict[str, set[str]]:
    """The methods of the 2xx answers to each collection's changes, from the HAR record."""
    writes: dict[str, set[str]] = {"rules": set(), "receivers": set(), "silences": set()}
    for entry in json.loads(har.read_text())["log"]["entries"]:
        method, path = entry["request"]["method"], urlsplit(entry["request"]["url"]).path
        parts, status = path.split("/"), entry["response"]["status"]
        if method != "GET" and len(parts) > 3 and parts[3] in writes and 200 <= status < 300:
            writes[parts[3]].add(method)
    return writes


def _operations(server: RunningServer) -> int:
    description = httpx.get(f"{server.web}/openapi.json", headers=AUTH).json()
    return sum(len(methods) for methods in description["paths"].values())


@pytest.mark.parametrize(
    ("what", "body"),
    [
        ("receivers", {"name": "on\ncall", "type": "webhook", "url": "https://example.com/h"}),
        ("rules", {"name": "Slow\tCheckout", "signal": "latency_p95", "scope": "service",
                   "condition": "> 500"}),
    ],
)  # fmt: skip
def test_names_holding_control_characters_are_refused(
    api_server: RunningServer, what: str, body: dict[str, object]
) -> None:
    """Found exploring what the fuzzing reported: a receiver named `on\\ncall` was made, but no
    route matches a newline, so it could never be replaced or deleted through the API."""
    response = httpx.post(f"{api_server.web}/api/v1/{what}", json=body, headers=AUTH)

    assert response.status_code == 400, response.text
    (problem,) = response.json()["problems"]
    assert problem["path"] == "name"
    assert problem["message"].startswith("name may not hold control characters")
    table = "alert_receivers" if what == "receivers" else "alert_rules"
    assert api_server.query(f"SELECT count(*) FROM {table} WHERE name = %s", (body["name"],)) == [
        (0,)
    ]
