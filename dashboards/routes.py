"""The pages' routes: `/`, `/map`, `/services/{name}`, `/mtls`, `/alerts`, and the assets
under `/static` (plotly.js comes from the plotly package: nothing is fetched from a CDN)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.ext.asyncio import AsyncConnection

from alerting.service import AlertingService
from dashboards import alerts_view, signin, views
from dashboards.onboarding import Endpoints, snippets
from dashboards.rendering import SECURITY_HEADERS, page
from dashboards.time_range import PRESETS, REFRESH, TimeRange, time_range
from meshlens.read.snapshot import DatabaseUnavailable, read_only
from meshlens.read.windows import WindowError

STATIC = Path(__file__).parent / "static"
PLOTLY_JS = Path(str(files("plotly") / "package_data" / "plotly.min.js"))
MAX_HOPS = 5
ASSET_HEADERS = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True, slots=True)
class Ports:
    """Where meshlens listens for OTLP, for the snippets of the empty states."""

    otlp_grpc: int = 4317
    otlp_http: int = 4318
    tls: bool = False
    client_certificates: bool = False


def include_dashboards(app: FastAPI, ports: Ports) -> None:
    """Serve the pages and their assets on `app` (whose state holds `engine`)."""
    app.state.dashboard_ports = ports
    app.include_router(router)
    app.include_router(signin.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


@router.get("/plotly.min.js")
async def plotly_js() -> FileResponse:
    return FileResponse(PLOTLY_JS, media_type="text/javascript", headers=ASSET_HEADERS)


@router.get("/favicon.ico")
async def favicon() -> FileResponse:
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml", headers=ASSET_HEADERS)


@router.get("/", response_class=HTMLResponse)
async def overview(request: Request) -> HTMLResponse:
    async def build(conn: AsyncConnection, when: TimeRange) -> dict[str, Any]:
        context = await views.overview(conn, when)
        return {**context, "alert_counts": await alerts_view.firing_counts(conn)}

    return await _page(request, "overview", "overview.html", build)


@router.get("/map", response_class=HTMLResponse)
async def service_map(
    request: Request,
    focus: Annotated[str, Query(max_length=500)] = "",
    hops: str = "1",
) -> HTMLResponse:
    """The map; `hops` outside 1..5 (or not a number) is clamped to it."""
    hops_wanted = int(hops) if hops.strip().isdigit() else 1
    hops = str(min(MAX_HOPS, max(1, hops_wanted)))

    async def build(conn: AsyncConnection, when: TimeRange) -> dict[str, Any]:
        return await views.service_map(conn, when, focus.strip(), int(hops))

    return await _page(request, "map", "map.html", build, focus=focus.strip(), hops=hops)


@router.get("/services/{name:path}", response_class=HTMLResponse)
async def service(
    request: Request,
    name: str,
    node_type: Annotated[str, Query(alias="type", max_length=100)] = "",
) -> HTMLResponse:
    """The page of the node named `name`: with `type`, the node of that type (a service and a
    database may share a name), else the first of the name (the service, when there is one)."""

    async def build(conn: AsyncConnection, when: TimeRange) -> dict[str, Any] | None:
        if "\x00" in name or "\x00" in node_type:
            return None
        return await views.service(conn, when, name, node_type.strip() or None)

    keep = {"type": node_type.strip()} if node_type.strip() else {}
    return await _page(request, "services", "service.html", build, **keep)


@router.get("/mtls", response_class=HTMLResponse)
async def mtls(request: Request) -> HTMLResponse:
    return await _page(request, "mtls", "mtls.html", views.mtls)


@router.get("/alerts", response_class=HTMLResponse)
async def alerts(request: Request) -> HTMLResponse:
    """Alerts, rules, silences, history and deliveries (the time range does not apply)."""
    found = getattr(request.app.state, "alerting", None)
    service = found if isinstance(found, AlertingService) else None
    clock: Callable[[], float] = getattr(request.app.state, "clock", time.time)

    async def build(conn: AsyncConnection, when: TimeRange) -> dict[str, Any]:
        now = dt.datetime.fromtimestamp(clock(), dt.UTC)
        web_base = f"{request.url.scheme}://{request.url.netloc}"
        return await alerts_view.alerts(conn, service, now, web_base)

    return await _page(request, "alerts", "alerts.html", build)


Builder = Callable[[AsyncConnection, TimeRange], Awaitable[dict[str, Any] | None]]


async def _page(
    request: Request, active: str, template: str, build: Builder, **keep: str
) -> HTMLResponse:
    """`template` with what `build` reads; a bad range is a 400 page, an unknown service a
    404 page, a database that does not answer a 503 page."""
    started = time.perf_counter()
    common = _common(request, active)
    clock: Callable[[], float] = getattr(request.app.state, "clock", time.time)
    try:
        when = time_range(request.query_params, clock())
    except WindowError as exc:
        return page("error.html", {**common, "status": 400, "message": str(exc)}, 400)
    common.update(when=when, query=when.query(), picker_keep=keep)
    try:
        async with read_only(request.app.state.engine) as conn:
            context = await build(conn, when)
    except DatabaseUnavailable as exc:
        return page("error.html", {**common, "status": 503, "message": str(exc)}, 503)
    if context is None:
        message = f"No service or node named “{request.path_params.get('name', '')}” was seen."
        return page("error.html", {**common, "status": 404, "message": message}, 404)
    answer = page(template, {**common, **context})
    answer.headers["Server-Timing"] = f"page;dur={1000 * (time.perf_counter() - started):.1f}"
    return answer


def _common(request: Request, active: str) -> dict[str, Any]:
    ports: Ports = request.app.state.dashboard_ports
    host = request.url.hostname or "127.0.0.1"
    endpoints = Endpoints(
        host=f"[{host}]" if ":" in host else host,
        grpc_port=ports.otlp_grpc,
        http_port=ports.otlp_http,
        web_port=request.url.port or 80,
        tls=ports.tls,
        client_certificates=ports.client_certificates,
    )
    return {
        "active": active,
        "presets": PRESETS,
        "refresh_choices": REFRESH,
        "endpoints": endpoints,
        "snippets": snippets(endpoints),
        "when": None,
        "query": "",
        "picker_keep": {},
        "security_headers": SECURITY_HEADERS,
    }
