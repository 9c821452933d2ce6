"""`/api/v1/silences`: silences, made here and expired here (never deleted)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from alerting.model import Silence
from alerting.silences import silence_from_body
from alerting.store import silences
from api.alerting import requests as r
from api.alerting.models import Problem, SilenceModel, SilencesResponse
from api.connection import snapshot
from api.http_errors import ApiError

router = APIRouter(prefix="/api/v1", tags=["alerting"])
_SILENCE_DOC = r.body_doc(
    "`matchers`: objects `{name, op, value}` (op `=`, `!=`, `=~`, `!~`) or strings "
    '(`service=checkout`, `service=~"check.*"`), at least one, not all matching an empty '
    "label; `starts_at` (RFC 3339 or unix seconds; default now); `ends_at` or `duration` "
    "(`2h`); `created_by`; `comment`.",
    {"matchers": ["service=checkout"], "duration": "2h", "created_by": "ana",
     "comment": "deploying checkout"},
)  # fmt: skip


@router.get("/silences", summary="Silences, active and expired, newest first")
async def list_silences(request: Request) -> SilencesResponse:
    async with snapshot(request) as conn:
        found = await silences.listed_silences(conn, r.request_now(request))
        return SilencesResponse(silences=[_model(entry) for entry in found])


@router.post(
    "/silences",
    status_code=201,
    summary="Silence the alerts that meet matchers, for a while",
    responses=r.errors({400: r.BODY, 503: r.DOWN}),
    openapi_extra=_SILENCE_DOC,
)
async def create_silence(request: Request) -> SilenceModel:
    now = r.request_now(request)
    silence = silence_from_body(await r.json_body(request, "the silence"), now)
    if not isinstance(silence, Silence):
        problems = [Problem(path=p.path, message=p.message) for p in silence]
        raise r.InvalidBody("the silence", problems)
    async with r.writing(request, lock=False) as conn:
        await silences.insert_silence(conn, silence)
        made = await silences.one_silence(conn, silence.id, now)
    assert made is not None
    return _model(made)


@router.delete(
    "/silences/{silence_id}",
    summary="Expire a silence now (it stays listed, expired)",
    responses=r.errors({404: "No silence has this id.", 503: r.DOWN}),
)
async def expire_silence(request: Request, silence_id: str) -> SilenceModel:
    checked, now = _silence_id(silence_id), r.request_now(request)
    async with r.writing(request, lock=False) as conn:
        await silences.expire_silence(conn, checked, now)
        expired = await silences.one_silence(conn, checked, now)
    if expired is None:
        raise ApiError(404, f"no silence with id {r.shown(silence_id)}")
    return _model(expired)


def _silence_id(given: str) -> str:
    try:
        return str(uuid.UUID(given))
    except ValueError:
        raise ApiError(404, f"no silence with id {r.shown(given)}") from None


def _model(entry: silences.SilenceEntry) -> SilenceModel:
    return SilenceModel.model_validate(entry, from_attributes=True)
