"""Secrets (the database password, ingest and web-port tokens, webhook URLs) never appear in
logs, API answers or error pages, even at debug level and when things go wrong."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import httpx
import pytest

from harness.postgres import DatabaseFactory
from meshlens.database import Database, unreachable
from tests.otlp_payloads import trace_request
from tests.support import RunningServer, run_meshlens, running_server

PASSWORD = "db-Passw0rd-4f9c1e"
INGEST = "ingest-token-7d1b0c9a4e"
READ = "read-token-5e8a2f61c0b7"
ADMIN = "admin-token-93c4d7a1e25f"
WEBHOOK = "https://hooks.slack.com/services/T000/B000/s3cr3t-w3bh00k-p4th"
SECRETS = (PASSWORD, INGEST, READ, ADMIN, "s3cr3t-w3bh00k-p4th")


def with_password(url: str) -> str:
    """`url` with PASSWORD for its user (the test PostgreSQL trusts, so it still connects)."""
    with_pw, count = re.subn(r"^(postgresql://[^:@/]+)@", rf"\1:{PASSWORD}@", url)
    assert count == 1, "the test database URL names no user"
    return with_pw


@pytest.fixture(scope="module")
def server(
    databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    env = {
        "MESHLENS_LOG_LEVEL": "debug",
        "MESHLENS_INGEST_TOKENS": INGEST,
        "MESHLENS_API_TOKENS": f"read:{READ},admin:{ADMIN}",
        "MESHLENS_WEBHOOK_ALLOWLIST": "hooks.slack.com",
    }
    log = tmp_path_factory.mktemp("secrets") / "meshlens.log"
    with running_server(with_password(databases.create()), log, **env) as running:
        yield running


def _no_secret_in(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{where} shows a secret"


def test_answers_and_logs_never_show_a_secret(server: RunningServer) -> None:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    body = trace_request("secrets").SerializeToString()
    answers = [
        httpx.post(  # wrong and right ingest tokens
            f"{server.otlp_http}/v1/traces",
            content=body,
            headers={"content-type": "application/x-protobuf", "authorization": "Bearer nope"},
        ),
        httpx.post(
            f"{server.otlp_http}/v1/traces",
            content=body,
            headers={"content-type": "application/x-protobuf", "authorization": f"Bearer {INGEST}"},
        ),
        httpx.put(  # a receiver with a secret URL, then every way of reading it back
            f"{server.web}/api/v1/receivers/team-chat",
            json={"name": "team-chat", "type": "slack", "url": WEBHOOK},
            headers=admin,
        ),
        httpx.get(f"{server.web}/api/v1/receivers", headers=admin),
        httpx.post(f"{server.web}/api/v1/receivers/team-chat/test", headers=admin, timeout=60),
        httpx.put(  # invalid input echoed back in an error
            f"{server.web}/api/v1/receivers/team-chat",
            json={"name": "team-chat", "type": "slack", "url": WEBHOOK + " x"},
            headers=admin,
        ),
        httpx.get(
            f"{server.web}/api/v1/services", headers={"Authorization": "Bearer " + READ[:-1]}
        ),
        httpx.get(f"{server.web}/api/v1/services", headers=admin),
        httpx.get(f"{server.web}/api/v1/no-such-thing", headers=admin),
        httpx.get(f"{server.web}/services/%00", headers=admin),
        httpx.get(f"{server.web}/metrics", headers=admin),
        httpx.get(f"{server.web}/openapi.json", headers=admin),
        httpx.get(f"{server.web}/alerts", headers=admin),
        httpx.post(f"{server.web}/login", data={"token": READ + "x"}),
    ]
    statuses = {answer.status_code for answer in answers}
    assert 500 not in statuses
    assert {200, 201, 400, 401, 404} <= statuses  # the receiver exists; the errors happened
    for answer in answers:
        _no_secret_in(answer.text, f"{answer.request.method} {answer.request.url.path}")
        _no_secret_in(str(answer.headers), f"headers of {answer.request.url.path}")
    log = server.log()
    assert "DEBUG" in log or "debug" in log  # the log was as verbose as it gets
    _no_secret_in(log, "the log")


@pytest.mark.parametrize("command", ["serve", "migrate"])
def test_an_unreachable_database_is_said_plainly_without_its_password(command: str) -> None:
    env = {
        **os.environ,
        "MESHLENS_DATABASE_URL": f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/meshlens",
    }
    failed = run_meshlens(command, env=env)
    assert failed.returncode == 1
    assert "cannot use the database" in failed.stderr
    assert "Traceback" not in failed.stderr
    _no_secret_in(failed.stdout + failed.stderr, f"meshlens {command}")


def test_a_password_quoted_by_the_driver_is_masked() -> None:
    database = Database(f"postgresql://postgres:{PASSWORD}@db.internal:5432/meshlens")
    said = str(unreachable(database, RuntimeError(f"bad option near '{PASSWORD}'")))
    assert PASSWORD not in said
    assert "***" in said
