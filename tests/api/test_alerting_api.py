"""The alerting API against a real `meshlens serve`: rules, receivers and silences made, changed
and deleted; every problem of a bad body listed; file rules read-only; webhook URLs masked in
every answer and in the log; the receiver test sending one real request.

Evaluation runs once at start (MESHLENS_EVAL_INTERVAL=1h): alerts, history and the outbox are
written straight into the tables, so what the API reads is known exactly.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from alerting.notify.destinations import mask_url
from alerting.notify.formats import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from harness.postgres import DatabaseFactory
from harness.waiting import wait_until
from harness.webhook_sink import WebhookSink
from tests.support import RunningServer, running_server

FILE_URL = "https://hooks.example.com/services/T000/B000/FILESECRETXYZ"
API_URL = "https://hooks.slack.com/services/T111/B222/APISECRETXYZ"
HMAC = "hmac-s3cr3t-value"
_ANSWER_ONLY = ("origin", "read_only", "alerts")
SECRETS = ("FILESECRETXYZ", "APISECRETXYZ", "secret-token", HMAC, "B0456")
RULES_FILE = f"""
receivers:
  - name: file-hook
    type: webhook
    url: {FILE_URL}
rules:
  - name: FileRule
    signal: error_rate
    scope: service
    condition: "> 5%"
    receivers: [file-hook]
"""


def rule(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "signal": "error_rate",
        "scope": "service",
        "matchers": ["service=checkout"],
        "condition": "> 5%",
        "for": "2m",
        **extra,
    }


@pytest.fixture(scope="module")
def server(
    databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("alerting-api")
    rules_file = folder / "rules.yaml"
    rules_file.write_text(RULES_FILE)
    env = {
        "MESHLENS_EVAL_INTERVAL": "1h",
        "MESHLENS_WEBHOOK_ALLOWLIST": "127.0.0.1",
        "MESHLENS_RULES_FILE": str(rules_file),
    }
    with running_server(databases.create(), folder / "meshlens.log", **env) as running:
        wait_first_round(running)
        yield running


def wait_first_round(server: RunningServer, timeout: float = 30) -> None:
    """Until the round run at start is done (the alerts page says when it ran)."""
    wait_until(
        lambda: "last round" in httpx.get(f"{server.web}/alerts", timeout=10).text,
        timeout=timeout,
        what="the first evaluation round",
        every=0.1,
    )


def no_secret(response: httpx.Response) -> None:
    response.read()
    for secret in SECRETS:
        assert secret not in response.text, f"{secret} in {response.request.url}"


@pytest.fixture(scope="module")
def api(server: RunningServer) -> Iterator[httpx.Client]:
    """The API, checking that no answer ever holds a secret."""
    hooks = {"response": [no_secret]}
    with httpx.Client(base_url=f"{server.web}/api/v1", timeout=30, event_hooks=hooks) as client:
        yield client


def execute(server: RunningServer, sql: str, params: Any = None) -> None:
    with psycopg.connect(server.database_url) as conn:
        conn.execute(sql, params)


@pytest.fixture(scope="module")
def oncall(api: httpx.Client) -> str:
    """An API receiver the rules of this module notify."""
    answer = api.post("/receivers", json={"name": "oncall", "type": "slack", "url": API_URL})
    assert answer.status_code == 201, answer.text
    return "oncall"


# --- rules -------------------------------------------------------------------------------------


def test_rules_round_trip(api: httpx.Client, server: RunningServer, oncall: str) -> None:
    made = api.post("/rules", json=rule("CheckoutErrors", receivers=[oncall]))
    assert made.status_code == 201, made.text
    shown = made.json()
    assert shown["origin"] == "api"
    assert shown["read_only"] is False
    assert shown["alerts"] == {"pending": 0, "firing": 0}
    assert (shown["condition"], shown["for"], shown["receivers"]) == ("> 0.05", "2m", [oncall])
    assert "metric" not in shown

    listed = {one["name"]: one for one in api.get("/rules").json()["rules"]}
    assert listed["CheckoutErrors"] == shown
    assert listed["FileRule"]["origin"] == "file"
    assert listed["FileRule"]["read_only"] is True
    assert next(iter(listed)) == "FileRule"  # file rules first
    ((stored,),) = server.query(
        "SELECT definition FROM alert_rules WHERE name = %s", ("CheckoutErrors",)
    )
    assert stored == {key: value for key, value in shown.items() if key not in _ANSWER_ONLY}

    shown["condition"] = "> 10%"  # an answer, edited, goes back as it is
    replaced = api.put("/rules/CheckoutErrors", json=shown)
    assert replaced.status_code == 200, replaced.text
    assert api.get("/rules/CheckoutErrors").json()["condition"] == "> 0.1"

    created = api.put("/rules/Slow Checkout", json=rule("Slow Checkout", signal="latency_p99",
                                                        condition="> 1.5s"))  # fmt: skip
    assert created.status_code == 201, created.text
    assert created.json()["condition"] == "> 1500"
    assert api.delete("/rules/Slow Checkout").status_code == 204
    gone = api.get("/rules/Slow Checkout")
    assert gone.status_code == 404
    assert gone.json() == {"status": 404, "message": "no rule named 'Slow Checkout'"}
    assert api.delete("/rules/Slow Checkout").status_code == 404


def test_a_bad_rule_lists_every_problem(api: httpx.Client, oncall: str) -> None:
    body = {
        "signal": "error_rat",
        "scope": "service",
        "condition": "> 5%",
        "for": "2x",
        "receivers": [oncall, "nobody"],
        "expr": "rate(x[5m])",
    }
    answer = api.post("/rules", json=body)
    assert answer.status_code == 400
    found = answer.json()
    assert found["status"] == 400
    assert found["message"].startswith("the rule has 5 problems: ")
    problems = {problem["path"]: problem["message"] for problem in found["problems"]}
    assert set(problems) == {"", "signal", "for", "receivers[1]", "expr"}
    assert "no name" in problems[""]
    assert "did you mean 'error_rate'" in problems["signal"]
    assert "no receiver named 'nobody'" in problems["receivers[1]"]
    assert all(problem["message"] in found["message"] for problem in found["problems"])
    assert api.get("/rules/None").status_code == 404


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[1, 2]", "the rule must be a JSON object, not list"),
        (b"{not json", "not JSON"),
        (b'{"name": "a\\u0000b"}', "NUL"),
    ],
)
def test_a_body_that_is_no_rule(api: httpx.Client, content: bytes, message: str) -> None:
    answer = api.post("/rules", content=content, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert message in answer.json()["problems"][0]["message"]


def test_names_postgresql_cannot_hold(api: httpx.Client) -> None:
    assert api.delete("/rules/a%00b").status_code == 404
    assert api.delete("/receivers/a%00b").status_code == 404
    put = api.put("/rules/a%00b", json=rule("a\u0000b"))
    assert put.status_code == 400
    assert "NUL" in put.json()["message"]


def test_rules_conflict(api: httpx.Client, oncall: str) -> None:
    assert api.post("/rules", json=rule("Twice")).status_code == 201
    again = api.post("/rules", json=rule("Twice"))
    assert again.status_code == 409
    assert "exists" in again.json()["message"]
    in_file = api.post("/rules", json=rule("FileRule"))
    assert in_file.status_code == 409
    assert "MESHLENS_RULES_FILE" in in_file.json()["message"]
    put = api.put("/rules/FileRule", json=rule("FileRule"))
    assert put.json() == {
        "status": 409,
        "message": "rule 'FileRule' is defined in MESHLENS_RULES_FILE; edit the file",
    }
    assert api.delete("/rules/FileRule").status_code == 409
    mismatch = api.put("/rules/Twice", json=rule("Other"))
    assert mismatch.status_code == 400
    assert mismatch.json()["problems"][0]["path"] == "name"
    assert api.delete("/rules/Twice").status_code == 204


# --- receivers ---------------------------------------------------------------------------------


def test_receivers_are_masked(api: httpx.Client, server: RunningServer) -> None:
    made = api.post(
        "/receivers",
        json={"name": "am", "type": "webhook", "url": API_URL + "/am", "hmac_secret": HMAC},
    )
    assert made.status_code == 201, made.text
    shown = made.json()
    assert shown["url"].startswith("https://hooks.slack.com/")
    assert shown["url"].endswith("…")
    assert shown["signed"] is True
    assert "hmac_secret" not in shown
    listed = {one["name"]: one for one in api.get("/receivers").json()["receivers"]}
    assert listed["am"] == shown
    assert listed["file-hook"]["origin"] == "file"
    assert listed["file-hook"]["read_only"] is True
    assert listed["file-hook"]["used_by"] == ["FileRule"]
    assert listed["file-hook"]["url"] == mask_url(FILE_URL)
    assert server.query("SELECT url, hmac_secret FROM alert_receivers WHERE name = 'am'") == [
        (API_URL + "/am", HMAC)
    ]

    replaced = api.put("/receivers/am", json={"type": "discord", "url": API_URL + "/d"})
    assert replaced.status_code == 200, replaced.text
    assert (replaced.json()["type"], replaced.json()["signed"]) == ("discord", False)
    masked = api.put("/receivers/am", json={"type": "slack", "url": shown["url"]})
    assert masked.status_code == 400
    assert masked.json()["problems"][0]["message"] == "url is masked (…): give the whole URL"

    bad = api.post(
        "/receivers",
        json={"name": "bad", "type": "slak", "url": "ftp://hooks.example/APISECRETXYZ"},
    )
    assert bad.status_code == 400
    paths = [problem["path"] for problem in bad.json()["problems"]]
    assert paths == ["type", "url"]
    assert (
        api.post("/receivers", json={"name": "am", "type": "slack", "url": API_URL}).status_code
        == 409
    )
    assert api.delete("/receivers/am").status_code == 204
    assert api.delete("/receivers/am").status_code == 404


def test_a_receiver_in_use_or_in_the_file_stays(api: httpx.Client, oncall: str) -> None:
    assert api.post("/rules", json=rule("UsesOncall", receivers=[oncall])).status_code == 201
    in_use = api.delete(f"/receivers/{oncall}")
    assert in_use.status_code == 409
    assert "UsesOncall" in in_use.json()["message"]
    in_file = api.delete("/receivers/file-hook")
    assert in_file.status_code == 409
    assert "MESHLENS_RULES_FILE" in in_file.json()["message"]
    assert (
        api.put("/receivers/file-hook", json={"type": "slack", "url": API_URL}).status_code == 409
    )
    assert api.delete("/rules/UsesOncall").status_code == 204


# --- silences ----------------------------------------------------------------------------------


def test_silences(api: httpx.Client) -> None:
    body = {
        "matchers": ["service=checkout", {"name": "severity", "op": "=~", "value": "crit.*"}],
        "duration": "2h",
        "created_by": "ana",
        "comment": "deploying checkout",
    }
    made = api.post("/silences", json=body)
    assert made.status_code == 201, made.text
    silence = made.json()
    uuid.UUID(silence["id"])
    assert silence["matchers"] == [
        {"name": "service", "op": "=", "value": "checkout"},
        {"name": "severity", "op": "=~", "value": "crit.*"},
    ]
    assert silence["state"] == "active"
    lasts = _time(silence["ends_at"]) - _time(silence["starts_at"])
    assert lasts == dt.timedelta(hours=2)

    later = api.post(
        "/silences",
        json={
            "matchers": ['service="cart"'],
            "starts_at": _in(3600),
            "ends_at": int(time.time()) + 7200,
            "created_by": "ana",
            "comment": "later",
        },
    )
    assert later.status_code == 201, later.text
    assert later.json()["state"] == "pending"
    listed = api.get("/silences").json()["silences"]
    assert [one["id"] for one in listed[:2]] == [later.json()["id"], silence["id"]]

    expired = api.delete(f"/silences/{silence['id']}")
    assert expired.status_code == 200
    assert expired.json()["state"] == "expired"
    assert _time(expired.json()["ends_at"]) <= dt.datetime.now(dt.UTC)
    listed = {one["id"]: one for one in api.get("/silences").json()["silences"]}
    assert listed[silence["id"]]["state"] == "expired"
    assert api.delete(f"/silences/{uuid.uuid4()}").status_code == 404
    assert api.delete("/silences/not-a-uuid").status_code == 404


def test_a_bad_silence_lists_every_problem(api: httpx.Client) -> None:
    answer = api.post(
        "/silences",
        json={
            "matchers": ["service=~.*", "x=~(", 5],
            "starts_at": _in(600),
            "ends_at": _in(60),
            "created_by": " ",
            "until": "later",
        },
    )
    assert answer.status_code == 400
    problems = {problem["path"]: problem["message"] for problem in answer.json()["problems"]}
    assert set(problems) == {"until", "matchers[1]", "matchers[2]", "ends_at", "created_by",
                             "comment"}  # fmt: skip
    assert "bad regex" in problems["matchers[1]"]
    assert "end after it starts" in problems["ends_at"]
    everything = api.post(
        "/silences",
        json={"matchers": ['service=~".*"'], "duration": "1h", "created_by": "a", "comment": "b"},
    )
    assert everything.status_code == 400
    assert "must not match an empty label" in everything.json()["message"]
    neither = api.post("/silences", json={"matchers": ["a=b"], "created_by": "a", "comment": "b"})
    assert neither.json()["problems"] == [
        {"path": "", "message": "give either ends_at or duration (such as 2h)"}
    ]


# --- alerts, history, notifications ------------------------------------------------------------


def test_alerts_history_and_notifications(
    api: httpx.Client, server: RunningServer, oncall: str
) -> None:
    assert api.post("/rules", json=rule("Stored", receivers=[oncall])).status_code == 201
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    add_alert(server, "Stored", {"service": "checkout"}, "firing", now - dt.timedelta(minutes=5))
    add_alert(server, "Stored", {"service": "cart"}, "pending", now - dt.timedelta(minutes=1))
    silence = api.post(
        "/silences",
        json={"matchers": ["service=cart"], "duration": "1h", "created_by": "t", "comment": "c"},
    ).json()

    alerts = api.get("/alerts").json()["alerts"]
    assert [(a["state"], a["labels"]["service"], a["silenced"]) for a in alerts] == [
        ("firing", "checkout", False),
        ("pending", "cart", True),
    ]
    assert alerts[1]["silenced_by"] == [silence["id"]]
    assert alerts[0]["value"] == 0.25
    assert _time(alerts[0]["fired_at"]) == now - dt.timedelta(minutes=5)
    assert alerts[0]["annotations"] == {"summary": "checkout fails"}
    assert api.get("/rules/Stored").json()["alerts"] == {"pending": 1, "firing": 1}

    for minutes, state in ((5, "pending"), (3, "firing")):
        execute(
            server,
            "INSERT INTO alert_history (rule, fingerprint, labels, state, value, at)"
            " VALUES ('Stored', 'f1', %s, %s, 0.25, %s)",
            (Jsonb({"service": "checkout"}), state, now - dt.timedelta(minutes=minutes)),
        )
    history = api.get("/alerts/history", params={"limit": 1}).json()["history"]
    assert [(event["state"], event["rule"]) for event in history] == [("firing", "Stored")]
    assert api.get("/alerts/history", params={"limit": "0"}).status_code == 400
    assert api.get("/alerts/history", params={"limit": "many"}).status_code == 400

    delivered = add_notification(server, "delivered", now, [(500, "retry"), (200, "delivered")])
    failing = add_notification(server, "pending", now + dt.timedelta(seconds=1), [(None, "retry")])
    notifications = api.get("/notifications").json()["notifications"]
    assert [n["id"] for n in notifications[:2]] == [failing, delivered]
    last, first = notifications[:2]
    assert (first["state"], first["attempts"], first["alert_count"]) == ("delivered", 2, 1)
    assert first["next_attempt_at"] is None
    assert [(a["status_code"], a["outcome"]) for a in first["delivery_attempts"]] == [
        (500, "retry"),
        (200, "delivered"),
    ]
    assert last["state"] == "pending"
    assert last["next_attempt_at"] is not None
    assert last["last_error"].startswith("cannot reach https://hooks.slack.com/")  # scrubbed
    assert api.delete("/rules/Stored").status_code == 204


def add_alert(
    server: RunningServer, rule_name: str, labels: dict[str, str], state: str, since: dt.datetime
) -> None:
    execute(
        server,
        "INSERT INTO alert_states (rule, fingerprint, labels, annotations, state, value,"
        " active_at, fired_at, last_true_at, evaluated_at, generator_url)"
        " VALUES (%s, %s, %s, %s, %s, 0.25, %s, %s, %s, %s, %s)",
        (
            rule_name,
            uuid.uuid4().hex[:16],
            Jsonb({"alertname": rule_name, **labels}),
            Jsonb({"summary": f"{labels.get('service')} fails"}),
            state,
            since,
            since if state == "firing" else None,
            since,
            since,
            f"http://127.0.0.1:8080/services/{labels.get('service')}?window=5m",
        ),
    )


def add_notification(
    server: RunningServer,
    state: str,
    at: dt.datetime,
    attempts: list[tuple[int | None, str]],
) -> int:
    """An outbox row with its attempts; its last error quotes the receiver's whole URL (the
    API must scrub it)."""
    error = f"cannot reach {API_URL}: connection refused"
    with psycopg.connect(server.database_url) as conn:
        row = conn.execute(
            "INSERT INTO notification_outbox (idempotency_key, receiver, group_key, status,"
            " notification, state, attempts, next_attempt_at, last_error, created_at,"
            " delivered_at) VALUES (%s, 'oncall', 'g', 'firing', %s, %s, %s, %s, %s, %s, %s)"
            " RETURNING id",
            (
                uuid.uuid4().hex,
                Jsonb({"alerts": [{"labels": {}}]}),
                state,
                len(attempts),
                at + dt.timedelta(days=1),  # never due while the test runs
                error if state != "delivered" else None,
                at,
                at if state == "delivered" else None,
            ),
        ).fetchone()
        assert row is not None
        for number, (status, outcome) in enumerate(attempts):
            conn.execute(
                "INSERT INTO delivery_attempts (outbox_id, at, outcome, status_code, error,"
                " duration_ms) VALUES (%s, %s, %s, %s, %s, 12.5)",
                (row[0], at + dt.timedelta(seconds=number), outcome, status, error),
            )
    return int(row[0])


# --- the test notification ---------------------------------------------------------------------


def test_the_test_notification_reaches_an_allowed_receiver(api: httpx.Client) -> None:
    with WebhookSink() as sink:
        body = {"name": "sink", "type": "webhook", "url": sink.url, "hmac_secret": HMAC}
        assert api.put("/receivers/sink", json=body).status_code == 201
        answer = api.post("/receivers/sink/test")
        assert answer.status_code == 200, answer.text
        result = answer.json()
        assert (result["delivered"], result["outcome"], result["status_code"]) == (
            True,
            "delivered",
            200,
        )
        assert result["error"] is None
        (request,) = sink.wait_for(1)
        time.sleep(0.2)
        assert len(sink.requests) == 1
    payload = request.json()
    assert payload["version"] == "4"
    assert payload["status"] == "firing"
    (alert,) = payload["alerts"]
    assert alert["labels"] == {"alertname": "MeshlensTest", "severity": "info"}
    assert alert["annotations"]["summary"] == "Test notification from meshlens"
    assert verify_signature(
        HMAC,
        request.headers[TIMESTAMP_HEADER.lower()],
        request.body,
        request.headers[SIGNATURE_HEADER.lower()],
        now=dt.datetime.now(dt.UTC),
    )
    assert api.delete("/receivers/sink").status_code == 204


def test_a_failing_receiver_is_tried_once(api: httpx.Client) -> None:
    with WebhookSink([500]) as sink:
        body = {"name": "broken", "type": "slack", "url": sink.url}
        assert api.put("/receivers/broken", json=body).status_code == 201
        result = api.post("/receivers/broken/test").json()
        assert (result["delivered"], result["outcome"], result["status_code"]) == (
            False,
            "retry",
            500,
        )
        assert "HTTP 500 from http://127.0.0.1:" in result["error"]
        time.sleep(0.3)
        assert len(sink.requests) == 1
    assert api.delete("/receivers/broken").status_code == 204
    unknown = api.post("/receivers/nobody/test")
    assert unknown.status_code == 404


def test_a_loopback_receiver_outside_the_allowlist_is_refused(api: httpx.Client) -> None:
    """MESHLENS_WEBHOOK_ALLOWLIST is 127.0.0.1: 127.0.0.2, loopback too, is not in it."""
    with WebhookSink(host="127.0.0.2") as sink:
        body = {"name": "sneaky", "type": "webhook", "url": sink.url}
        assert api.put("/receivers/sneaky", json=body).status_code == 201
        answer = api.post("/receivers/sneaky/test")
        assert answer.status_code == 200
        result = answer.json()
        assert (result["delivered"], result["outcome"], result["status_code"]) == (
            False,
            "failed",
            None,
        )
        assert "destination refused" in result["error"]
        assert "127.0.0.2 is loopback and not in the allowlist" in result["error"]
        assert sink.connections == 0
    assert api.delete("/receivers/sneaky").status_code == 204


def test_the_api_is_documented(api: httpx.Client, server: RunningServer) -> None:
    schema = httpx.get(f"{server.web}/openapi.json", timeout=30).json()
    paths = schema["paths"]
    for path, methods in {
        "/api/v1/rules": {"get", "post"},
        "/api/v1/rules/{name}": {"get", "put", "delete"},
        "/api/v1/receivers": {"get", "post"},
        "/api/v1/receivers/{name}": {"put", "delete"},
        "/api/v1/receivers/{name}/test": {"post"},
        "/api/v1/silences": {"get", "post"},
        "/api/v1/silences/{silence_id}": {"delete"},
        "/api/v1/alerts": {"get"},
        "/api/v1/alerts/history": {"get"},
        "/api/v1/notifications": {"get"},
    }.items():
        assert methods <= set(paths[path]), path
    assert "requestBody" in paths["/api/v1/rules"]["post"]
    assert "ProblemsResponse" in schema["components"]["schemas"]


def test_no_secret_reaches_the_log(server: RunningServer) -> None:
    """Last: every test above ran through the server; its log never holds a secret."""
    log = server.log()
    assert "meshlens is running" in log
    for secret in SECRETS:
        assert secret not in log


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def _in(seconds: int) -> str:
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
    return moment.isoformat()
