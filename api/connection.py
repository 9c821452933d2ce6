"""The database connection of one API answer: a read-only snapshot, or a 503."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncConnection

from api.http_errors import ApiError
from meshlens.read.snapshot import DatabaseUnavailable, read_only


@asynccontextmanager
async def snapshot(request: Request) -> AsyncIterator[AsyncConnection]:
    """`read_only` on the request's app engine, for one API answer; a database that does not
    answer is a 503."""
    try:
        async with read_only(request.app.state.engine) as conn:
            yield conn
    except DatabaseUnavailable as exc:
        raise ApiError(503, str(exc)) from exc
