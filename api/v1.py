"""The JSON API, `/api/v1`: services, graph, one service, its series, and mTLS coverage.

Endpoints parse parameters (`read.windows`), call the query layer (`read.queries`) on one
connection, and shape the answer (`api.schemas`). Bad input is a 400 (window, end, step) or a
404 (a name never seen in a rollup), as JSON `{"status", "message"}`; a database that does not
answer is a 503. The engine and the clock come from `app.state` (set by `create_app`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated
from urllib.parse import unquote

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse

from api import responses
from api import schemas as s
from api.connection import snapshot
from api.http_errors import ApiError
from meshlens.read import queries
from meshlens.read.windows import Series, Window, WindowError, series_for, window_for

_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": s.ErrorResponse, "description": "Bad window, end or step."},
    503: {"model": s.ErrorResponse, "description": "The database does not answer."},
}
_NAMED_ERRORS: dict[int | str, dict[str, object]] = {
    **_ERRORS,
    404: {
        "model": s.ErrorResponse,
        "description": "No rollup row ever named this service (of this `type`, if given).",
    },
}

router = APIRouter(prefix="/api/v1", tags=["api"], responses=_ERRORS)

WindowParam = Annotated[
    str | None,
    Query(
        description="Duration ending at `end`: 5m, 15m, 1h, 24h, 7d, 1h30m... (units w d h m s; "
        "at least 1m, at most 90d, rounded up to whole minutes). Default 15m.",
        examples=["15m"],
    ),
]
EndParam = Annotated[
    str | None,
    Query(
        description="End of the window: RFC 3339 with an offset or unix seconds. Default now. "
        "The minute holding `end` is included (with now: the current, partial minute).",
        examples=["2026-11-26T12:00:00Z"],
    ),
]
StepParam = Annotated[
    str | None,
    Query(
        description="Spacing of series points (1m, 5m, 1h...; at least 1m, at most 1000 points). "
        "Points align to multiples of the step. Default: the finest of 1m, 5m, 1h, 6h, 1d "
        "giving at most 120 points.",
        examples=["1m"],
    ),
]


TypeParam = Annotated[
    str | None,
    Query(
        alias="type",
        description="The node's type (service, database, messaging, external, client): a "
        "service and a virtual node may share a name. Default: the first node of the name by "
        "type (service, client, database, messaging, external, then others by name).",
        examples=["database"],
    ),
]


def include_api(app: FastAPI) -> None:
    """Serve the API on `app`, whose state holds `engine` (and optionally `clock`); its errors
    are answered by `api.http_errors`."""
    app.include_router(router)


@router.get("/services", summary="Services and their golden signals")
async def list_services(
    request: Request, window: WindowParam = None, end: EndParam = None
) -> s.ServicesResponse:
    span = _window(request, window, end)
    async with snapshot(request) as conn:
        nodes = await queries.services(conn, span)
    return responses.services_response(span, nodes)


@router.get("/graph", summary="Service graph: nodes and edges with their signals")
async def get_graph(
    request: Request, window: WindowParam = None, end: EndParam = None
) -> s.GraphResponse:
    span = _window(request, window, end)
    async with snapshot(request) as conn:
        graph = await queries.graph(conn, span)
    return responses.graph_response(span, graph)


@router.get("/mtls", summary="mTLS coverage: mesh-wide, per edge, and over time")
async def get_mtls(
    request: Request, window: WindowParam = None, end: EndParam = None, step: StepParam = None
) -> s.MtlsResponse:
    series = _series(_window(request, window, end), step)
    async with snapshot(request) as conn:
        summary = await queries.mtls(conn, series)
    return responses.mtls_response(summary)


@router.get(
    "/services/{name:path}/series",
    summary="Time series of one service's signals",
    responses=_NAMED_ERRORS,
    response_model=s.SeriesResponse,
)
async def get_service_series(
    request: Request,
    name: str,
    window: WindowParam = None,
    end: EndParam = None,
    step: StepParam = None,
    node_type: TypeParam = None,
) -> s.SeriesResponse | JSONResponse:
    tail = _raw_tail(request)
    if tail is not None and not tail.endswith("/series"):  # a name ending in an encoded /series
        detail = await get_service(request, name, window, end, node_type)
        return JSONResponse(detail.model_dump(mode="json"))
    name = _checked_name(unquote(tail.removesuffix("/series")) if tail is not None else name)
    wanted = _checked_type(name, node_type)
    series = _series(_window(request, window, end), step)
    async with snapshot(request) as conn:
        result = await queries.service_series(conn, series, name, wanted)
    if result is None:
        raise _unknown(name, wanted)
    return responses.series_response(result)


@router.get(
    "/services/{name:path}",
    summary="One service: signals, upstream and downstream edges, operations, versions",
    responses=_NAMED_ERRORS,
)
async def get_service(
    request: Request,
    name: str,
    window: WindowParam = None,
    end: EndParam = None,
    node_type: TypeParam = None,
) -> s.ServiceDetailResponse:
    tail = _raw_tail(request)
    name = _checked_name(unquote(tail) if tail is not None else name)
    wanted = _checked_type(name, node_type)
    span = _window(request, window, end)
    async with snapshot(request) as conn:
        detail = await queries.service_detail(conn, span, name, wanted)
    if detail is None:
        raise _unknown(name, wanted)
    return responses.detail_response(span, detail)


# --- parameters --------------------------------------------------------------------------------


def _window(request: Request, window: str | None, end: str | None) -> Window:
    clock: Callable[[], float] = getattr(request.app.state, "clock", time.time)
    try:
        return window_for(window, end, clock())
    except WindowError as exc:
        raise ApiError(400, str(exc)) from exc


def _series(window: Window, step: str | None) -> Series:
    try:
        return series_for(window, step)
    except WindowError as exc:
        raise ApiError(400, str(exc)) from exc


def _raw_tail(request: Request) -> str | None:
    """The still percent-encoded path after `/services/`, so an encoded `/` stays in a name."""
    raw = request.scope.get("raw_path")
    if not isinstance(raw, bytes):
        return None
    path = raw.split(b"?", 1)[0].decode("latin-1")
    _, found, tail = path.partition(f"{router.prefix}/services/")
    return tail if found else None


def _checked_name(name: str) -> str:
    """Names PostgreSQL cannot hold (NUL, lone surrogates) are unknown services, not 500s."""
    if "\x00" in name or _has_surrogate(name):
        raise _unknown(name)
    return name


def _checked_type(name: str, node_type: str | None) -> str | None:
    """The type asked for (None: any); one PostgreSQL cannot hold is of no node (404)."""
    if node_type is None or not node_type.strip():
        return None
    if "\x00" in node_type or _has_surrogate(node_type):
        raise _unknown(name, node_type)
    return node_type.strip()


def _has_surrogate(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _unknown(name: str, node_type: str | None = None) -> ApiError:
    shown = name if len(name) <= 200 else f"{name[:200]}..."
    if node_type is None:
        return ApiError(404, f"no service or node named {shown!r} in any rollup")
    return ApiError(404, f"no node named {shown!r} of type {node_type[:100]!r} in any rollup")
