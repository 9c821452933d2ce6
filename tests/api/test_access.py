"""Web-port tokens (MESHLENS_API_TOKENS): read tokens read, admin tokens also write, a browser
signs in once and gets a session cookie, and a cookie cannot be used by another site to write."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from harness.postgres import DatabaseFactory
from tests.support import RunningServer, run_meshlens, running_server

READ = "read-token-0123456789abcdef"
ADMIN = "admin-token-0123456789abcdef"
SILENCE = {"matchers": ["service=checkout"], "duration": "1h", "created_by": "t", "comment": "c"}


@pytest.fixture(scope="module")
def server(
    databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("access")
    env = {"MESHLENS_API_TOKENS": f"read:{READ},admin:{ADMIN}"}
    with running_server(databases.create(), folder / "meshlens.log", **env) as running:
        yield running


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_health_and_assets_need_no_token(server: RunningServer) -> None:
    for path in ("/healthz", "/readyz", "/static/meshlens.css", "/login"):
        assert httpx.get(server.web + path).status_code == 200, path


def test_the_api_needs_a_token_and_says_so(server: RunningServer) -> None:
    for path in ("/api/v1/services", "/metrics", "/openapi.json"):
        refused = httpx.get(server.web + path)
        assert refused.status_code == 401, path
        assert refused.json()["message"].startswith("sign in")
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert httpx.get(server.web + path, headers=_bearer(READ)).status_code == 200, path
    forged = httpx.get(server.web + "/api/v1/services", headers=_bearer(READ + "x"))
    assert forged.status_code == 401


def test_writes_need_an_admin_token(server: RunningServer) -> None:
    url = server.web + "/api/v1/silences"
    assert httpx.post(url, json=SILENCE).status_code == 401
    read = httpx.post(url, json=SILENCE, headers=_bearer(READ))
    assert read.status_code == 403
    assert "admin" in read.json()["message"]
    assert httpx.post(url, json=SILENCE, headers=_bearer(ADMIN)).status_code == 201


def test_pages_send_a_browser_to_sign_in_and_back(server: RunningServer) -> None:
    with httpx.Client(base_url=server.web) as browser:
        first = browser.get("/mtls?window=1h")
        assert first.status_code == 303
        assert first.headers["location"] == "/login?next=%2Fmtls%3Fwindow%3D1h"
        wrong = browser.post("/login", data={"token": "nope", "next": "/mtls?window=1h"})
        assert wrong.status_code == 401
        assert "not one of" in wrong.text
        signed = browser.post("/login", data={"token": READ, "next": "/mtls?window=1h"})
        assert signed.status_code == 303
        assert signed.headers["location"] == "/mtls?window=1h"
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        assert READ not in signed.headers["set-cookie"]
        assert browser.get("/mtls?window=1h").status_code == 200
        assert browser.get("/api/v1/services").status_code == 200
        assert browser.post("/api/v1/silences", json=SILENCE).status_code == 403  # read only


def test_an_admin_cookie_writes_only_from_meshlens_pages(server: RunningServer) -> None:
    with httpx.Client(base_url=server.web) as browser:
        assert browser.post("/login", data={"token": ADMIN, "next": "/"}).status_code == 303
        cross_site = browser.post(
            "/api/v1/silences", json=SILENCE, headers={"Origin": "https://evil.example"}
        )
        assert cross_site.status_code == 403
        assert browser.post("/api/v1/silences", json=SILENCE).status_code == 403  # no origin
        own = browser.post("/api/v1/silences", json=SILENCE, headers={"Origin": server.web})
        assert own.status_code == 201


def test_sign_in_never_leads_to_another_site(server: RunningServer) -> None:
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        answer = httpx.post(server.web + "/login", data={"token": READ, "next": target})
        assert answer.headers["location"] == "/"


def test_a_forged_or_foreign_cookie_is_refused(server: RunningServer) -> None:
    for value in ("admin.9999999999.deadbeef", "admin.1.x", "nonsense"):
        answer = httpx.get(server.web + "/api/v1/services", cookies={"meshlens_session": value})
        assert answer.status_code == 401, value


def test_tokens_never_reach_the_log(server: RunningServer) -> None:
    log = server.log()
    assert READ not in log
    assert ADMIN not in log


def test_listening_beyond_loopback_needs_tokens_or_insecure(database_url: str) -> None:
    env = {**os.environ, "MESHLENS_DATABASE_URL": database_url, "MESHLENS_HOST": "0.0.0.0"}
    env.pop("MESHLENS_API_TOKENS", None)
    refused = run_meshlens("serve", env=env)
    assert refused.returncode != 0
    assert "refusing to listen on 0.0.0.0" in refused.stderr
    assert "MESHLENS_INGEST_TOKENS" in refused.stderr
    assert "--insecure" in refused.stderr


def test_insecure_listens_beyond_loopback_when_asked(
    databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    log = tmp_path_factory.mktemp("insecure") / "meshlens.log"
    env = {"MESHLENS_HOST": "0.0.0.0", "MESHLENS_INSECURE": "true"}
    with running_server(databases.create(), log, **env) as running:
        assert httpx.get(running.web + "/api/v1/services").status_code == 200
