"""`/api/v1/rules`: alert rules, from the rules file (read-only) and made here."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from sqlalchemy.ext.asyncio import AsyncConnection

from alerting import listing
from alerting.model import Rule
from alerting.rules import rule_from_mapping, rule_to_mapping
from alerting.store import states
from api.alerting import requests as r
from api.alerting.models import RuleModel, RulesResponse, rule_model
from api.connection import snapshot
from api.http_errors import ApiError

router = APIRouter(prefix="/api/v1", tags=["alerting"])
_RULE_DOC = r.body_doc(
    "One rule in the rules file's format (README, Alert rules file); receivers named must "
    "exist. `origin`, `read_only` and `alerts` (answer-only) are ignored.",
    {"name": "HighErrorRate", "signal": "error_rate", "scope": "service", "condition": "> 5%",
     "matchers": ["service=checkout"], "for": "2m", "severity": "critical",
     "annotations": {"summary": "{{ $labels.service }} fails"}, "receivers": ["oncall"]},
)  # fmt: skip


@router.get(
    "/rules",
    summary="Alert rules (file and API) with their alert counts",
    response_model_exclude_none=True,
)
async def list_rules(request: Request) -> RulesResponse:
    async with snapshot(request) as conn:
        return RulesResponse(rules=await _rule_models(request, conn))


@router.get(
    "/rules/{name:path}",
    summary="One alert rule",
    responses=r.errors({404: "No rule has this name."}),
    response_model_exclude_none=True,
)
async def get_rule(request: Request, name: str) -> RuleModel:
    async with snapshot(request) as conn:
        rules = await _rule_models(request, conn)
    for rule in rules:
        if rule.name == name:
            return rule
    raise ApiError(404, f"no rule named {r.shown(name)}")


@router.post(
    "/rules",
    status_code=201,
    summary="Make an alert rule",
    responses=r.errors({400: r.BODY, 409: r.FILE_OR_TAKEN, 503: r.DOWN}),
    response_model_exclude_none=True,
    openapi_extra=_RULE_DOC,
)
async def create_rule(request: Request) -> RuleModel:
    rule, _ = await _save_rule(request, await r.json_body(request, "the rule"), replace=False)
    return rule


@router.put(
    "/rules/{name:path}",
    summary="Make (201) or replace (200) an alert rule made through the API",
    responses=r.errors({400: r.BODY, 409: r.FILE_OR_TAKEN, 503: r.DOWN}),
    response_model_exclude_none=True,
    openapi_extra=_RULE_DOC,
)
async def put_rule(request: Request, response: Response, name: str) -> RuleModel:
    r.refuse_file(request, "rule", name)
    body = await r.json_body(request, "the rule", name)
    rule, created = await _save_rule(request, body, replace=True)
    response.status_code = 201 if created else 200
    return rule


@router.delete(
    "/rules/{name:path}",
    status_code=204,
    summary="Delete an alert rule made through the API (its alerts resolve next round)",
    responses=r.errors({404: "No rule has this name.", 409: "Defined in the file.", 503: r.DOWN}),
)
async def delete_rule(request: Request, name: str) -> Response:
    r.refuse_file(request, "rule", name)
    async with r.writing(request) as conn:
        await r.delete(conn, "rule", name)
    return Response(status_code=204)


async def _rule_models(request: Request, conn: AsyncConnection) -> list[RuleModel]:
    counts = await states.alert_counts(conn)
    rules = await listing.all_rules(r.alerting_service(request), conn)
    return [rule_model(rule, counts) for rule in rules]


async def _save_rule(
    request: Request, body: dict[str, Any], *, replace: bool
) -> tuple[RuleModel, bool]:
    async with r.writing(request) as conn:
        names = set(await listing.all_receivers(r.alerting_service(request), conn))
        rule: Rule = r.validated(
            "the rule",
            lambda: rule_from_mapping(body, known_receivers=names),
            r.name_problems(body),
        )
        r.refuse_file(request, "rule", rule.name)
        definition = orjson.dumps(rule_to_mapping(rule)).decode()
        row = {"name": rule.name, "definition": definition}
        created = await r.save(conn, "rule", row, replace=replace)
        counts = {} if created else await states.alert_counts(conn)
    return rule_model(rule, counts), created
