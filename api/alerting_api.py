"""Alerting through the JSON API (`/api/v1`, tag `alerting`): rules and receivers made here,
silences, current alerts, their history, and notifications with every delivery attempt.

Rules and receivers from MESHLENS_RULES_FILE are listed too, read-only (409 on a change).
Bodies are JSON objects in the rules file's format, validated by `alerting.rules`: a
400 lists every problem (`{"status", "message", "problems": [{"path", "message"}]}`). Changes
to rules and receivers take a transaction-level advisory lock, so a rule cannot start naming a
receiver being deleted. Answers and the reads behind them live in `api.alerting_answers`.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
import unicodedata
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from alerting.model import Receiver, Rule, Silence
from alerting.notify.delivery import Outcome, deliver
from alerting.notify.formats import render
from alerting.rules import (
    RulesFileError,
    receiver_from_mapping,
    rule_from_mapping,
    rule_to_mapping,
)
from alerting.service import AlertingService
from alerting.store import insert_silence
from api import alerting_answers as a
from api.connection import snapshot
from api.http_errors import ApiError
from api.schemas import ErrorResponse

log = logging.getLogger("meshlens.alerting")
T = TypeVar("T")
CONFIG_LOCK = 0x6D6C6366  # "mlcf": changes to rules and receivers, one at a time
MAX_BODY = 1 << 20
MAX_LIMIT = 1000
ANSWER_ONLY_KEYS = ("origin", "read_only", "alerts", "signed", "used_by")
"""Keys of the answers that bodies may carry back (GET, edit, PUT): they are ignored."""
_SAVE = {
    "rule": (
        "INSERT INTO alert_rules (name, definition) VALUES (:name, CAST(:definition AS jsonb))",
        "definition = EXCLUDED.definition",
    ),
    "receiver": (
        "INSERT INTO alert_receivers (name, type, url, hmac_secret)"
        " VALUES (:name, :type, :url, :secret)",
        "type = EXCLUDED.type, url = EXCLUDED.url, hmac_secret = EXCLUDED.hmac_secret",
    ),
}

router = APIRouter(prefix="/api/v1", tags=["alerting"])


class InvalidBody(ApiError):
    """A 400 listing every problem of a body."""

    def __init__(self, what: str, problems: Sequence[a.Problem]) -> None:
        count = len(problems)
        listed = "; ".join(_located(problem) for problem in problems)
        super().__init__(400, f"{what} has {count} problem{'s' if count != 1 else ''}: {listed}")
        self.problems = list(problems)


def _located(problem: a.Problem) -> str:
    """`path: message`, unless the message already starts with the path's key."""
    key = re.sub(r"\[\d+\]", "", problem.path).rpartition(".")[2]
    if not problem.path or problem.message.startswith(f"{key}:"):
        return problem.message
    return f"{problem.path}: {problem.message}"


def include_alerting_api(app: FastAPI) -> None:
    """Serve the endpoints on `app`: its state holds `engine` and, in `meshlens serve`,
    `alerting` (the `AlertingService`; without it there are no file rules and no test sends)."""
    app.include_router(router)
    app.add_exception_handler(InvalidBody, _problems_answer)  # type: ignore[arg-type]


async def _problems_answer(_: Request, error: InvalidBody) -> JSONResponse:
    problems = [problem.model_dump() for problem in error.problems]
    return JSONResponse({"status": 400, "message": error.message, "problems": problems}, 400)


def _errors(described: Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    def model(code: int) -> type[Any]:
        return a.ProblemsResponse if code == 400 else ErrorResponse

    return {code: {"model": model(code), "description": d} for code, d in described.items()}


def _body_doc(description: str, example: dict[str, Any]) -> dict[str, Any]:
    schema = {"type": "object", "additionalProperties": True}
    content = {"application/json": {"schema": schema, "example": example}}
    return {"requestBody": {"required": True, "description": description, "content": content}}


_BODY, _DOWN = "Not valid: every problem is listed.", "The database does not answer."
_FILE_OR_TAKEN = "Defined in the rules file, or (POST) the name is taken."
_RULE_DOC = _body_doc(
    "One rule in the rules file's format (README, Alert rules file); receivers named must "
    "exist. `origin`, `read_only` and `alerts` (answer-only) are ignored.",
    {"name": "HighErrorRate", "signal": "error_rate", "scope": "service", "condition": "> 5%",
     "matchers": ["service=checkout"], "for": "2m", "severity": "critical",
     "annotations": {"summary": "{{ $labels.service }} fails"}, "receivers": ["oncall"]},
)  # fmt: skip
_RECEIVER_DOC = _body_doc(
    "`name`, `type` (slack, mattermost, discord, teams, webhook), `url` (http or https: a "
    "secret, answered masked), `hmac_secret` (webhook only: signs requests; never answered).",
    {"name": "oncall", "type": "slack", "url": "https://hooks.slack.com/services/T0/B0/XXXX"},
)
_SILENCE_DOC = _body_doc(
    "`matchers`: objects `{name, op, value}` (op `=`, `!=`, `=~`, `!~`) or strings "
    '(`service=checkout`, `service=~"check.*"`), at least one, not all matching an empty '
    "label; `starts_at` (RFC 3339 or unix seconds; default now); `ends_at` or `duration` "
    "(`2h`); `created_by`; `comment`.",
    {"matchers": ["service=checkout"], "duration": "2h", "created_by": "ana",
     "comment": "deploying checkout"},
)  # fmt: skip
LimitParam = Annotated[
    str | None, Query(description=f"How many, newest first: 1 to {MAX_LIMIT}. Default 100.")
]


# --- rules -------------------------------------------------------------------------------------


@router.get(
    "/rules",
    summary="Alert rules (file and API) with their alert counts",
    response_model_exclude_none=True,
)
async def list_rules(request: Request) -> a.RulesResponse:
    async with snapshot(request) as conn:
        return a.RulesResponse(rules=await a.rule_models(_service(request), conn))


@router.get(
    "/rules/{name:path}",
    summary="One alert rule",
    responses=_errors({404: "No rule has this name."}),
    response_model_exclude_none=True,
)
async def get_rule(request: Request, name: str) -> a.RuleModel:
    async with snapshot(request) as conn:
        rules = await a.rule_models(_service(request), conn)
    for rule in rules:
        if rule.name == name:
            return rule
    raise ApiError(404, f"no rule named {_shown(name)}")


@router.post(
    "/rules",
    status_code=201,
    summary="Make an alert rule",
    responses=_errors({400: _BODY, 409: _FILE_OR_TAKEN, 503: _DOWN}),
    response_model_exclude_none=True,
    openapi_extra=_RULE_DOC,
)
async def create_rule(request: Request) -> a.RuleModel:
    rule, _ = await _save_rule(request, await _body(request, "the rule"), replace=False)
    return rule


@router.put(
    "/rules/{name:path}",
    summary="Make (201) or replace (200) an alert rule made through the API",
    responses=_errors({400: _BODY, 409: _FILE_OR_TAKEN, 503: _DOWN}),
    response_model_exclude_none=True,
    openapi_extra=_RULE_DOC,
)
async def put_rule(request: Request, response: Response, name: str) -> a.RuleModel:
    _refuse_file(request, "rule", name)
    rule, created = await _save_rule(request, await _body(request, "the rule", name), replace=True)
    response.status_code = 201 if created else 200
    return rule


@router.delete(
    "/rules/{name:path}",
    status_code=204,
    summary="Delete an alert rule made through the API (its alerts resolve next round)",
    responses=_errors({404: "No rule has this name.", 409: "Defined in the file.", 503: _DOWN}),
)
async def delete_rule(request: Request, name: str) -> Response:
    _refuse_file(request, "rule", name)
    async with _writing(request) as conn:
        await _delete(conn, "rule", name)
    return Response(status_code=204)


async def _save_rule(
    request: Request, body: dict[str, Any], *, replace: bool
) -> tuple[a.RuleModel, bool]:
    async with _writing(request) as conn:
        names = set(await a.all_receivers(_service(request), conn))
        rule: Rule = _validated(
            "the rule", lambda: rule_from_mapping(body, known_receivers=names), _name_problems(body)
        )
        _refuse_file(request, "rule", rule.name)
        definition = orjson.dumps(rule_to_mapping(rule)).decode()
        row = {"name": rule.name, "definition": definition}
        created = await _save(conn, "rule", row, replace=replace)
        counts = {} if created else await a.alert_counts(conn)
    return a.rule_model(rule, counts), created


# --- receivers ---------------------------------------------------------------------------------


@router.get("/receivers", summary="Receivers (file and API), URLs masked")
async def list_receivers(request: Request) -> a.ReceiversResponse:
    async with snapshot(request) as conn:
        return a.ReceiversResponse(receivers=await a.receiver_models(_service(request), conn))


@router.post(
    "/receivers",
    status_code=201,
    summary="Make a receiver",
    responses=_errors({400: _BODY, 409: _FILE_OR_TAKEN, 503: _DOWN}),
    openapi_extra=_RECEIVER_DOC,
)
async def create_receiver(request: Request) -> a.ReceiverModel:
    receiver, _ = await _save_receiver(request, await _body(request, "the receiver"), False)
    return receiver


@router.put(
    "/receivers/{name:path}",
    summary="Make (201) or replace (200) a receiver made through the API",
    responses=_errors({400: _BODY, 409: _FILE_OR_TAKEN, 503: _DOWN}),
    openapi_extra=_RECEIVER_DOC,
)
async def put_receiver(request: Request, response: Response, name: str) -> a.ReceiverModel:
    _refuse_file(request, "receiver", name)
    body = await _body(request, "the receiver", name)
    receiver, created = await _save_receiver(request, body, True)
    response.status_code = 201 if created else 200
    return receiver


@router.delete(
    "/receivers/{name:path}",
    status_code=204,
    summary="Delete a receiver made through the API",
    responses=_errors({404: "Unknown.", 409: "In the file, or rules use it.", 503: _DOWN}),
)
async def delete_receiver(request: Request, name: str) -> Response:
    _refuse_file(request, "receiver", name)
    async with _writing(request) as conn:
        users = [r.name for r in await a.all_rules(_service(request), conn) if name in r.receivers]
        if users:
            rules = f"rule{'s' if len(users) > 1 else ''} {', '.join(users)}"
            raise ApiError(
                409, f"receiver {_shown(name)} is used by {rules}: remove it there first"
            )
        await _delete(conn, "receiver", name)
    return Response(status_code=204)


async def _save_receiver(
    request: Request, body: dict[str, Any], replace: bool
) -> tuple[a.ReceiverModel, bool]:
    masked = isinstance(body.get("url"), str) and "…" in body["url"]
    given = [a.Problem(path="url", message="url is masked (…): give the whole URL")] * masked
    given += _name_problems(body)
    receiver: Receiver = _validated("the receiver", lambda: receiver_from_mapping(body), given)
    _refuse_file(request, "receiver", receiver.name)
    row = {"name": receiver.name, "type": receiver.type.value, "url": receiver.url}
    async with _writing(request) as conn:
        created = await _save(conn, "receiver", {**row, "secret": receiver.hmac_secret}, replace)
        rules = await a.all_rules(_service(request), conn)
    return a.receiver_model(receiver, rules), created


@router.post(
    "/receivers/{name:path}/test",
    summary="Send a receiver one test notification (MeshlensTest, severity info)",
    description="One attempt, through the SSRF guard and allowlist notifications go through; "
    "200 whatever the destination answered: `outcome` says how it went.",
    responses=_errors({404: "No receiver has this name.", 503: "Alerting is not running."}),
)
async def test_receiver(request: Request, name: str) -> a.TestResult:
    service = _service(request)
    if service is None:
        raise ApiError(503, "alerting is not running in this process")
    async with snapshot(request) as conn:
        receiver = (await a.all_receivers(service, conn)).get(name)
    if receiver is None:
        raise ApiError(404, f"no receiver named {_shown(name)}")
    now = service.now()
    notification = a.test_notification(receiver.name, service.config.external_url, now)
    message = render(receiver, notification, now=now)
    attempt = await deliver(service.client, receiver, message, allowlist=service.config.allowlist)
    error = a.scrub(attempt.error, [receiver.url])
    log.info("test notification to receiver %r: %s (%s)", name, attempt.outcome.value, error)
    return a.TestResult(
        delivered=attempt.outcome is Outcome.DELIVERED,
        outcome=attempt.outcome.value,
        status_code=attempt.status_code,
        error=error,
        duration_ms=round(attempt.duration * 1000, 3),
    )


# --- rules and receivers: storing --------------------------------------------------------------


def _validated(what: str, make: Callable[[], T], given: Sequence[a.Problem] = ()) -> T:
    """What `make` makes; InvalidBody with its problems (after `given`) when it cannot."""
    try:
        made = make()
    except RulesFileError as exc:
        found = [a.Problem(path=p.path, message=p.message) for p in exc.problems]
        raise InvalidBody(what, [*given, *found]) from None
    if given:
        raise InvalidBody(what, given)
    return made


def _name_problems(body: Mapping[str, Any]) -> list[a.Problem]:
    """A name holding control characters could be made but never reached by its path (no
    route matches a newline): refused."""
    name = body.get("name")
    if isinstance(name, str) and any(unicodedata.category(char) == "Cc" for char in name):
        message = f"name may not hold control characters (such as a newline), got {_shown(name)}"
        return [a.Problem(path="name", message=message)]
    return []


def _refuse_file(request: Request, kind: str, name: str) -> None:
    service = _service(request)
    if service is None:
        return
    found = service.file_rules if kind == "rule" else service.file_receivers
    if any(item.name == name for item in found):
        raise ApiError(409, f"{kind} {_shown(name)} is {a.FROM_FILE}")


async def _save(conn: AsyncConnection, kind: str, row: Mapping[str, Any], replace: bool) -> bool:
    """Insert (or with `replace`, upsert) the row; True when it is new. 409 when it exists and
    may not be replaced."""
    insert, update = _SAVE[kind]
    conflict = f"DO UPDATE SET {update}, updated_at = now()" if replace else "DO NOTHING"
    result = await conn.execute(
        text(f"{insert} ON CONFLICT (name) {conflict} RETURNING xmax = 0"), row
    )
    created = result.scalar_one_or_none()
    if created is None:
        raise ApiError(409, f"{kind} {_shown(row['name'])} exists: PUT replaces it")
    return bool(created)


async def _delete(conn: AsyncConnection, kind: str, name: str) -> None:
    table = "alert_rules" if kind == "rule" else "alert_receivers"
    query = text(f"DELETE FROM {table} WHERE name = :name RETURNING name")
    if "\x00" in name or (await conn.execute(query, {"name": name})).first() is None:
        raise ApiError(404, f"no {kind} named {_shown(name)} was made through the API")


# --- silences ----------------------------------------------------------------------------------


@router.get("/silences", summary="Silences, active and expired, newest first")
async def list_silences(request: Request) -> a.SilencesResponse:
    async with snapshot(request) as conn:
        return a.SilencesResponse(silences=await a.silence_models(conn, _now(request)))


@router.post(
    "/silences",
    status_code=201,
    summary="Silence the alerts that meet matchers, for a while",
    responses=_errors({400: _BODY, 503: _DOWN}),
    openapi_extra=_SILENCE_DOC,
)
async def create_silence(request: Request) -> a.SilenceModel:
    now = _now(request)
    silence = a.silence_from_body(await _body(request, "the silence"), now)
    if not isinstance(silence, Silence):
        raise InvalidBody("the silence", silence)
    async with _writing(request, lock=False) as conn:
        await insert_silence(conn, silence)
        made = await a.one_silence(conn, silence.id, now)
    assert made is not None
    return made


@router.delete(
    "/silences/{silence_id}",
    summary="Expire a silence now (it stays listed, expired)",
    responses=_errors({404: "No silence has this id.", 503: _DOWN}),
)
async def expire_silence(request: Request, silence_id: str) -> a.SilenceModel:
    checked, now = _silence_id(silence_id), _now(request)
    async with _writing(request, lock=False) as conn:
        await conn.execute(
            text(
                "UPDATE alert_silences SET ends_at = least(ends_at, :now),"
                " starts_at = least(starts_at, :now) WHERE id = CAST(:id AS uuid)"
            ),
            {"now": now, "id": checked},
        )
        expired = await a.one_silence(conn, checked, now)
    if expired is None:
        raise ApiError(404, f"no silence with id {_shown(silence_id)}")
    return expired


def _silence_id(given: str) -> str:
    try:
        return str(uuid.UUID(given))
    except ValueError:
        raise ApiError(404, f"no silence with id {_shown(given)}") from None


# --- alerts, history, notifications ------------------------------------------------------------


@router.get("/alerts", summary="Pending and firing alerts")
async def list_alerts(request: Request) -> a.AlertsResponse:
    async with snapshot(request) as conn:
        return a.AlertsResponse(alerts=await a.alert_models(conn, _now(request)))


@router.get(
    "/alerts/history",
    summary="Alert state transitions, newest first",
    responses={400: {"model": ErrorResponse, "description": "Bad limit."}},
)
async def alert_history(request: Request, limit: LimitParam = None) -> a.HistoryResponse:
    count = _limit(limit)
    async with snapshot(request) as conn:
        return a.HistoryResponse(history=await a.history_models(conn, count))


@router.get(
    "/notifications",
    summary="Notifications in the outbox with their delivery attempts, newest first",
    responses={400: {"model": ErrorResponse, "description": "Bad limit."}},
)
async def list_notifications(request: Request, limit: LimitParam = None) -> a.NotificationsResponse:
    count = _limit(limit)
    async with snapshot(request) as conn:
        receivers = (await a.all_receivers(_service(request), conn)).values()
        found = await a.notification_models(conn, count, receivers)
    return a.NotificationsResponse(notifications=found)


# --- helpers -----------------------------------------------------------------------------------


def _service(request: Request) -> AlertingService | None:
    service = getattr(request.app.state, "alerting", None)
    return service if isinstance(service, AlertingService) else None


def _now(request: Request) -> dt.datetime:
    clock: Callable[[], float] = getattr(request.app.state, "clock", time.time)
    return dt.datetime.fromtimestamp(clock(), dt.UTC)


def _limit(given: str | None) -> int:
    if given is None or given.strip() == "":
        return 100
    if not given.strip().isdigit() or not 1 <= int(given) <= MAX_LIMIT:
        raise ApiError(400, f"limit must be a whole number from 1 to {MAX_LIMIT}, got {given!r}")
    return int(given)


def _shown(name: str) -> str:
    return repr(name if len(name) <= 200 else f"{name[:200]}...")


async def _body(request: Request, what: str, name: str | None = None) -> dict[str, Any]:
    """The request's JSON object without answer-only keys; `name` (the path's) fills in the
    body's name or must equal it."""
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise ApiError(413, f"the body is larger than {MAX_BODY} bytes")
    try:
        body = orjson.loads(raw)  # refuses lone surrogates
    except orjson.JSONDecodeError as exc:
        raise InvalidBody(what, [a.Problem(path="", message=f"not JSON: {exc}")]) from None
    problems = []
    if not isinstance(body, dict):
        problems.append(
            a.Problem(path="", message=f"{what} must be a JSON object, not {type(body).__name__}")
        )
    elif name is not None and body.setdefault("name", name) != name:
        message = f"the body names {_shown(str(body['name']))}, the path {_shown(name)}"
        problems.append(a.Problem(path="name", message=message))
    if b"\\u0000" in raw or "\x00" in (name or ""):  # PostgreSQL text cannot hold NUL
        problems.append(a.Problem(path="", message="texts may not hold NUL characters (\\u0000)"))
    if problems:
        raise InvalidBody(what, problems)
    return {key: value for key, value in body.items() if key not in ANSWER_ONLY_KEYS}


@asynccontextmanager
async def _writing(request: Request, *, lock: bool = True) -> AsyncIterator[AsyncConnection]:
    """One read-write transaction (`lock`: one rule or receiver change at a time). Database
    errors answer 503 (unreachable) or 500, never with the statement's parameters (a receiver
    URL is a secret)."""
    try:
        async with request.app.state.engine.begin() as conn:
            if lock:
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CONFIG_LOCK})
            yield conn
    except (OperationalError, InterfaceError, OSError) as exc:
        raise ApiError(503, f"the database does not answer: {type(exc).__name__}") from None
    except SQLAlchemyError as exc:
        log.error("an alerting change failed: %s", type(exc).__name__)
        raise ApiError(500, f"the database refused the change: {type(exc).__name__}") from None
