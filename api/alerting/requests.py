"""What the alerting endpoints share: reading a JSON body, answering a 400 with every problem,
the write transaction (advisory lock, database errors as 503 or 500), the alerting service and
the clock of the app, and the OpenAPI descriptions of errors and bodies."""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
import unicodedata
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from alerting.listing import FROM_FILE
from alerting.rules import RulesFileError
from alerting.service import AlertingService
from alerting.store import definitions
from api.alerting.models import Problem, ProblemsResponse
from api.http_errors import ApiError
from api.schemas import ErrorResponse

log = logging.getLogger("meshlens.alerting")
T = TypeVar("T")
MAX_BODY = 1 << 20
MAX_LIMIT = 1000
ANSWER_ONLY_KEYS = ("origin", "read_only", "alerts", "signed", "used_by")
"""Keys of the answers that bodies may carry back (GET, edit, PUT): they are ignored."""
BODY, DOWN = "Not valid: every problem is listed.", "The database does not answer."
FILE_OR_TAKEN = "Defined in the rules file, or (POST) the name is taken."
LimitParam = Annotated[
    str | None, Query(description=f"How many, newest first: 1 to {MAX_LIMIT}. Default 100.")
]


class InvalidBody(ApiError):
    """A 400 listing every problem of a body."""

    def __init__(self, what: str, problems: Sequence[Problem]) -> None:
        count = len(problems)
        listed = "; ".join(_located(problem) for problem in problems)
        super().__init__(400, f"{what} has {count} problem{'s' if count != 1 else ''}: {listed}")
        self.problems = list(problems)


def _located(problem: Problem) -> str:
    """`path: message`, unless the message already starts with the path's key."""
    key = re.sub(r"\[\d+\]", "", problem.path).rpartition(".")[2]
    if not problem.path or problem.message.startswith(f"{key}:"):
        return problem.message
    return f"{problem.path}: {problem.message}"


async def problems_answer(_: Request, error: InvalidBody) -> JSONResponse:
    problems = [problem.model_dump() for problem in error.problems]
    return JSONResponse({"status": 400, "message": error.message, "problems": problems}, 400)


def errors(described: Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    def model(code: int) -> type[Any]:
        return ProblemsResponse if code == 400 else ErrorResponse

    return {code: {"model": model(code), "description": d} for code, d in described.items()}


def body_doc(description: str, example: dict[str, Any]) -> dict[str, Any]:
    schema = {"type": "object", "additionalProperties": True}
    content = {"application/json": {"schema": schema, "example": example}}
    return {"requestBody": {"required": True, "description": description, "content": content}}


def validated(what: str, make: Callable[[], T], given: Sequence[Problem] = ()) -> T:
    """What `make` makes; InvalidBody with its problems (after `given`) when it cannot."""
    try:
        made = make()
    except RulesFileError as exc:
        found = [Problem(path=p.path, message=p.message) for p in exc.problems]
        raise InvalidBody(what, [*given, *found]) from None
    if given:
        raise InvalidBody(what, given)
    return made


def name_problems(body: Mapping[str, Any]) -> list[Problem]:
    """A name holding control characters could be made but never reached by its path (no
    route matches a newline): refused."""
    name = body.get("name")
    if isinstance(name, str) and any(unicodedata.category(char) == "Cc" for char in name):
        message = f"name may not hold control characters (such as a newline), got {shown(name)}"
        return [Problem(path="name", message=message)]
    return []


def refuse_file(request: Request, kind: str, name: str) -> None:
    service = alerting_service(request)
    if service is None:
        return
    found = service.file_rules if kind == "rule" else service.file_receivers
    if any(item.name == name for item in found):
        raise ApiError(409, f"{kind} {shown(name)} is {FROM_FILE}")


async def save(conn: AsyncConnection, kind: str, row: Mapping[str, Any], replace: bool) -> bool:
    """Insert (or with `replace`, upsert) the row; True when it is new. 409 when it exists and
    may not be replaced."""
    created = await definitions.save(conn, kind, row, replace)
    if created is None:
        raise ApiError(409, f"{kind} {shown(row['name'])} exists: PUT replaces it")
    return created


async def delete(conn: AsyncConnection, kind: str, name: str) -> None:
    if "\x00" in name or not await definitions.delete(conn, kind, name):
        raise ApiError(404, f"no {kind} named {shown(name)} was made through the API")


def alerting_service(request: Request) -> AlertingService | None:
    service = getattr(request.app.state, "alerting", None)
    return service if isinstance(service, AlertingService) else None


def request_now(request: Request) -> dt.datetime:
    clock: Callable[[], float] = getattr(request.app.state, "clock", time.time)
    return dt.datetime.fromtimestamp(clock(), dt.UTC)


def parse_limit(given: str | None) -> int:
    if given is None or given.strip() == "":
        return 100
    if not given.strip().isdigit() or not 1 <= int(given) <= MAX_LIMIT:
        raise ApiError(400, f"limit must be a whole number from 1 to {MAX_LIMIT}, got {given!r}")
    return int(given)


def shown(name: str) -> str:
    return repr(name if len(name) <= 200 else f"{name[:200]}...")


async def json_body(request: Request, what: str, name: str | None = None) -> dict[str, Any]:
    """The request's JSON object without answer-only keys; `name` (the path's) fills in the
    body's name or must equal it."""
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise ApiError(413, f"the body is larger than {MAX_BODY} bytes")
    try:
        body = orjson.loads(raw)  # refuses lone surrogates
    except orjson.JSONDecodeError as exc:
        raise InvalidBody(what, [Problem(path="", message=f"not JSON: {exc}")]) from None
    problems = []
    if not isinstance(body, dict):
        problems.append(
            Problem(path="", message=f"{what} must be a JSON object, not {type(body).__name__}")
        )
    elif name is not None and body.setdefault("name", name) != name:
        message = f"the body names {shown(str(body['name']))}, the path {shown(name)}"
        problems.append(Problem(path="name", message=message))
    if b"\\u0000" in raw or "\x00" in (name or ""):  # PostgreSQL text cannot hold NUL
        problems.append(Problem(path="", message="texts may not hold NUL characters (\\u0000)"))
    if problems:
        raise InvalidBody(what, problems)
    return {key: value for key, value in body.items() if key not in ANSWER_ONLY_KEYS}


@asynccontextmanager
async def writing(request: Request, *, lock: bool = True) -> AsyncIterator[AsyncConnection]:
    """One read-write transaction (`lock`: one rule or receiver change at a time). Database
    errors answer 503 (unreachable) or 500, never with the statement's parameters (a receiver
    URL is a secret)."""
    try:
        async with request.app.state.engine.begin() as conn:
            if lock:
                await definitions.lock_changes(conn)
            yield conn
    except (OperationalError, InterfaceError, OSError) as exc:
        raise ApiError(503, f"the database does not answer: {type(exc).__name__}") from None
    except SQLAlchemyError as exc:
        log.error("an alerting change failed: %s", type(exc).__name__)
        raise ApiError(500, f"the database refused the change: {type(exc).__name__}") from None
