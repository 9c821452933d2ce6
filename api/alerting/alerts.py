"""`/api/v1/alerts`, `/api/v1/alerts/history` and `/api/v1/notifications`: pending and firing
alerts, their transitions, and the outbox with every delivery attempt."""

from __future__ import annotations

from fastapi import APIRouter, Request

from alerting import listing
from alerting.store import states
from api.alerting import requests as r
from api.alerting.models import (
    AlertModel,
    AlertsResponse,
    HistoryModel,
    HistoryResponse,
    NotificationModel,
    NotificationsResponse,
)
from api.connection import snapshot
from api.schemas import ErrorResponse

router = APIRouter(prefix="/api/v1", tags=["alerting"])


@router.get("/alerts", summary="Pending and firing alerts")
async def list_alerts(request: Request) -> AlertsResponse:
    async with snapshot(request) as conn:
        found = await listing.current_alerts(conn, r.request_now(request))
        alerts = [AlertModel.model_validate(alert, from_attributes=True) for alert in found]
        return AlertsResponse(alerts=alerts)


@router.get(
    "/alerts/history",
    summary="Alert state transitions, newest first",
    responses={400: {"model": ErrorResponse, "description": "Bad limit."}},
)
async def alert_history(request: Request, limit: r.LimitParam = None) -> HistoryResponse:
    count = r.parse_limit(limit)
    async with snapshot(request) as conn:
        found = await states.history(conn, count)
        history = [HistoryModel.model_validate(entry, from_attributes=True) for entry in found]
        return HistoryResponse(history=history)


@router.get(
    "/notifications",
    summary="Notifications in the outbox with their delivery attempts, newest first",
    responses={400: {"model": ErrorResponse, "description": "Bad limit."}},
)
async def list_notifications(request: Request, limit: r.LimitParam = None) -> NotificationsResponse:
    count = r.parse_limit(limit)
    async with snapshot(request) as conn:
        receivers = (await listing.all_receivers(r.alerting_service(request), conn)).values()
        found = await listing.notifications(conn, count, receivers)
    notifications = [NotificationModel.model_validate(one, from_attributes=True) for one in found]
    return NotificationsResponse(notifications=notifications)
