"""`/api/v1/receivers`: where notifications go (URLs answered masked), and a test send."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request, Response

from alerting import listing
from alerting.model import Receiver
from alerting.notify.delivery import Outcome
from alerting.rules import receiver_from_mapping
from api.alerting import requests as r
from api.alerting.models import Problem, ReceiverModel, ReceiversResponse, TestResult
from api.connection import snapshot
from api.http_errors import ApiError

log = logging.getLogger("meshlens.alerting")
router = APIRouter(prefix="/api/v1", tags=["alerting"])
_RECEIVER_DOC = r.body_doc(
    "`name`, `type` (slack, mattermost, discord, teams, webhook), `url` (http or https: a "
    "secret, answered masked), `hmac_secret` (webhook only: signs requests; never answered).",
    {"name": "oncall", "type": "slack", "url": "https://hooks.slack.com/services/T0/B0/XXXX"},
)


@router.get("/receivers", summary="Receivers (file and API), URLs masked")
async def list_receivers(request: Request) -> ReceiversResponse:
    async with snapshot(request) as conn:
        found = await listing.receiver_entries(r.alerting_service(request), conn)
        return ReceiversResponse(receivers=[_model(entry) for entry in found])


@router.post(
    "/receivers",
    status_code=201,
    summary="Make a receiver",
    responses=r.errors({400: r.BODY, 409: r.FILE_OR_TAKEN, 503: r.DOWN}),
    openapi_extra=_RECEIVER_DOC,
)
async def create_receiver(request: Request) -> ReceiverModel:
    receiver, _ = await _save_receiver(request, await r.json_body(request, "the receiver"), False)
    return receiver


@router.put(
    "/receivers/{name:path}",
    summary="Make (201) or replace (200) a receiver made through the API",
    responses=r.errors({400: r.BODY, 409: r.FILE_OR_TAKEN, 503: r.DOWN}),
    openapi_extra=_RECEIVER_DOC,
)
async def put_receiver(request: Request, response: Response, name: str) -> ReceiverModel:
    r.refuse_file(request, "receiver", name)
    body = await r.json_body(request, "the receiver", name)
    receiver, created = await _save_receiver(request, body, True)
    response.status_code = 201 if created else 200
    return receiver


@router.delete(
    "/receivers/{name:path}",
    status_code=204,
    summary="Delete a receiver made through the API",
    responses=r.errors({404: "Unknown.", 409: "In the file, or rules use it.", 503: r.DOWN}),
)
async def delete_receiver(request: Request, name: str) -> Response:
    r.refuse_file(request, "receiver", name)
    async with r.writing(request) as conn:
        rules = await listing.all_rules(r.alerting_service(request), conn)
        users = [rule.name for rule in rules if name in rule.receivers]
        if users:
            named = f"rule{'s' if len(users) > 1 else ''} {', '.join(users)}"
            raise ApiError(
                409, f"receiver {r.shown(name)} is used by {named}: remove it there first"
            )
        await r.delete(conn, "receiver", name)
    return Response(status_code=204)


@router.post(
    "/receivers/{name:path}/test",
    summary="Send a receiver one test notification (MeshlensTest, severity info)",
    description="One attempt, through the SSRF guard and allowlist notifications go through; "
    "200 whatever the destination answered: `outcome` says how it went.",
    responses=r.errors({404: "No receiver has this name.", 503: "Alerting is not running."}),
)
async def test_receiver(request: Request, name: str) -> TestResult:
    service = r.alerting_service(request)
    if service is None:
        raise ApiError(503, "alerting is not running in this process")
    async with snapshot(request) as conn:
        receiver = (await listing.all_receivers(service, conn)).get(name)
    if receiver is None:
        raise ApiError(404, f"no receiver named {r.shown(name)}")
    attempt = await service.send_test(receiver)
    error = listing.scrub(attempt.error, [receiver.url])
    log.info("test notification to receiver %r: %s (%s)", name, attempt.outcome.value, error)
    return TestResult(
        delivered=attempt.outcome is Outcome.DELIVERED,
        outcome=attempt.outcome.value,
        status_code=attempt.status_code,
        error=error,
        duration_ms=round(attempt.duration * 1000, 3),
    )


async def _save_receiver(
    request: Request, body: dict[str, Any], replace: bool
) -> tuple[ReceiverModel, bool]:
    masked = isinstance(body.get("url"), str) and "…" in body["url"]
    given = [Problem(path="url", message="url is masked (…): give the whole URL")] * masked
    given += r.name_problems(body)
    receiver: Receiver = r.validated("the receiver", lambda: receiver_from_mapping(body), given)
    r.refuse_file(request, "receiver", receiver.name)
    row = {"name": receiver.name, "type": receiver.type.value, "url": receiver.url}
    async with r.writing(request) as conn:
        created = await r.save(conn, "receiver", {**row, "secret": receiver.hmac_secret}, replace)
        rules = await listing.all_rules(r.alerting_service(request), conn)
    return _model(listing.receiver_entry(receiver, rules)), created


def _model(entry: listing.ReceiverEntry) -> ReceiverModel:
    return ReceiverModel.model_validate(entry, from_attributes=True)
