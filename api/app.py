"""The FastAPI application of the web port."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from api.alerting import include_alerting_api
from api.http_errors import include_http_errors
from api.v1 import include_api
from meshlens.migrations import current_revision, head_revision


def create_app(
    engine: AsyncEngine,
    registry: CollectorRegistry,
    *,
    ingest_healthy: Callable[[], bool],
) -> FastAPI:
    """The web application; `ingest_healthy` tells whether the ingest writers are connected."""
    app = FastAPI(title="meshlens", summary="Service-mesh observability", version="0.1.0")
    app.state.engine = engine
    app.state.clock = time.time  # tests may replace it
    include_api(app)
    include_alerting_api(app)
    include_http_errors(app)
    head = head_revision()

    @app.get("/healthz", tags=["operations"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], summary="Database reachable, schema at head")
    async def readyz() -> JSONResponse:
        checks = await _readiness(engine, head)
        checks["ingest"] = "ok" if ingest_healthy() else "writers not connected to the database"
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=PlainTextResponse,  # the description: Prometheus' text format
    )
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


async def _readiness(engine: AsyncEngine, head: str | None) -> dict[str, str]:
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            revision = await conn.run_sync(current_revision)
    except (SQLAlchemyError, OSError) as exc:
        return {"database": f"unreachable: {type(exc).__name__}"}
    schema = "ok" if revision == head else f"at {revision}, expected {head}"
    return {"database": "ok", "schema": schema}
